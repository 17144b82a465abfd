//! AssignDriver: one winner per call, one call per driver, safe to retry.

use taxi_proto::{common::v1::TaxiType, dispatch::v1::DriverStatus};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{SEOUL_STATION, assign_request, spawn_app};

#[tokio::test]
async fn twenty_drivers_racing_for_one_call_yield_exactly_one_assignment() {
    // Arrange
    let app = spawn_app().await;
    let mut drivers = Vec::new();
    for _ in 0..20 {
        drivers.push(app.available_driver(TaxiType::Normal, SEOUL_STATION).await);
    }
    let call_id = Uuid::new_v4();
    for &driver_id in &drivers {
        app.offer(call_id, driver_id).await;
    }

    // Act
    let attempts: Vec<_> = drivers
        .iter()
        .map(|&driver_id| {
            let mut client = app.client.clone();
            tokio::spawn(async move {
                client
                    .assign_driver(assign_request(call_id, driver_id, TaxiType::Normal))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.expect("the task completes") {
            Ok(response) => winners.push(response.into_inner().driver.expect("a driver")),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(status.message(), "call already assigned");
                refused += 1;
            }
        }
    }

    // Assert
    assert_eq!(winners.len(), 1);
    assert_eq!(refused, 19);
    assert_eq!(winners[0].status(), DriverStatus::OnCall);
    assert_eq!(winners[0].current_call_id, call_id.to_string());
    assert_eq!(app.events("driver.assigned").await, 1);
    let on_call: i64 = sqlx::query_scalar("SELECT count(*) FROM drivers WHERE status = 'ON_CALL'")
        .fetch_one(&app.db)
        .await
        .expect("drivers");
    assert_eq!(on_call, 1);
}

#[tokio::test]
async fn one_driver_raced_for_several_calls_wins_exactly_one() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let calls: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
    for &call_id in &calls {
        app.offer(call_id, driver_id).await;
    }

    // Act
    let attempts: Vec<_> = calls
        .iter()
        .map(|&call_id| {
            let mut client = app.client.clone();
            tokio::spawn(async move {
                client
                    .assign_driver(assign_request(call_id, driver_id, TaxiType::Normal))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.expect("the task completes") {
            Ok(_) => won += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(status.message(), "driver is on another call");
            }
        }
    }

    // Assert
    assert_eq!(won, 1);
    assert_eq!(app.events("driver.assigned").await, 1);
    let assignments: i64 = sqlx::query_scalar("SELECT count(*) FROM assignments")
        .fetch_one(&app.db)
        .await
        .expect("assignments");
    assert_eq!(assignments, 1, "the losers' claims are rolled back");
}

#[tokio::test]
async fn assign_driver_is_idempotent_for_the_same_call_and_driver() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Van, SEOUL_STATION).await;
    let call_id = Uuid::new_v4();
    app.assign(call_id, driver_id, TaxiType::Van)
        .await
        .expect("assigned");

    // Act
    let repeat = app
        .assign(call_id, driver_id, TaxiType::Van)
        .await
        .expect("a retry succeeds")
        .into_inner()
        .driver
        .expect("a driver");

    // Assert
    assert_eq!(repeat.status(), DriverStatus::OnCall);
    assert_eq!(repeat.current_call_id, call_id.to_string());
    assert_eq!(app.events("driver.assigned").await, 1);
}

#[tokio::test]
async fn a_call_assigned_to_one_driver_is_refused_to_another() {
    // Arrange
    let app = spawn_app().await;
    let first = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let second = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let call_id = Uuid::new_v4();
    app.assign(call_id, first, TaxiType::Normal)
        .await
        .expect("assigned");

    // Act
    let err = app
        .assign(call_id, second, TaxiType::Normal)
        .await
        .expect_err("already taken");

    // Assert
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "call already assigned");
    assert_eq!(app.stored_status(second).await, "AVAILABLE");
}

#[tokio::test]
async fn assign_driver_with_the_wrong_taxi_type_is_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let call_id = Uuid::new_v4();

    // Act
    let err = app
        .assign(call_id, driver_id, TaxiType::Premium)
        .await
        .expect_err("wrong type");

    // Assert
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "driver drives TAXI_TYPE_NORMAL, the call needs TAXI_TYPE_PREMIUM"
    );
    assert_eq!(app.stored_status(driver_id).await, "AVAILABLE");
    assert_eq!(app.events("driver.assigned").await, 0);
    // The refused claim left no assignment, so a fitting driver can still win.
    let premium = app.available_driver(TaxiType::Premium, SEOUL_STATION).await;
    app.assign(call_id, premium, TaxiType::Premium)
        .await
        .expect("the call is still open");
}

#[tokio::test]
async fn assign_driver_to_an_offline_driver_is_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.register(TaxiType::Normal).await;

    // Act
    let err = app
        .assign(Uuid::new_v4(), driver_id, TaxiType::Normal)
        .await
        .expect_err("offline");

    // Assert
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "driver is offline");
}

#[tokio::test]
async fn assign_driver_to_an_unregistered_driver_is_not_found_and_writes_nothing() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let err = app
        .assign(Uuid::new_v4(), Uuid::new_v4(), TaxiType::Normal)
        .await
        .expect_err("unknown driver");

    // Assert
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(app.row_counts().await, (0, 0, 0));
}

#[tokio::test]
async fn assign_driver_without_a_live_offer_is_failed_precondition_with_the_reason_and_assigns_nothing() {
    // Arrange: an available driver who was never offered the call.
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let (_, _, events_before) = app.row_counts().await;

    // Act
    let refused = app
        .client
        .clone()
        .assign_driver(assign_request(Uuid::new_v4(), driver_id, TaxiType::Normal))
        .await
        .expect_err("no offer, no assignment");

    // Assert
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("no live offer"), "{refused:?}");
    assert_eq!(app.stored_status(driver_id).await, "AVAILABLE");
    let (_, assignments, events) = app.row_counts().await;
    assert_eq!((assignments, events), (0, events_before));
}
