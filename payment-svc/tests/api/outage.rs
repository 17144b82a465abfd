//! The ledger's database out of reach: a retryable UNAVAILABLE, never INTERNAL,
//! and service as usual once it is back.

use std::{sync::Arc, time::Duration};

use payment_svc::provider::SimulatedProvider;
use svc_kit::testing::{CuttableLink, admin_url, server_of, through};
use taxi_proto::payment::v1::ListPaymentsRequest;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{CARD, advance, as_service, spawn_app_configured};

#[tokio::test]
async fn a_ledger_out_of_reach_is_unavailable_and_the_charge_goes_through_once_it_is_back() {
    // Arrange: payment-svc reaches PostgreSQL through a link the test can cut.
    let postgres = server_of(&admin_url())
        .await
        .expect("the test PostgreSQL resolves");
    let link = CuttableLink::to(postgres).await.expect("a link");
    let app = spawn_app_configured(Arc::new(SimulatedProvider), |config| {
        config.database.url = through(&config.database.url, link.addr());
        config.database.acquire_timeout_ms = 500;
    })
    .await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    let list = || {
        as_service(ListPaymentsRequest {
            call_id: call_id.to_string(),
        })
    };

    // Act
    link.cut();
    let listed = app.client.clone().list_payments(list()).await;
    let charged = app
        .client
        .clone()
        .charge_advance(as_service(advance(call_id, customer_id, 5_000, CARD, "adv-1")))
        .await;

    // Assert
    for (what, outcome) in [("a read", listed.map(|_| ())), ("a charge", charged.map(|_| ()))] {
        let status = outcome.expect_err("the ledger is out of reach");
        assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
        assert!(
            status.message().contains("payment ledger is unavailable"),
            "{status:?}"
        );
    }

    // Act: the database is back, and the charge is retried with its key.
    link.mend();
    let mut retried = None;
    for _ in 0..40 {
        match app
            .client
            .clone()
            .charge_advance(as_service(advance(call_id, customer_id, 5_000, CARD, "adv-1")))
            .await
        {
            Ok(response) => {
                retried = Some(response.into_inner());
                break;
            }
            Err(status) if status.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("unexpected {status:?}"),
        }
    }

    // Assert: charged once.
    assert!(
        retried.is_some(),
        "the charge went through once the ledger was back"
    );
    let entries = app.client.clone().list_payments(list()).await.expect("listed");
    assert_eq!(entries.into_inner().entries.len(), 1);
}
