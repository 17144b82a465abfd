//! AcceptCall: one winner, assignment before payment, a declined advance.

use taxi_proto::{
    call::v1::{CallStatus, CancelReason},
    common::v1::TaxiType,
    dispatch::v1::DriverStatus,
    payment::v1::{EntryKind, EntryStatus},
};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn twenty_drivers_racing_for_one_call_yield_exactly_one_winner() {
    // Arrange: all twenty are offered the call.
    let dispatch = dispatch_svc::Config {
        offer_fanout: 20,
        ..dispatch_svc::Config::default()
    };
    let system = spawn(System::builder().dispatch_config(dispatch)).await;
    let mut drivers = Vec::new();
    for _ in 0..20 {
        drivers.push(system.online_driver().await);
    }
    let call = system.request_call(Uuid::new_v4()).await;

    // Act
    let mut racers = tokio::task::JoinSet::new();
    for driver in drivers.clone() {
        let (client, call_id) = (system.call_client(), call.call_id.clone());
        racers.spawn(async move { (driver, accept(&client, driver, &call_id).await) });
    }
    let mut winners = Vec::new();
    while let Some(joined) = racers.join_next().await {
        match joined.expect("join") {
            (driver, Ok(_)) => winners.push(driver),
            // Refused while the winner accepts, or told the call is gone
            // (another driver's call is none of theirs) once it has.
            (_, Err(status)) => assert!(
                matches!(
                    status.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::NotFound
                ),
                "{status:?}"
            ),
        }
    }

    // Assert
    assert_eq!(winners.len(), 1, "exactly one driver wins");
    let accepted = system.get_call(&call.call_id).await;
    assert_eq!(accepted.status(), CallStatus::Accepted);
    assert_eq!(accepted.driver_id, winners[0].to_string());
    let advances = system.ledger(&call.call_id).await.entries;
    assert_eq!(advances.len(), 1, "one advance charge");
    assert_eq!(advances[0].status(), EntryStatus::Approved);
    for driver in drivers {
        let expected = if driver == winners[0] {
            DriverStatus::OnCall
        } else {
            DriverStatus::Available
        };
        assert_eq!(system.driver(driver).await.status(), expected);
    }
}

#[tokio::test]
async fn the_winner_retrying_accept_gets_the_same_call() {
    // Arrange
    let system = spawn_system().await;
    let (call, driver) = system.accepted_call(Uuid::new_v4()).await;

    // Act
    let retried = accept(&system.call_client(), driver, &call.call_id)
        .await
        .expect("retry");

    // Assert
    assert_eq!(retried, call);
    assert_eq!(system.ledger(&call.call_id).await.entries.len(), 1);
}

#[tokio::test]
async fn a_declined_advance_cancels_the_call_and_releases_the_driver() {
    // Arrange
    let system = spawn_system().await;
    let driver = system.online_driver().await;
    let call = system.request_call_paying(Uuid::new_v4(), "tok_decline").await;

    // Act
    let refused = accept(&system.call_client(), driver, &call.call_id)
        .await
        .expect_err("declined");

    // Assert
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let canceled = system.get_call(&call.call_id).await;
    assert_eq!(canceled.status(), CallStatus::Canceled);
    assert_eq!(canceled.cancel_reason(), CancelReason::PaymentDeclined);
    assert_eq!(system.driver(driver).await.status(), DriverStatus::Available);
    let ledger = system.ledger(&call.call_id).await;
    assert_eq!(ledger.net_paid_krw, 0);
    assert_eq!(ledger.entries.len(), 1);
    assert_eq!(
        (ledger.entries[0].kind(), ledger.entries[0].status()),
        (EntryKind::Advance, EntryStatus::Declined)
    );
    assert_eq!(
        system.call_events(&call.call_id).await,
        ["call.requested", "call.canceled"]
    );
}

#[tokio::test]
async fn a_driver_of_another_taxi_type_cannot_accept_and_nothing_is_charged() {
    // Arrange
    let system = spawn_system().await;
    system.online_driver().await;
    let van_driver = system.online_driver_at(TaxiType::Van, PICKUP).await;
    let call = system.request_call(Uuid::new_v4()).await;

    // Act
    let refused = accept(&system.call_client(), van_driver, &call.call_id)
        .await
        .expect_err("wrong type");

    // Assert
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        system.get_call(&call.call_id).await.status(),
        CallStatus::Requested
    );
    assert!(
        system.ledger(&call.call_id).await.entries.is_empty(),
        "assignment is checked before payment"
    );
    let claims = system
        .count("SELECT count(*) FROM call.calls WHERE claim_driver_id IS NOT NULL")
        .await;
    assert_eq!(claims, 0, "the call is open to other drivers again");
}

#[tokio::test]
async fn an_unregistered_driver_cannot_accept() {
    // Arrange
    let system = spawn_system().await;
    system.online_driver().await;
    let call = system.request_call(Uuid::new_v4()).await;

    // Act
    let refused = accept(&system.call_client(), Uuid::new_v4(), &call.call_id)
        .await
        .expect_err("unknown driver");

    // Assert
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(system.ledger(&call.call_id).await.entries.is_empty());
}

#[tokio::test]
async fn an_unaccepted_call_expires() {
    // Arrange
    let mut config = test_call_config();
    config.saga.expire_after_ms = 300;
    let system = spawn_system_with(config).await;
    system.online_driver().await;
    let call = system.request_call(Uuid::new_v4()).await;

    // Act
    let expired = system.wait_for_status(&call.call_id, CallStatus::Canceled).await;

    // Assert
    assert_eq!(expired.cancel_reason(), CancelReason::Expired);
    assert_eq!(expired.version, 2);
    assert_eq!(
        system.call_events(&call.call_id).await,
        ["call.requested", "call.canceled"]
    );
}
