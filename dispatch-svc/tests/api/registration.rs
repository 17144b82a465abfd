//! Registering, going on- and offline, reporting a location, reading oneself.

use taxi_proto::{
    common::v1::TaxiType,
    dispatch::v1::{
        DriverStatus, GetDriverRequest, RegisterDriverRequest, SetOfflineRequest, SetOnlineRequest,
        UpdateLocationRequest,
    },
};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{SEOUL_STATION, as_driver, as_service, lat_lng, spawn_app};

fn registration(taxi_type: TaxiType) -> RegisterDriverRequest {
    RegisterDriverRequest {
        name: "Kim Minsu".into(),
        license_plate: "12가3456".into(),
        taxi_type: taxi_type.into(),
    }
}

#[tokio::test]
async fn register_driver_creates_an_offline_driver_and_records_driver_registered() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = Uuid::new_v4();

    // Act
    let driver = app
        .client
        .clone()
        .register_driver(as_driver(driver_id, registration(TaxiType::Premium)))
        .await
        .expect("registered")
        .into_inner()
        .driver
        .expect("a driver");

    // Assert
    assert_eq!(driver.driver_id, driver_id.to_string());
    assert_eq!(driver.status(), DriverStatus::Offline);
    assert_eq!(driver.taxi_type(), TaxiType::Premium);
    assert_eq!(driver.location, None);
    let (aggregate_type, aggregate_id, version): (String, Uuid, i64) = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, aggregate_version FROM outbox
         WHERE event_type = 'driver.registered'",
    )
    .fetch_one(&app.db)
    .await
    .expect("one DriverRegistered event");
    assert_eq!(
        (aggregate_type.as_str(), aggregate_id, version),
        ("driver", driver_id, 1)
    );
    let stored: String = sqlx::query_scalar("SELECT taxi_type FROM drivers WHERE driver_id = $1")
        .bind(driver_id)
        .fetch_one(&app.db)
        .await
        .expect("stored");
    assert_eq!(stored, "TAXI_TYPE_PREMIUM");
}

#[tokio::test]
async fn registering_again_updates_changed_details_and_ignores_a_repeat() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.register(TaxiType::Normal).await;

    // Act
    app.client
        .clone()
        .register_driver(as_driver(driver_id, registration(TaxiType::Normal)))
        .await
        .expect("a repeat is accepted");
    let changed = app
        .client
        .clone()
        .register_driver(as_driver(driver_id, registration(TaxiType::Van)))
        .await
        .expect("a change is accepted")
        .into_inner()
        .driver
        .expect("a driver");

    // Assert
    assert_eq!(changed.taxi_type(), TaxiType::Van);
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT aggregate_version FROM outbox WHERE event_type = 'driver.registered' ORDER BY seq",
    )
    .fetch_all(&app.db)
    .await
    .expect("outbox");
    assert_eq!(versions, [1, 2]);
}

#[tokio::test]
async fn changing_taxi_type_while_on_a_call_is_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    app.assign(Uuid::new_v4(), driver_id, TaxiType::Normal)
        .await
        .expect("assigned");

    // Act
    let err = app
        .client
        .clone()
        .register_driver(as_driver(driver_id, registration(TaxiType::Van)))
        .await
        .expect_err("taxi type is locked on a call");

    // Assert
    assert_eq!(err.code(), Code::FailedPrecondition);
    let stored: String = sqlx::query_scalar("SELECT taxi_type FROM drivers WHERE driver_id = $1")
        .bind(driver_id)
        .fetch_one(&app.db)
        .await
        .expect("stored");
    assert_eq!(stored, "TAXI_TYPE_NORMAL");
}

#[tokio::test]
async fn set_online_makes_a_driver_available_once_and_is_idempotent() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.register(TaxiType::Normal).await;

    // Act
    let first = app.set_online(driver_id).await;
    let second = app.set_online(driver_id).await;

    // Assert
    assert_eq!(first.status(), DriverStatus::Available);
    assert_eq!(second.status(), DriverStatus::Available);
    assert_eq!(app.events("driver.online").await, 1);
}

#[tokio::test]
async fn set_offline_makes_an_available_driver_offline_and_then_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.register(TaxiType::Normal).await;
    app.set_online(driver_id).await;

    // Act
    let mut client = app.client.clone();
    let first = client
        .set_offline(as_driver(driver_id, SetOfflineRequest {}))
        .await
        .expect("goes offline")
        .into_inner();
    let second = client
        .set_offline(as_driver(driver_id, SetOfflineRequest {}))
        .await
        .expect("already offline")
        .into_inner();

    // Assert
    assert_eq!(first.driver.expect("a driver").status(), DriverStatus::Offline);
    assert_eq!(second.driver.expect("a driver").status(), DriverStatus::Offline);
    assert_eq!(app.events("driver.offline").await, 1);
}

#[tokio::test]
async fn set_offline_while_on_a_call_is_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    app.assign(Uuid::new_v4(), driver_id, TaxiType::Normal)
        .await
        .expect("assigned");

    // Act
    let err = app
        .client
        .clone()
        .set_offline(as_driver(driver_id, SetOfflineRequest {}))
        .await
        .expect_err("refused on a call");

    // Assert
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(app.stored_status(driver_id).await, "ON_CALL");
    assert_eq!(app.events("driver.offline").await, 0);
}

#[tokio::test]
async fn get_driver_returns_the_callers_record_with_the_reported_location() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.register(TaxiType::Van).await;
    app.move_to(driver_id, SEOUL_STATION).await;

    // Act
    let driver = app
        .client
        .clone()
        .get_driver(as_driver(driver_id, GetDriverRequest {}))
        .await
        .expect("found")
        .into_inner()
        .driver
        .expect("a driver");

    // Assert
    assert_eq!(driver.driver_id, driver_id.to_string());
    assert_eq!(driver.location, lat_lng(SEOUL_STATION));
    assert_eq!(driver.current_call_id, "");
    assert!(driver.updated_at.is_some());
}

#[tokio::test]
async fn an_unregistered_driver_is_not_found() {
    // Arrange
    let app = spawn_app().await;
    let stranger = Uuid::new_v4();
    let mut client = app.client.clone();

    // Act
    let online = client.set_online(as_driver(stranger, SetOnlineRequest {})).await;
    let offline = client
        .set_offline(as_driver(stranger, SetOfflineRequest {}))
        .await;
    let location = client
        .update_location(as_driver(
            stranger,
            UpdateLocationRequest {
                location: lat_lng(SEOUL_STATION),
            },
        ))
        .await;
    let get = client.get_driver(as_driver(stranger, GetDriverRequest {})).await;

    // Assert
    for result in [
        online.map(drop),
        offline.map(drop),
        location.map(drop),
        get.map(drop),
    ] {
        assert_eq!(result.expect_err("not registered").code(), Code::NotFound);
    }
    assert_eq!(app.row_counts().await, (0, 0, 0));
}

#[tokio::test]
async fn a_service_cannot_act_as_a_driver() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let err = app
        .client
        .clone()
        .register_driver(as_service(registration(TaxiType::Normal)))
        .await
        .expect_err("drivers only");

    // Assert
    assert_eq!(err.code(), Code::PermissionDenied);
}
