//! Malformed requests: INVALID_ARGUMENT naming each bad field in
//! `google.rpc.BadRequest`, and nothing written.

use taxi_proto::payment::v1::{ChargeAdvanceRequest, ListPaymentsRequest, RefundRequest, SettleFinalRequest};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

use crate::helpers::{CARD, advance, as_service, refund, settle, spawn_app};

const TOO_MUCH: i64 = 10_000_001;

fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

fn assert_invalid(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert_eq!(violated_fields(status), [field]);
}

#[tokio::test]
async fn every_malformed_advance_field_is_an_invalid_argument_and_writes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let good = || advance(Uuid::new_v4(), Uuid::new_v4(), 10_000, CARD, "adv-1");
    let cases = [
        (
            "call_id",
            ChargeAdvanceRequest {
                call_id: "call-1".into(),
                ..good()
            },
        ),
        (
            "call_id",
            ChargeAdvanceRequest {
                call_id: String::new(),
                ..good()
            },
        ),
        (
            "customer_id",
            ChargeAdvanceRequest {
                customer_id: "kim".into(),
                ..good()
            },
        ),
        (
            "amount_krw",
            ChargeAdvanceRequest {
                amount_krw: 0,
                ..good()
            },
        ),
        (
            "amount_krw",
            ChargeAdvanceRequest {
                amount_krw: -100,
                ..good()
            },
        ),
        (
            "amount_krw",
            ChargeAdvanceRequest {
                amount_krw: TOO_MUCH,
                ..good()
            },
        ),
        (
            "payment_method",
            ChargeAdvanceRequest {
                payment_method: " ".into(),
                ..good()
            },
        ),
        (
            "payment_method",
            ChargeAdvanceRequest {
                payment_method: "t".repeat(65),
                ..good()
            },
        ),
        (
            "idempotency_key",
            ChargeAdvanceRequest {
                idempotency_key: String::new(),
                ..good()
            },
        ),
        (
            "idempotency_key",
            ChargeAdvanceRequest {
                idempotency_key: "k".repeat(129),
                ..good()
            },
        ),
        (
            "idempotency_key",
            ChargeAdvanceRequest {
                idempotency_key: "a\nb".into(),
                ..good()
            },
        ),
    ];

    for (field, request) in cases {
        // Act
        let status = app.charge_advance(request).await.expect_err(field);

        // Assert
        assert_invalid(&status, field);
    }
    assert_eq!(app.rows_written().await, 0);
}

#[tokio::test]
async fn every_malformed_settlement_field_is_an_invalid_argument_and_writes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let good = || settle(Uuid::new_v4(), 10_000, "settle-1");
    let cases = [
        (
            "call_id",
            SettleFinalRequest {
                call_id: "call-1".into(),
                ..good()
            },
        ),
        (
            "final_amount_krw",
            SettleFinalRequest {
                final_amount_krw: -1,
                ..good()
            },
        ),
        (
            "final_amount_krw",
            SettleFinalRequest {
                final_amount_krw: TOO_MUCH,
                ..good()
            },
        ),
        (
            "idempotency_key",
            SettleFinalRequest {
                idempotency_key: String::new(),
                ..good()
            },
        ),
    ];

    for (field, request) in cases {
        // Act
        let status = app.settle_final(request).await.expect_err(field);

        // Assert
        assert_invalid(&status, field);
    }
    assert_eq!(app.rows_written().await, 0);
}

#[tokio::test]
async fn every_malformed_refund_field_is_an_invalid_argument_and_writes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;
    let rows_before = app.rows_written().await;
    let good = || refund(paid.call_id, 1_000, "refund-1");
    let cases = [
        (
            "call_id",
            RefundRequest {
                call_id: "call-1".into(),
                ..good()
            },
        ),
        (
            "amount_krw",
            RefundRequest {
                amount_krw: 0,
                ..good()
            },
        ),
        (
            "amount_krw",
            RefundRequest {
                amount_krw: TOO_MUCH,
                ..good()
            },
        ),
        (
            "idempotency_key",
            RefundRequest {
                idempotency_key: String::new(),
                ..good()
            },
        ),
        (
            "reason",
            RefundRequest {
                reason: "r".repeat(201),
                ..good()
            },
        ),
    ];

    for (field, request) in cases {
        // Act
        let status = app
            .client
            .clone()
            .refund(as_service(request))
            .await
            .expect_err(field);

        // Assert
        assert_invalid(&status, field);
    }
    assert_eq!(app.rows_written().await, rows_before);
}

#[tokio::test]
async fn listing_payments_needs_a_uuid_call_id() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let status = app
        .client
        .clone()
        .list_payments(as_service(ListPaymentsRequest {
            call_id: "call-1".into(),
        }))
        .await
        .expect_err("not a uuid");

    // Assert
    assert_invalid(&status, "call_id");
}

#[tokio::test]
async fn all_bad_fields_are_reported_at_once() {
    // Arrange
    let app = spawn_app().await;
    let request = ChargeAdvanceRequest {
        call_id: String::new(),
        customer_id: String::new(),
        amount_krw: 0,
        payment_method: String::new(),
        idempotency_key: String::new(),
    };

    // Act
    let status = app.charge_advance(request).await.expect_err("all bad");

    // Assert
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        [
            "call_id",
            "customer_id",
            "amount_krw",
            "payment_method",
            "idempotency_key"
        ]
    );
}
