//! ReleaseDriver: frees the assigned driver once, and blocks late assignments.

use taxi_proto::{common::v1::TaxiType, dispatch::v1::ReleaseDriverRequest};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{SEOUL_STATION, TestApp, as_service, spawn_app};

async fn release(app: &TestApp, call_id: Uuid, driver_id: Uuid) -> bool {
    let request = ReleaseDriverRequest {
        call_id: call_id.to_string(),
        driver_id: driver_id.to_string(),
    };
    app.client
        .clone()
        .release_driver(as_service(request))
        .await
        .expect("release succeeds")
        .into_inner()
        .released
}

#[tokio::test]
async fn release_driver_frees_the_driver_and_is_idempotent() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let call_id = Uuid::new_v4();
    app.assign(call_id, driver_id, TaxiType::Normal)
        .await
        .expect("assigned");

    // Act
    let first = release(&app, call_id, driver_id).await;
    let second = release(&app, call_id, driver_id).await;

    // Assert
    assert!(first);
    assert!(!second);
    assert_eq!(app.stored_status(driver_id).await, "AVAILABLE");
    assert_eq!(app.events("driver.released").await, 1);
    assert_eq!(
        app.available_count(TaxiType::Normal, SEOUL_STATION, 1_000).await,
        1
    );
    let err = app
        .assign(call_id, driver_id, TaxiType::Normal)
        .await
        .expect_err("a released call stays released");
    assert_eq!(err.message(), "assignment of this call was released");
    app.assign(Uuid::new_v4(), driver_id, TaxiType::Normal)
        .await
        .expect("the freed driver takes another call");
}

#[tokio::test]
async fn release_before_assign_blocks_a_late_assign() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let call_id = Uuid::new_v4();

    // Act
    let released = release(&app, call_id, driver_id).await;
    let late = app.assign(call_id, driver_id, TaxiType::Normal).await;

    // Assert
    assert!(!released);
    let err = late.expect_err("the call was released first");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "assignment of this call was released");
    assert_eq!(app.stored_status(driver_id).await, "AVAILABLE");
    assert_eq!(app.events("driver.assigned").await, 0);
}

#[tokio::test]
async fn release_by_another_driver_releases_nothing() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let call_id = Uuid::new_v4();
    app.assign(call_id, driver_id, TaxiType::Normal)
        .await
        .expect("assigned");

    // Act
    let released = release(&app, call_id, Uuid::new_v4()).await;

    // Assert
    assert!(!released);
    assert_eq!(app.stored_status(driver_id).await, "ON_CALL");
    assert_eq!(app.events("driver.released").await, 0);
}
