//! CancelCall: from REQUESTED, from ACCEPTED (refund, release), and racing an accept.

use taxi_proto::{
    call::v1::{CallStatus, CancelCallRequest, CancelReason},
    dispatch::v1::DriverStatus,
};
use uuid::Uuid;

use crate::helpers::*;

fn cancel(call_id: &str, expected_version: i64) -> CancelCallRequest {
    CancelCallRequest {
        call_id: call_id.into(),
        expected_version,
    }
}

#[tokio::test]
async fn canceling_a_requested_call_charges_nothing() {
    // Arrange
    let system = spawn_system().await;
    system.online_driver().await;
    let customer = Uuid::new_v4();
    let call = system.request_call(customer).await;

    // Act
    let canceled = system
        .call_client()
        .cancel_call(as_customer(customer, cancel(&call.call_id, 0)))
        .await
        .expect("cancel")
        .into_inner()
        .call
        .expect("call");

    // Assert
    assert_eq!(
        (canceled.status(), canceled.cancel_reason()),
        (CallStatus::Canceled, CancelReason::Customer)
    );
    assert_eq!(canceled.version, 2);
    assert!(system.ledger(&call.call_id).await.entries.is_empty());
    assert_eq!(
        system.call_events(&call.call_id).await,
        ["call.requested", "call.canceled"]
    );
}

#[tokio::test]
async fn canceling_an_accepted_call_refunds_the_advance_and_releases_the_driver() {
    // Arrange
    let system = spawn_system().await;
    let customer = Uuid::new_v4();
    let (call, driver) = system.accepted_call(customer).await;

    // Act
    let canceled = system
        .call_client()
        .cancel_call(as_customer(customer, cancel(&call.call_id, 0)))
        .await
        .expect("cancel")
        .into_inner()
        .call
        .expect("call");

    // Assert
    assert_eq!(canceled.status(), CallStatus::Canceled);
    assert_eq!(canceled.cancel_fee_krw, 0);
    assert_eq!(
        system.ledger(&call.call_id).await.net_paid_krw,
        0,
        "advance refunded"
    );
    assert_eq!(system.driver(driver).await.status(), DriverStatus::Available);
}

#[tokio::test]
async fn canceling_an_accepted_call_keeps_the_configured_fee() {
    // Arrange
    let mut config = test_call_config();
    config.saga.cancel_fee_krw = 2_000;
    let system = spawn_system_with(config).await;
    let customer = Uuid::new_v4();
    let (call, _driver) = system.accepted_call(customer).await;

    // Act
    let canceled = system
        .call_client()
        .cancel_call(as_customer(customer, cancel(&call.call_id, 0)))
        .await
        .expect("cancel")
        .into_inner()
        .call
        .expect("call");

    // Assert
    assert_eq!(canceled.cancel_fee_krw, 2_000);
    assert_eq!(system.ledger(&call.call_id).await.net_paid_krw, 2_000);
}

#[tokio::test]
async fn a_repeated_cancel_answers_the_canceled_call() {
    // Arrange
    let system = spawn_system().await;
    let customer = Uuid::new_v4();
    let (call, _driver) = system.accepted_call(customer).await;
    let client = system.call_client();
    client
        .clone()
        .cancel_call(as_customer(customer, cancel(&call.call_id, 2)))
        .await
        .expect("cancel");

    // Act
    let again = client
        .clone()
        .cancel_call(as_customer(customer, cancel(&call.call_id, 2)))
        .await
        .expect("again");

    // Assert: the call as it is, after the cancel (3) and its refund (4).
    assert_eq!(again.into_inner().call.expect("call").version, 4);
    assert_eq!(
        system.ledger(&call.call_id).await.entries.len(),
        2,
        "advance and one refund"
    );
}

#[tokio::test]
async fn a_trip_in_progress_cannot_be_canceled() {
    // Arrange
    let system = spawn_system().await;
    let customer = Uuid::new_v4();
    let (call, driver) = system.accepted_call(customer).await;
    let start = taxi_proto::call::v1::StartTripRequest {
        call_id: call.call_id.clone(),
    };
    system
        .call_client()
        .start_trip(as_driver(driver, start))
        .await
        .expect("start");

    // Act
    let refused = system
        .call_client()
        .cancel_call(as_customer(customer, cancel(&call.call_id, 0)))
        .await
        .expect_err("in trip");

    // Assert
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(system.ledger(&call.call_id).await.net_paid_krw, call.advance_krw);
}

/// A cancel guarded by the version the customer saw races a driver's accept:
/// whichever commits first wins, the other is refused, and money and driver
/// end consistent with the winner.
#[tokio::test]
async fn a_cancel_racing_an_accept_leaves_money_and_driver_consistent() {
    let system = spawn_system().await;
    for _round in 0..6 {
        // Arrange
        let customer = Uuid::new_v4();
        let driver = system.online_driver().await;
        let call = system.request_call(customer).await;

        // Act
        let (client, call_id) = (system.call_client(), call.call_id.clone());
        let accepting = tokio::spawn(async move { accept(&client, driver, &call_id).await });
        let canceled = system
            .call_client()
            .cancel_call(as_customer(customer, cancel(&call.call_id, call.version)))
            .await;
        let accepted = accepting.await.expect("join");

        // Assert
        let call = system.get_call(&call.call_id).await;
        let net = system.ledger(&call.call_id).await.net_paid_krw;
        let driver_status = system.driver(driver).await.status();
        match (accepted, canceled) {
            (Ok(_), Err(refused)) => {
                assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
                assert_eq!(call.status(), CallStatus::Accepted);
                assert_eq!(net, call.quoted_fare_krw);
                assert_eq!(driver_status, DriverStatus::OnCall);
            }
            (Err(refused), Ok(_)) => {
                // Refused mid-accept, or, once canceled, the call is gone.
                assert!(
                    matches!(
                        refused.code(),
                        tonic::Code::FailedPrecondition | tonic::Code::NotFound
                    ),
                    "{refused:?}"
                );
                assert_eq!(call.status(), CallStatus::Canceled);
                assert_eq!(net, 0, "any advance is refunded");
                assert_eq!(driver_status, DriverStatus::Available, "the driver is released");
            }
            (accepted, canceled) => panic!("exactly one must win: {accepted:?} / {canceled:?}"),
        }
    }
}
