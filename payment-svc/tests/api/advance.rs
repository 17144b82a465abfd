//! ChargeAdvance: approval, decline, idempotent replay, key reuse, one advance
//! per call, concurrency and provider outages.

use taxi_proto::payment::v1::{EntryKind, EntryStatus};
use tokio::task::JoinSet;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{CARD, FlakyProvider, advance, event_types, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_approved_advance_is_recorded_with_an_advance_paid_event() {
    // Arrange
    let app = spawn_app().await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());

    // Act
    let entry = app
        .charge_advance(advance(call_id, customer_id, 15_000, CARD, "adv-1"))
        .await
        .expect("approved");

    // Assert
    assert_eq!(entry.status(), EntryStatus::Approved);
    assert_eq!(entry.kind(), EntryKind::Advance);
    assert_eq!(entry.amount_krw, 15_000);
    assert_eq!(entry.call_id, call_id.to_string());
    assert_eq!(entry.customer_id, customer_id.to_string());
    assert!(!entry.provider_reference.is_empty());
    assert_eq!(
        app.entries(call_id).await,
        [("ADVANCE".to_owned(), "APPROVED".to_owned(), 15_000)]
    );
    assert_eq!(
        app.events(call_id).await,
        [("payment.advance_paid".to_owned(), 1)]
    );
}

#[tokio::test]
async fn a_declined_card_gives_a_declined_entry_and_a_payment_declined_event() {
    // Arrange
    let app = spawn_app().await;
    let call_id = Uuid::new_v4();

    // Act
    let entry = app
        .charge_advance(advance(call_id, Uuid::new_v4(), 15_000, "tok_decline", "adv-1"))
        .await
        .expect("a decline is an answer, not an error");

    // Assert
    assert_eq!(entry.status(), EntryStatus::Declined);
    assert_eq!(entry.provider_reference, "card declined");
    assert_eq!(
        app.entries(call_id).await,
        [("ADVANCE".to_owned(), "DECLINED".to_owned(), 15_000)]
    );
    assert_eq!(event_types(&app.events(call_id).await), ["payment.declined"]);
}

#[tokio::test]
async fn replaying_a_key_returns_the_same_entry_without_charging_again() {
    // Arrange
    let provider = FlakyProvider::new(0);
    let app = spawn_app_with(provider.clone()).await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    let request = advance(call_id, customer_id, 15_000, CARD, "adv-1");
    let first = app.charge_advance(request.clone()).await.expect("approved");

    // Act
    let replay = app.charge_advance(request).await.expect("replayed");

    // Assert
    assert_eq!(replay, first);
    assert_eq!(provider.calls(), 1);
    assert_eq!(app.entries(call_id).await.len(), 1);
    assert_eq!(app.events(call_id).await.len(), 1);
}

#[tokio::test]
async fn reusing_a_key_with_a_different_amount_is_a_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    app.charge_advance(advance(call_id, customer_id, 15_000, CARD, "adv-1"))
        .await
        .expect("approved");

    // Act
    let status = app
        .charge_advance(advance(call_id, customer_id, 16_000, CARD, "adv-1"))
        .await
        .expect_err("key reused");

    // Assert
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("idempotency_key was already used"));
    assert_eq!(app.entries(call_id).await.len(), 1);
}

#[tokio::test]
async fn reusing_a_key_for_another_call_is_a_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let customer_id = Uuid::new_v4();
    app.charge_advance(advance(Uuid::new_v4(), customer_id, 15_000, CARD, "adv-1"))
        .await
        .expect("approved");
    let other_call = Uuid::new_v4();

    // Act
    let status = app
        .charge_advance(advance(other_call, customer_id, 15_000, CARD, "adv-1"))
        .await
        .expect_err("key reused");

    // Assert
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(app.entries(other_call).await.is_empty());
}

#[tokio::test]
async fn a_second_advance_with_another_key_is_a_failed_precondition() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(15_000).await;

    // Act
    let status = app
        .charge_advance(advance(
            paid.call_id,
            paid.customer_id,
            15_000,
            CARD,
            "another-key",
        ))
        .await
        .expect_err("one advance per call");

    // Assert
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(app.entries(paid.call_id).await.len(), 1);
    assert_eq!(app.events(paid.call_id).await.len(), 1);
}

#[tokio::test]
async fn after_a_decline_another_card_may_be_tried() {
    // Arrange
    let app = spawn_app().await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    app.charge_advance(advance(call_id, customer_id, 15_000, "tok_decline", "adv-1"))
        .await
        .expect("declined");

    // Act
    let entry = app
        .charge_advance(advance(call_id, customer_id, 15_000, CARD, "adv-2"))
        .await
        .expect("approved");

    // Assert
    assert_eq!(entry.status(), EntryStatus::Approved);
    assert_eq!(
        app.events(call_id).await,
        [
            ("payment.declined".to_owned(), 1),
            ("payment.advance_paid".to_owned(), 2)
        ]
    );
}

#[tokio::test]
async fn ten_concurrent_identical_advances_make_one_entry_and_one_event() {
    // Arrange
    let app = spawn_app().await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    let request = advance(call_id, customer_id, 15_000, CARD, "adv-1");

    // Act
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        let (app_client, request) = (app.client.clone(), request.clone());
        tasks.spawn(async move {
            let mut client = app_client;
            client.charge_advance(crate::helpers::as_service(request)).await
        });
    }
    let mut entry_ids = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let entry = joined
            .expect("task ran")
            .expect("approved")
            .into_inner()
            .entry
            .expect("entry");
        assert_eq!(entry.status(), EntryStatus::Approved);
        entry_ids.push(entry.entry_id);
    }

    // Assert
    entry_ids.dedup();
    assert_eq!(entry_ids.len(), 1, "every caller saw the same entry");
    assert_eq!(app.entries(call_id).await.len(), 1);
    assert_eq!(
        app.events(call_id).await,
        [("payment.advance_paid".to_owned(), 1)]
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable_and_leaves_the_entry_pending() {
    // Arrange
    let app = spawn_app().await;
    let call_id = Uuid::new_v4();

    // Act
    let status = app
        .charge_advance(advance(
            call_id,
            Uuid::new_v4(),
            15_000,
            "tok_unavailable",
            "adv-1",
        ))
        .await
        .expect_err("provider down");

    // Assert
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        app.entries(call_id).await,
        [("ADVANCE".to_owned(), "PENDING".to_owned(), 15_000)]
    );
    assert!(app.events(call_id).await.is_empty());
}

#[tokio::test]
async fn a_retry_with_the_same_key_after_an_outage_finishes_the_pending_entry() {
    // Arrange
    let app = spawn_app_with(FlakyProvider::new(1)).await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    let request = advance(call_id, customer_id, 15_000, CARD, "adv-1");
    let outage = app.charge_advance(request.clone()).await.expect_err("outage");
    assert_eq!(outage.code(), Code::Unavailable);

    // Act
    let entry = app.charge_advance(request).await.expect("resumed");

    // Assert
    assert_eq!(entry.status(), EntryStatus::Approved);
    assert_eq!(
        app.entries(call_id).await,
        [("ADVANCE".to_owned(), "APPROVED".to_owned(), 15_000)]
    );
    assert_eq!(
        app.events(call_id).await,
        [("payment.advance_paid".to_owned(), 1)]
    );
}

#[tokio::test]
async fn a_pending_advance_blocks_an_advance_under_another_key() {
    // Arrange
    let app = spawn_app().await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    app.charge_advance(advance(call_id, customer_id, 15_000, "tok_unavailable", "adv-1"))
        .await
        .expect_err("provider down");

    // Act
    let status = app
        .charge_advance(advance(call_id, customer_id, 15_000, CARD, "adv-2"))
        .await
        .expect_err("the first may still go through");

    // Assert
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(app.entries(call_id).await.len(), 1);
}
