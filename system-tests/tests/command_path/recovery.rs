//! A saga left half-way by a crash is finished or undone when call-svc restarts.

use taxi_proto::{
    call::v1::{CallStatus, CancelCallRequest, CancelReason},
    dispatch::v1::DriverStatus,
    payment::v1::EntryKind,
};
use uuid::Uuid;

use crate::helpers::*;

/// Leaves a call claimed and its driver assigned but no advance charged, the
/// state a crash between AssignDriver and ChargeAdvance leaves behind: payment
/// is down during the accept, then call-svc dies.
async fn crash_between_assign_and_charge(system: &mut TestSystem) -> (String, Uuid, Uuid) {
    let customer = Uuid::new_v4();
    let driver = system.online_driver().await;
    let call = system.request_call(customer).await;
    system.stop_payment().await;

    let unavailable = accept(&system.call_client(), driver, &call.call_id)
        .await
        .expect_err("payment down");
    assert_eq!(unavailable.code(), tonic::Code::Unavailable);
    assert_eq!(
        system.driver(driver).await.status(),
        DriverStatus::OnCall,
        "assigned before the crash"
    );

    system.kill_call();
    (call.call_id, customer, driver)
}

async fn restart_after_crash(system: &mut TestSystem) {
    system.start_payment().await;
    // The restarted process takes over every unfinished step at once.
    system.call_config.saga.stale_after_ms = 0;
    system.start_call().await;
}

#[tokio::test]
async fn a_crash_between_assign_and_charge_is_finished_on_restart() {
    // Arrange
    let mut system = spawn_system().await;
    let (call_id, _customer, driver) = crash_between_assign_and_charge(&mut system).await;

    // Act
    restart_after_crash(&mut system).await;

    // Assert
    let accepted = system.wait_for_status(&call_id, CallStatus::Accepted).await;
    assert_eq!(accepted.driver_id, driver.to_string());
    assert_eq!(accepted.version, 2);
    let ledger = system.ledger(&call_id).await;
    assert_eq!(ledger.entries.len(), 1, "charged exactly once");
    assert_eq!(ledger.entries[0].kind(), EntryKind::Advance);
    assert_eq!(ledger.net_paid_krw, accepted.quoted_fare_krw);
    assert_eq!(system.driver(driver).await.status(), DriverStatus::OnCall);
    assert_eq!(
        system.call_events(&call_id).await,
        ["call.requested", "call.accepted"]
    );
}

#[tokio::test]
async fn a_cancel_during_an_unfinished_accept_wins_and_the_accept_is_undone() {
    // Arrange
    let mut system = spawn_system().await;
    let (call_id, customer, driver) = crash_between_assign_and_charge(&mut system).await;
    system.start_call().await;
    let cancel = CancelCallRequest {
        call_id: call_id.clone(),
        expected_version: 1,
    };
    system
        .call_client()
        .cancel_call(as_customer(customer, cancel))
        .await
        .expect("the cancel commits first");
    system.stop_call().await;

    // Act
    restart_after_crash(&mut system).await;

    // Assert
    assert_eq!(
        system.wait_for_driver(driver, DriverStatus::Available).await,
        DriverStatus::Available,
        "the late accept released its driver"
    );
    let call = system.get_call(&call_id).await;
    assert_eq!(call.status(), CallStatus::Canceled);
    assert_eq!(system.ledger(&call_id).await.net_paid_krw, 0, "nothing kept");
    assert_eq!(
        system.call_events(&call_id).await,
        ["call.requested", "call.canceled"]
    );
}

#[tokio::test]
async fn an_accept_that_cannot_charge_until_the_call_would_have_expired_is_given_up() {
    // Arrange: calls expire after 5 s; payment-svc goes down during an accept
    // and stays down.
    let mut config = test_call_config();
    config.saga.expire_after_ms = 5_000;
    config.saga.stale_after_ms = 200;
    let mut system = spawn_system_with(config).await;
    let driver = system.online_driver().await;
    let call = system.request_call(Uuid::new_v4()).await;
    system.stop_payment().await;
    let unavailable = accept(&system.call_client(), driver, &call.call_id)
        .await
        .expect_err("payment down");

    // Act
    let given_up = system.wait_for_status(&call.call_id, CallStatus::Canceled).await;

    // Assert
    assert_eq!(unavailable.code(), tonic::Code::Unavailable);
    assert_eq!(given_up.cancel_reason(), CancelReason::Expired);
    assert_eq!(
        system.wait_for_driver(driver, DriverStatus::Available).await,
        DriverStatus::Available,
        "the driver is free again though payment is still down"
    );
    assert_eq!(
        system.call_events(&call.call_id).await,
        ["call.requested", "call.canceled"]
    );
}
