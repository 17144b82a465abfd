//! Who may call what: internal methods need the service role, every method an
//! identity.

use taxi_proto::{
    common::v1::TaxiType,
    dispatch::v1::{
        AssignDriverRequest, CheckAvailabilityRequest, GetDriverRequest, ReleaseDriverRequest,
        SetOnlineRequest, WatchOffersRequest,
    },
};
use tonic::{Code, Request};
use uuid::Uuid;

use crate::helpers::{SEOUL_STATION, as_customer, as_driver, lat_lng, spawn_app};

fn check() -> CheckAvailabilityRequest {
    CheckAvailabilityRequest {
        taxi_type: TaxiType::Normal.into(),
        pickup: lat_lng(SEOUL_STATION),
        radius_m: 0,
    }
}

fn assign(driver_id: Uuid) -> AssignDriverRequest {
    AssignDriverRequest {
        call_id: Uuid::new_v4().to_string(),
        driver_id: driver_id.to_string(),
        taxi_type: TaxiType::Normal.into(),
    }
}

fn release(driver_id: Uuid) -> ReleaseDriverRequest {
    ReleaseDriverRequest {
        call_id: Uuid::new_v4().to_string(),
        driver_id: driver_id.to_string(),
    }
}

#[tokio::test]
async fn internal_methods_refuse_a_customer_with_permission_denied() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let before = app.row_counts().await;
    let mut client = app.client.clone();

    // Act
    let check = client.check_availability(as_customer(check())).await;
    let assign = client.assign_driver(as_customer(assign(driver_id))).await;
    let release = client.release_driver(as_customer(release(driver_id))).await;

    // Assert
    for result in [check.map(drop), assign.map(drop), release.map(drop)] {
        assert_eq!(result.expect_err("internal only").code(), Code::PermissionDenied);
    }
    assert_eq!(app.row_counts().await, before);
}

#[tokio::test]
async fn a_driver_cannot_assign_themselves_a_call() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;

    // Act
    let err = app
        .client
        .clone()
        .assign_driver(as_driver(driver_id, assign(driver_id)))
        .await
        .expect_err("internal only");

    // Assert
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(app.stored_status(driver_id).await, "AVAILABLE");
}

#[tokio::test]
async fn driver_methods_refuse_a_customer_with_permission_denied() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let err = app
        .client
        .clone()
        .get_driver(as_customer(GetDriverRequest {}))
        .await
        .expect_err("drivers only");

    // Assert
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn requests_without_an_identity_are_unauthenticated() {
    // Arrange
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let driver_id = Uuid::new_v4();

    // Act
    let online = client.set_online(Request::new(SetOnlineRequest {})).await;
    let check = client.check_availability(Request::new(check())).await;
    let assign = client.assign_driver(Request::new(assign(driver_id))).await;
    let release = client.release_driver(Request::new(release(driver_id))).await;

    // Assert
    for result in [
        online.map(drop),
        check.map(drop),
        assign.map(drop),
        release.map(drop),
    ] {
        assert_eq!(result.expect_err("no identity").code(), Code::Unauthenticated);
    }
    assert_eq!(app.row_counts().await, (0, 0, 0));
}

#[tokio::test]
async fn watching_offers_refuses_a_customer_with_permission_denied() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let err = app
        .client
        .clone()
        .watch_offers(as_customer(WatchOffersRequest {}))
        .await
        .expect_err("drivers only");

    // Assert
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn watching_offers_as_an_unregistered_driver_is_not_found() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let err = app
        .client
        .clone()
        .watch_offers(as_driver(Uuid::new_v4(), WatchOffersRequest {}))
        .await
        .expect_err("not registered");

    // Assert
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn watching_offers_without_an_identity_is_unauthenticated() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let err = app
        .client
        .clone()
        .watch_offers(Request::new(WatchOffersRequest {}))
        .await
        .expect_err("no identity");

    // Assert
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn an_assignment_from_a_peer_that_only_states_the_service_role_is_refused_and_assigns_nothing() {
    // Arrange: plain metadata, as any process that reaches the port can send.
    let app = spawn_app().await;
    let driver = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let before = app.row_counts().await;
    let mut forged = Request::new(assign(driver));
    forged
        .metadata_mut()
        .insert("x-taxi-role", "service".parse().expect("ascii"));
    forged
        .metadata_mut()
        .insert("x-taxi-subject", "call-svc".parse().expect("ascii"));

    // Act
    let status = app
        .client
        .clone()
        .assign_driver(forged)
        .await
        .expect_err("not an authenticated service");

    // Assert
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(app.row_counts().await, before);
    assert_eq!(app.stored_status(driver).await, "AVAILABLE");
}
