//! The ledger's business figures after real work against PostgreSQL: the
//! counters move by exactly the money and the charges the commands made, and
//! a replayed key moves nothing.
//!
//! The test drives [`Payments`] itself (the service's registry is wired in
//! `App::build`; the admin port's end-to-end check lives with it).

use std::{sync::Arc, time::Duration};

use payment_svc::{
    provider::{DECLINED_TOKEN, SimulatedProvider, UNAVAILABLE_TOKEN},
    service::{ChargeAdvance, Payments, Refund, SettleFinal},
    store::{self, Store},
};
use svc_kit::{
    db::DatabaseConfig,
    metrics::{Registry, encode},
};
use uuid::Uuid;

use crate::helpers::CARD;

async fn payments() -> Payments {
    svc_kit::testing::init_logs();
    let url = svc_kit::testing::fresh_database()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 accepts user postgres");
    let config = DatabaseConfig {
        url,
        ..DatabaseConfig::default()
    };
    let pool = svc_kit::db::connect(&config, store::SCHEMA, &store::MIGRATOR)
        .await
        .expect("the database connects and migrates");
    outbox::migrate(&pool).await.expect("the outbox migrates");
    Payments::new(
        Store::new(pool),
        Arc::new(SimulatedProvider),
        Duration::from_secs(2),
    )
}

fn advance(call_id: Uuid, card: &str) -> ChargeAdvance {
    ChargeAdvance {
        call_id,
        // One customer per call, so that a retry is the same request.
        customer_id: Uuid::from_u128(call_id.as_u128() ^ 1),
        amount_krw: 10_000,
        payment_method: card.into(),
        idempotency_key: format!("{call_id}/advance"),
    }
}

fn settle(call_id: Uuid, final_amount_krw: i64) -> SettleFinal {
    SettleFinal {
        call_id,
        final_amount_krw,
        idempotency_key: format!("{call_id}/settle"),
        payment_method: None,
    }
}

fn assert_lines(registry: &Registry, lines: &[&str]) {
    let text = encode(registry);
    for line in lines {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
}

#[tokio::test]
async fn the_business_figures_move_by_exactly_the_money_settled_refunded_and_declined() {
    let payments = payments().await;
    let mut registry = Registry::default();
    payments.register_metrics(&mut registry);
    assert_lines(
        &registry,
        &[
            "payment_settled_krw_total 0\n",
            "payment_refunded_krw_total 0\n",
            "payment_declined_total 0\n",
            "payment_charges_total{kind=\"advance\",result=\"approved\"} 0\n",
            "payment_charges_total{kind=\"final\",result=\"provider_unavailable\"} 0\n",
        ],
    );

    // A trip longer than quoted: the settlement charges the shortfall.
    let longer = Uuid::new_v4();
    payments
        .charge_advance(advance(longer, CARD))
        .await
        .expect("advance");
    payments
        .settle_final(settle(longer, 14_000))
        .await
        .expect("settles");
    // Its retries (the advance's and the settlement's) move nothing.
    payments
        .charge_advance(advance(longer, CARD))
        .await
        .expect("advance replayed");
    payments
        .settle_final(settle(longer, 14_000))
        .await
        .expect("settlement replayed");
    // A shorter trip: the settlement refunds the excess.
    let shorter = Uuid::new_v4();
    payments
        .charge_advance(advance(shorter, CARD))
        .await
        .expect("advance");
    payments
        .settle_final(settle(shorter, 6_000))
        .await
        .expect("settles");
    // Exactly as quoted: settled without moving money.
    let exact = Uuid::new_v4();
    payments
        .charge_advance(advance(exact, CARD))
        .await
        .expect("advance");
    payments
        .settle_final(settle(exact, 10_000))
        .await
        .expect("settles");
    // An explicit refund, later.
    let refund = Refund {
        call_id: longer,
        amount_krw: 1_000,
        idempotency_key: format!("{longer}/refund"),
        reason: "customer complaint".into(),
    };
    payments.refund(refund).await.expect("refunds");
    // A declined card, and a provider that does not answer.
    let declined = payments
        .charge_advance(advance(Uuid::new_v4(), DECLINED_TOKEN))
        .await
        .expect("a decline is an answer");
    assert_eq!(declined.status, payment_svc::domain::EntryStatus::Declined);
    payments
        .charge_advance(advance(Uuid::new_v4(), UNAVAILABLE_TOKEN))
        .await
        .expect_err("the provider is unavailable");

    assert_lines(
        &registry,
        &[
            "payment_settled_krw_total 30000\n",
            "payment_refunded_krw_total 5000\n",
            "payment_declined_total 1\n",
            "payment_charges_total{kind=\"advance\",result=\"approved\"} 3\n",
            "payment_charges_total{kind=\"advance\",result=\"declined\"} 1\n",
            "payment_charges_total{kind=\"advance\",result=\"provider_unavailable\"} 1\n",
            "payment_charges_total{kind=\"final\",result=\"approved\"} 1\n",
            "payment_charges_total{kind=\"final\",result=\"declined\"} 0\n",
        ],
    );
}
