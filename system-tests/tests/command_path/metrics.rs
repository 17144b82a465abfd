//! What an operator's Prometheus sees on each service's admin port after one
//! trip: the calls each server answered, the events each outbox published,
//! the events each consumer handled, the saga's and the ledger's figures,
//! the projection lag, the connections and the pools.

use system_tests::{
    metrics::{Scrape, scrape},
    poll,
    poll::PATIENCE,
};
use taxi_proto::query::v1::GetCallViewRequest;
use uuid::Uuid;

use crate::helpers::*;

fn handled(scrape: &Scrape, service: &str, method: &str, code: &str) -> f64 {
    scrape.sum(
        "grpc_server_handled_total",
        &[
            ("grpc_service", service),
            ("grpc_method", method),
            ("grpc_code", code),
        ],
    )
}

#[tokio::test]
async fn after_one_trip_every_admin_port_shows_its_calls_events_and_pool() {
    // Arrange
    let mut system = spawn_system().await;
    system.start_query().await;
    let customer = Uuid::new_v4();
    let driver = system.online_driver().await;
    let calls = system.call_client();

    // Act: a whole trip, read back from the read side once it is projected.
    let call = system.request_call(customer).await;
    accept(&calls, driver, &call.call_id).await.expect("accept");
    start(&calls, driver, &call.call_id).await.expect("start");
    let completed = complete(&calls, driver, &call.call_id, 12_000)
        .await
        .expect("complete");
    let read = GetCallViewRequest {
        call_id: call.call_id.clone(),
        min_version: 4,
    };
    system
        .query_client()
        .get_call_view(system_tests::as_customer(customer, read))
        .await
        .expect("the completed trip's view");

    // Assert: what each server answered.
    let admin = |name: &str| system.admin[name];
    let call_svc = scrape(admin("call-svc")).await;
    for method in ["RequestCall", "AcceptCall", "StartTrip", "CompleteTrip"] {
        assert_eq!(
            handled(&call_svc, "taxi.call.v1.CallService", method, "OK"),
            1.0,
            "{method}"
        );
    }
    // The driver is released and the fare settled right after the commit.
    let dispatch = poll(
        PATIENCE,
        || scrape(admin("dispatch-svc")),
        |scraped| handled(scraped, "taxi.dispatch.v1.DispatchService", "ReleaseDriver", "OK") >= 1.0,
    )
    .await;
    for method in ["CheckAvailability", "AssignDriver", "ReleaseDriver"] {
        assert_eq!(
            handled(&dispatch, "taxi.dispatch.v1.DispatchService", method, "OK"),
            1.0,
            "{method}"
        );
    }
    let payment = poll(
        PATIENCE,
        || scrape(admin("payment-svc")),
        |scraped| handled(scraped, "taxi.payment.v1.PaymentService", "SettleFinal", "OK") >= 1.0,
    )
    .await;
    for method in ["ChargeAdvance", "SettleFinal"] {
        assert_eq!(
            handled(&payment, "taxi.payment.v1.PaymentService", method, "OK"),
            1.0,
            "{method}"
        );
    }
    let query = scrape(admin("query-svc")).await;
    assert_eq!(
        handled(&query, "taxi.query.v1.QueryService", "GetCallView", "OK"),
        1.0
    );

    // call-svc's own calls to its backends, and the saga's figures.
    for method in ["CheckAvailability", "AssignDriver", "ChargeAdvance"] {
        let calls = call_svc.sum(
            "grpc_client_handled_total",
            &[("grpc_method", method), ("grpc_code", "OK")],
        );
        assert_eq!(calls, 1.0, "call-svc's {method} calls");
    }
    assert_eq!(call_svc.sum("saga_calls_requested_total", &[]), 1.0);
    assert_eq!(
        call_svc.sum("saga_calls_finished_total", &[("outcome", "completed")]),
        1.0
    );
    assert_eq!(call_svc.sum("saga_calls_canceled_total", &[]), 0.0);
    assert_eq!(
        call_svc.sum("saga_accept_step_seconds_count", &[("step", "charge")]),
        1.0
    );
    // The money: the final fare settled once, nothing refunded or declined.
    assert_eq!(
        payment.sum("payment_settled_krw_total", &[]),
        completed.final_fare_krw as f64
    );
    assert_eq!(payment.sum("payment_declined_total", &[]), 0.0);
    // The read side: the trip's events projected, each with its lag.
    let query = poll(
        PATIENCE,
        || scrape(admin("query-svc")),
        |scraped| scraped.sum("projection_events_applied_total", &[]) >= 4.0,
    )
    .await;
    assert!(query.sum("projection_lag_seconds_count", &[]) >= 4.0, "{query:?}");
    assert_eq!(
        query.sum(
            "projection_events_applied_total",
            &[("event_type", "call.trip_completed")]
        ),
        1.0,
        "{query:?}"
    );

    // Every write service published what it committed: call-svc the trip's
    // four transitions and its settlement, and its outbox drains.
    let call_svc = poll(
        PATIENCE,
        || scrape(admin("call-svc")),
        |scraped| scraped.sum("outbox_published_total", &[("schema", "call")]) >= 5.0,
    )
    .await;
    assert_eq!(call_svc.sum("outbox_published_total", &[("schema", "call")]), 5.0);
    assert_eq!(call_svc.sum("outbox_publish_failures_total", &[]), 0.0);
    for (name, schema) in [("dispatch-svc", "dispatch"), ("payment-svc", "payment")] {
        let scraped = poll(
            PATIENCE,
            || scrape(admin(name)),
            |scraped| scraped.sum("outbox_published_total", &[("schema", schema)]) >= 1.0,
        )
        .await;
        assert!(
            scraped.sum("outbox_published_total", &[("schema", schema)]) >= 1.0,
            "{name}"
        );
    }

    // The consumers handled what they were sent, and nothing was dead-lettered.
    let dispatch = poll(
        PATIENCE,
        || scrape(admin("dispatch-svc")),
        |scraped| scraped.sum("consumer_deliveries_total", &[]) >= 4.0,
    )
    .await;
    assert!(
        dispatch.sum("consumer_deliveries_total", &[]) >= 4.0,
        "{dispatch:?}"
    );
    assert_eq!(dispatch.sum("consumer_dead_letters_total", &[]), 0.0);
    assert!(query.sum("consumer_deliveries_total", &[]) >= 4.0, "{query:?}");
    assert_eq!(query.sum("consumer_dead_letters_total", &[]), 0.0);

    // Every service is connected to NATS, and query-svc's Redis answers.
    for name in ["call-svc", "dispatch-svc", "payment-svc", "query-svc"] {
        assert_eq!(
            scrape(admin(name)).await.sum("nats_connected", &[]),
            1.0,
            "{name}"
        );
    }
    let query = poll(
        PATIENCE,
        || scrape(admin("query-svc")),
        |scraped| scraped.sum("redis_up", &[]) == 1.0,
    )
    .await;
    assert_eq!(query.sum("redis_up", &[]), 1.0);

    // The write services' pools: open connections, none beyond the maximum.
    for name in ["call-svc", "dispatch-svc", "payment-svc"] {
        let scraped = scrape(admin(name)).await;
        let open = scraped.sum("db_pool_connections", &[]);
        assert!(open >= 1.0, "{name} holds no connection:\n{scraped:?}");
        assert!(open <= scraped.sum("db_pool_max_connections", &[]), "{name}");
    }
}
