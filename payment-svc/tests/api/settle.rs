//! SettleFinal: charge the shortfall, refund the excess, settle to zero or to a
//! fee, nothing owed, idempotent replay, and resuming pending payments.

use taxi_proto::payment::v1::{EntryKind, EntryStatus, ListPaymentsRequest};
use tokio::task::JoinSet;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{
    CARD, FlakyProvider, advance, as_service, event_types, settle, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn settling_above_the_advance_charges_the_difference() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;

    // Act
    let settled = app
        .settle_final(settle(paid.call_id, 12_300, "settle-1"))
        .await
        .expect("settled");

    // Assert
    let entry = settled.entry.expect("a final charge");
    assert_eq!(entry.kind(), EntryKind::FinalCharge);
    assert_eq!(entry.status(), EntryStatus::Approved);
    assert_eq!(entry.amount_krw, 2_300);
    assert_eq!(entry.customer_id, paid.customer_id.to_string());
    assert_eq!(settled.net_paid_krw, 12_300);
    assert_eq!(
        app.events(paid.call_id).await,
        [
            ("payment.advance_paid".to_owned(), 1),
            ("payment.final_settled".to_owned(), 2)
        ]
    );
}

#[tokio::test]
async fn settling_below_the_advance_refunds_the_excess() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;

    // Act
    let settled = app
        .settle_final(settle(paid.call_id, 7_800, "settle-1"))
        .await
        .expect("settled");

    // Assert
    let entry = settled.entry.expect("a refund");
    assert_eq!(entry.kind(), EntryKind::Refund);
    assert_eq!(entry.status(), EntryStatus::Approved);
    assert_eq!(entry.amount_krw, 2_200);
    assert_eq!(settled.net_paid_krw, 7_800);
    assert_eq!(
        app.events(paid.call_id).await,
        [
            ("payment.advance_paid".to_owned(), 1),
            ("payment.final_settled".to_owned(), 2),
            ("payment.refunded".to_owned(), 3)
        ]
    );
}

#[tokio::test]
async fn settling_a_canceled_call_to_zero_refunds_everything() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;

    // Act
    let settled = app
        .settle_final(settle(paid.call_id, 0, "cancel-1"))
        .await
        .expect("settled");

    // Assert
    assert_eq!(settled.entry.expect("a refund").amount_krw, 10_000);
    assert_eq!(settled.net_paid_krw, 0);
    let listed = app
        .client
        .clone()
        .list_payments(as_service(ListPaymentsRequest {
            call_id: paid.call_id.to_string(),
        }))
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(listed.net_paid_krw, 0);
    assert_eq!(listed.entries.len(), 2);
}

#[tokio::test]
async fn settling_a_canceled_call_to_its_fee_keeps_only_the_fee() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;

    // Act
    let settled = app
        .settle_final(settle(paid.call_id, 3_000, "cancel-1"))
        .await
        .expect("settled");

    // Assert
    assert_eq!(settled.entry.expect("a refund").amount_krw, 7_000);
    assert_eq!(settled.net_paid_krw, 3_000);
}

#[tokio::test]
async fn settling_with_nothing_owed_writes_no_entry_but_records_the_settlement() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;

    // Act
    let settled = app
        .settle_final(settle(paid.call_id, 10_000, "settle-1"))
        .await
        .expect("settled");

    // Assert
    assert_eq!(settled.entry, None);
    assert_eq!(settled.net_paid_krw, 10_000);
    assert_eq!(app.entries(paid.call_id).await.len(), 1);
    assert_eq!(
        event_types(&app.events(paid.call_id).await),
        ["payment.advance_paid", "payment.final_settled"]
    );
}

#[tokio::test]
async fn replaying_a_settlement_gives_the_same_answer_once() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;
    let first = app
        .settle_final(settle(paid.call_id, 12_300, "settle-1"))
        .await
        .expect("settled");

    // Act
    let replay = app
        .settle_final(settle(paid.call_id, 12_300, "settle-1"))
        .await
        .expect("replayed");

    // Assert
    assert_eq!(replay, first);
    assert_eq!(app.entries(paid.call_id).await.len(), 2);
    assert_eq!(app.events(paid.call_id).await.len(), 2);
}

#[tokio::test]
async fn replaying_a_settlement_that_moved_nothing_moves_nothing_even_after_a_refund() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;
    app.settle_final(settle(paid.call_id, 10_000, "settle-1"))
        .await
        .expect("settled");
    app.client
        .clone()
        .refund(as_service(crate::helpers::refund(
            paid.call_id,
            1_000,
            "goodwill",
        )))
        .await
        .expect("refunded");

    // Act
    let replay = app
        .settle_final(settle(paid.call_id, 10_000, "settle-1"))
        .await
        .expect("replayed");

    // Assert
    assert_eq!(replay.entry, None);
    assert_eq!(replay.net_paid_krw, 9_000);
    assert_eq!(app.entries(paid.call_id).await.len(), 2);
    assert_eq!(
        event_types(&app.events(paid.call_id).await),
        [
            "payment.advance_paid",
            "payment.final_settled",
            "payment.refunded"
        ]
    );
}

#[tokio::test]
async fn reusing_a_settlement_key_for_another_amount_is_a_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;
    app.settle_final(settle(paid.call_id, 12_300, "settle-1"))
        .await
        .expect("settled");

    // Act
    let status = app
        .settle_final(settle(paid.call_id, 13_000, "settle-1"))
        .await
        .expect_err("key reused");

    // Assert
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(app.entries(paid.call_id).await.len(), 2);
}

#[tokio::test]
async fn reusing_an_advance_key_for_a_settlement_is_a_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;

    // Act
    let status = app
        .settle_final(settle(paid.call_id, 12_300, &paid.advance.idempotency_key))
        .await
        .expect_err("key reused");

    // Assert
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(app.entries(paid.call_id).await.len(), 1);
}

#[tokio::test]
async fn settling_a_charge_without_an_advance_is_a_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let call_id = Uuid::new_v4();

    // Act
    let status = app
        .settle_final(settle(call_id, 5_000, "settle-1"))
        .await
        .expect_err("nothing to charge");

    // Assert
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(app.rows_written().await, 0);
}

#[tokio::test]
async fn settling_resumes_an_advance_an_outage_left_pending() {
    // Arrange
    let app = spawn_app_with(FlakyProvider::new(1)).await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    app.charge_advance(advance(call_id, customer_id, 10_000, CARD, "adv-1"))
        .await
        .expect_err("outage");

    // Act
    let settled = app
        .settle_final(settle(call_id, 0, "cancel-1"))
        .await
        .expect("settled");

    // Assert
    assert_eq!(settled.net_paid_krw, 0);
    assert_eq!(
        app.entries(call_id).await,
        [
            ("ADVANCE".to_owned(), "APPROVED".to_owned(), 10_000),
            ("REFUND".to_owned(), "APPROVED".to_owned(), 10_000)
        ]
    );
    assert_eq!(
        event_types(&app.events(call_id).await),
        [
            "payment.advance_paid",
            "payment.final_settled",
            "payment.refunded"
        ]
    );
}

#[tokio::test]
async fn concurrent_identical_settlements_refund_once() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;
    let request = settle(paid.call_id, 4_000, "settle-1");

    // Act
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        let (mut client, request) = (app.client.clone(), request.clone());
        tasks.spawn(async move { client.settle_final(as_service(request)).await });
    }
    while let Some(joined) = tasks.join_next().await {
        let settled = joined.expect("task ran").expect("settled").into_inner();
        assert_eq!(settled.net_paid_krw, 4_000);
    }

    // Assert
    assert_eq!(app.entries(paid.call_id).await.len(), 2);
    assert_eq!(
        event_types(&app.events(paid.call_id).await),
        [
            "payment.advance_paid",
            "payment.final_settled",
            "payment.refunded"
        ]
    );
}

#[tokio::test]
async fn a_declined_final_charge_is_charged_again_to_another_card_under_a_new_key() {
    // Arrange: an advance on a card that takes no charge above 5,000 KRW,
    // whose final charge of 7,000 is declined.
    let app = spawn_app().await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    app.charge_advance(advance(call_id, customer_id, 4_000, "tok_limit_5000", "adv"))
        .await
        .expect("advance approved");
    let declined = app
        .settle_final(settle(call_id, 11_000, "settle"))
        .await
        .expect("answered");

    // Act
    let mut again = settle(call_id, 11_000, "settle/1");
    again.payment_method = CARD.into();
    let paid = app.settle_final(again).await.expect("answered");

    // Assert
    assert_eq!(declined.entry.expect("a charge").status(), EntryStatus::Declined);
    assert_eq!(declined.net_paid_krw, 4_000);
    let entry = paid.entry.expect("a charge");
    assert_eq!(
        (entry.kind(), entry.status()),
        (EntryKind::FinalCharge, EntryStatus::Approved)
    );
    assert_eq!(entry.amount_krw, 7_000);
    assert_eq!(paid.net_paid_krw, 11_000);
}
