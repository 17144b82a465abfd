//! Refund: within the net paid, beyond it, and replays.

use taxi_proto::payment::v1::{EntryKind, EntryStatus};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{as_service, event_types, refund, spawn_app};

#[tokio::test]
async fn a_refund_within_the_net_is_approved_with_a_payment_refunded_event() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;

    // Act
    let refunded = app
        .client
        .clone()
        .refund(as_service(refund(paid.call_id, 4_000, "refund-1")))
        .await
        .expect("refunded")
        .into_inner();

    // Assert
    let entry = refunded.entry.expect("a refund entry");
    assert_eq!(entry.kind(), EntryKind::Refund);
    assert_eq!(entry.status(), EntryStatus::Approved);
    assert_eq!(entry.amount_krw, 4_000);
    assert_eq!(refunded.net_paid_krw, 6_000);
    assert_eq!(
        event_types(&app.events(paid.call_id).await),
        ["payment.advance_paid", "payment.refunded"]
    );
}

#[tokio::test]
async fn a_refund_beyond_the_net_is_a_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;
    app.client
        .clone()
        .refund(as_service(refund(paid.call_id, 4_000, "refund-1")))
        .await
        .expect("refunded");

    // Act
    let status = app
        .client
        .clone()
        .refund(as_service(refund(paid.call_id, 6_001, "refund-2")))
        .await
        .expect_err("more than paid");

    // Assert
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(app.entries(paid.call_id).await.len(), 2);
}

#[tokio::test]
async fn refunding_a_call_with_no_payments_is_a_failed_precondition() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let status = app
        .client
        .clone()
        .refund(as_service(refund(Uuid::new_v4(), 1, "refund-1")))
        .await
        .expect_err("nothing paid");

    // Assert
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(app.rows_written().await, 0);
}

#[tokio::test]
async fn replaying_a_refund_refunds_once() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;
    let first = app
        .client
        .clone()
        .refund(as_service(refund(paid.call_id, 10_000, "refund-1")))
        .await
        .expect("refunded")
        .into_inner();

    // Act
    let replay = app
        .client
        .clone()
        .refund(as_service(refund(paid.call_id, 10_000, "refund-1")))
        .await
        .expect("replayed")
        .into_inner();

    // Assert
    assert_eq!(replay, first);
    assert_eq!(replay.net_paid_krw, 0);
    assert_eq!(app.entries(paid.call_id).await.len(), 2);
    assert_eq!(app.events(paid.call_id).await.len(), 2);
}
