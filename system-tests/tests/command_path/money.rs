//! Honest money: the call (and its view) carry what the customer paid, was
//! refunded and still owes; a declined final charge stays owed until another
//! card pays it; the fare is never priced on a distance left out.

use svc_kit::identity::Caller;
use system_tests::{poll::PATIENCE, poll::poll, trip};
use taxi_proto::{
    call::v1::{
        Call, CallStatus, CancelCallRequest, CompleteTripRequest, QuoteFareRequest, SettleBalanceRequest,
    },
    common::v1::TaxiType,
};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::*;

/// (paid, refunded, owed) of a call or a view.
fn money(call: &Call) -> (i64, i64, i64) {
    (call.paid_krw, call.refunded_krw, call.owed_krw)
}

/// The call once its money satisfies `done` (the settlement runs right after
/// the command that owes it), for up to 30 s.
async fn call_once(system: &TestSystem, call_id: &str, done: impl Fn(&Call) -> bool) -> Call {
    poll(PATIENCE, || system.get_call(call_id), done).await
}

#[tokio::test]
async fn a_trip_shows_what_was_paid_a_cancel_what_was_refunded_and_a_free_cancel_nothing() {
    // Arrange: a cancellation fee of 1,000 KRW.
    let mut config = test_call_config();
    config.saga.cancel_fee_krw = 1_000;
    let system = spawn_system_with(config).await;
    let customer = Uuid::new_v4();
    let (trip, driver) = system.accepted_call(customer).await;
    let (kept, _) = system.accepted_call(customer).await;
    system.online_driver().await;
    let free = system.request_call(customer).await;
    let calls = system.call_client();
    let cancel = |call: &Call| CancelCallRequest {
        call_id: call.call_id.clone(),
        expected_version: 0,
    };

    // Act
    start(&calls, driver, &trip.call_id).await.expect("start");
    // 15 km: more than the quoted route, so the final charge tops up the advance.
    let completed = complete(&calls, driver, &trip.call_id, 15_000)
        .await
        .expect("complete");
    for call in [&kept, &free] {
        calls
            .clone()
            .cancel_call(as_customer(customer, cancel(call)))
            .await
            .expect("cancel");
    }
    let fare = completed.final_fare_krw;
    let trip = call_once(&system, &trip.call_id, |c| c.paid_krw == fare).await;
    let kept = call_once(&system, &kept.call_id, |c| c.refunded_krw > 0).await;
    let free = system.get_call(&free.call_id).await;

    // Assert
    assert_eq!(
        money(&completed),
        (completed.advance_krw, 0, fare - completed.advance_krw),
        "CompleteTrip answers before the final charge: the rest is owed"
    );
    assert_eq!(money(&trip), (fare, 0, 0), "the final fare, all paid");
    assert_eq!(system.ledger(&trip.call_id).await.net_paid_krw, fare);
    assert_eq!(
        money(&kept),
        (kept.advance_krw, kept.advance_krw - 1_000, 0),
        "the advance less the fee came back"
    );
    assert_eq!(system.ledger(&kept.call_id).await.net_paid_krw, 1_000);
    assert_eq!(money(&free), (0, 0, 0), "canceled before a driver: nothing paid");
}

#[tokio::test]
async fn a_declined_final_charge_is_owed_on_the_call_and_its_view_until_another_card_pays_it() {
    // Arrange: a card that takes no single charge above 20,000 KRW pays the
    // advance, then a 100 km trip; its final charge is declined.
    let mut system = spawn_system().await;
    system.start_query().await;
    let customer = Uuid::new_v4();
    let driver = system.online_driver().await;
    let call = system.request_call_paying(customer, "tok_limit_20000").await;
    system.wait_for_offer(&call.call_id, driver).await;
    let calls = system.call_client();
    accept(&calls, driver, &call.call_id).await.expect("accept");
    start(&calls, driver, &call.call_id).await.expect("start");
    let completed = complete(&calls, driver, &call.call_id, 100_000)
        .await
        .expect("complete");
    let owed = completed.final_fare_krw - completed.advance_krw;
    let settle = |card: &str| SettleBalanceRequest {
        call_id: call.call_id.clone(),
        payment_method: card.into(),
    };

    // Act
    let owing = system.get_call(&call.call_id).await;
    let view = trip::call_view(
        &system.query_client(),
        &Caller::Customer(customer),
        &call.call_id,
        4,
    )
    .await
    .expect("view");
    let declined_again = calls
        .clone()
        .settle_balance(as_customer(customer, settle("tok_decline")))
        .await
        .expect_err("that card is declined too");
    let paid = calls
        .clone()
        .settle_balance(as_customer(customer, settle("tok_visa")))
        .await
        .expect("another card pays")
        .into_inner()
        .call
        .expect("call");
    let nothing_left = calls
        .clone()
        .settle_balance(as_customer(customer, settle("tok_visa")))
        .await
        .expect_err("nothing is owed any more");
    let settled_view = trip::call_view(
        &system.query_client(),
        &Caller::Customer(customer),
        &call.call_id,
        paid.version,
    )
    .await
    .expect("view");

    // Assert
    assert!(owed > 0, "{completed:?}");
    assert_eq!(
        money(&owing),
        (completed.advance_krw, 0, owed),
        "the unpaid final charge shows"
    );
    assert_eq!(
        (view.paid_krw, view.refunded_krw, view.owed_krw),
        (completed.advance_krw, 0, owed)
    );
    assert_eq!(
        declined_again.code(),
        Code::FailedPrecondition,
        "{declined_again:?}"
    );
    assert!(
        declined_again
            .message()
            .contains(&format!("{owed} KRW is still owed")),
        "{declined_again:?}"
    );
    assert_eq!(money(&paid), (completed.final_fare_krw, 0, 0));
    assert_eq!(paid.status(), CallStatus::Completed);
    assert_eq!(nothing_left.code(), Code::FailedPrecondition, "{nothing_left:?}");
    assert_eq!(
        (settled_view.paid_krw, settled_view.owed_krw),
        (completed.final_fare_krw, 0)
    );
    let ledger = system.ledger(&call.call_id).await;
    assert_eq!(ledger.net_paid_krw, completed.final_fare_krw, "{ledger:?}");
}

#[tokio::test]
async fn complete_trip_without_a_distance_is_invalid_argument_naming_distance_m_and_bills_nothing() {
    // Arrange
    let system = spawn_system().await;
    let (call, driver) = system.accepted_call(Uuid::new_v4()).await;
    let calls = system.call_client();
    start(&calls, driver, &call.call_id).await.expect("start");

    // Act
    let missing = calls
        .clone()
        .complete_trip(as_driver(
            driver,
            CompleteTripRequest {
                call_id: call.call_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("no distance");

    // Assert
    assert_eq!(bad_fields(&missing), ["distance_m"]);
    assert_eq!(system.get_call(&call.call_id).await.status(), CallStatus::InTrip);
    assert_eq!(
        system.ledger(&call.call_id).await.entries.len(),
        1,
        "only the advance"
    );
}

#[tokio::test]
async fn the_quote_says_what_canceling_after_an_accept_costs_as_configured() {
    // Arrange
    let mut config = test_call_config();
    config.saga.cancel_fee_krw = 1_500;
    let with_fee = spawn_system_with(config).await;
    let free = spawn_system().await;
    let quote = QuoteFareRequest {
        pickup: Some(PICKUP),
        dropoff: Some(DROPOFF),
        taxi_type: TaxiType::Normal.into(),
    };

    // Act
    let mut fees = Vec::new();
    for system in [&with_fee, &free] {
        let answer = system
            .call_client()
            .quote_fare(as_customer(Uuid::new_v4(), quote))
            .await
            .expect("quote")
            .into_inner();
        fees.push(answer.cancel_fee_krw);
    }

    // Assert
    assert_eq!(fees, [1_500, 0]);
}
