//! What an operator's Prometheus sees on each service's admin port after one
//! trip: the calls each server answered, the events each outbox published,
//! the events each consumer handled, the saga's and the ledger's figures,
//! the projection lag, the connections and the pools.

use std::net::SocketAddr;

use system_tests::{poll, poll::PATIENCE};
use taxi_proto::query::v1::GetCallViewRequest;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use uuid::Uuid;

use crate::helpers::*;

/// The body of `GET /metrics` on `addr`, over plain HTTP/1.1.
async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the admin port");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// The value of the sample `name` whose labels include every one of
/// `labels`, summed over the samples that match (0 when none does).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

fn handled(text: &str, service: &str, method: &str, code: &str) -> f64 {
    value(
        text,
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
        |text| handled(text, "taxi.dispatch.v1.DispatchService", "ReleaseDriver", "OK") >= 1.0,
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
        |text| handled(text, "taxi.payment.v1.PaymentService", "SettleFinal", "OK") >= 1.0,
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
        let calls = value(
            &call_svc,
            "grpc_client_handled_total",
            &[("grpc_method", method), ("grpc_code", "OK")],
        );
        assert_eq!(calls, 1.0, "call-svc's {method} calls");
    }
    assert_eq!(value(&call_svc, "saga_calls_requested_total", &[]), 1.0);
    assert_eq!(
        value(
            &call_svc,
            "saga_calls_finished_total",
            &[("outcome", "completed")]
        ),
        1.0
    );
    assert_eq!(value(&call_svc, "saga_calls_canceled_total", &[]), 0.0);
    assert_eq!(
        value(&call_svc, "saga_accept_step_seconds_count", &[("step", "charge")]),
        1.0
    );
    // The money: the final fare settled once, nothing refunded or declined.
    assert_eq!(
        value(&payment, "payment_settled_krw_total", &[]),
        completed.final_fare_krw as f64
    );
    assert_eq!(value(&payment, "payment_declined_total", &[]), 0.0);
    // The read side: the trip's events projected, each with its lag.
    let query = poll(
        PATIENCE,
        || scrape(admin("query-svc")),
        |text| value(text, "projection_events_applied_total", &[]) >= 4.0,
    )
    .await;
    assert!(
        value(&query, "projection_lag_seconds_count", &[]) >= 4.0,
        "{query}"
    );
    assert_eq!(
        value(
            &query,
            "projection_events_applied_total",
            &[("event_type", "call.trip_completed")]
        ),
        1.0,
        "{query}"
    );

    // Every write service published what it committed: call-svc the trip's
    // four transitions, and its outbox drains.
    let call_svc = poll(
        PATIENCE,
        || scrape(admin("call-svc")),
        |text| value(text, "outbox_published_total", &[("schema", "call")]) >= 4.0,
    )
    .await;
    assert_eq!(
        value(&call_svc, "outbox_published_total", &[("schema", "call")]),
        4.0
    );
    assert_eq!(value(&call_svc, "outbox_publish_failures_total", &[]), 0.0);
    for (name, schema) in [("dispatch-svc", "dispatch"), ("payment-svc", "payment")] {
        let text = poll(
            PATIENCE,
            || scrape(admin(name)),
            |text| value(text, "outbox_published_total", &[("schema", schema)]) >= 1.0,
        )
        .await;
        assert!(
            value(&text, "outbox_published_total", &[("schema", schema)]) >= 1.0,
            "{name}"
        );
    }

    // The consumers handled what they were sent, and nothing was dead-lettered.
    let dispatch = poll(
        PATIENCE,
        || scrape(admin("dispatch-svc")),
        |text| value(text, "consumer_deliveries_total", &[]) >= 4.0,
    )
    .await;
    assert!(
        value(&dispatch, "consumer_deliveries_total", &[]) >= 4.0,
        "{dispatch}"
    );
    assert_eq!(value(&dispatch, "consumer_dead_letters_total", &[]), 0.0);
    assert!(value(&query, "consumer_deliveries_total", &[]) >= 4.0, "{query}");
    assert_eq!(value(&query, "consumer_dead_letters_total", &[]), 0.0);

    // Every service is connected to NATS, and query-svc's Redis answers.
    for name in ["call-svc", "dispatch-svc", "payment-svc", "query-svc"] {
        assert_eq!(
            value(&scrape(admin(name)).await, "nats_connected", &[]),
            1.0,
            "{name}"
        );
    }
    let query = poll(
        PATIENCE,
        || scrape(admin("query-svc")),
        |text| value(text, "redis_up", &[]) == 1.0,
    )
    .await;
    assert_eq!(value(&query, "redis_up", &[]), 1.0);

    // The write services' pools: open connections, none beyond the maximum.
    for name in ["call-svc", "dispatch-svc", "payment-svc"] {
        let text = scrape(admin(name)).await;
        let open = value(&text, "db_pool_connections", &[]);
        assert!(open >= 1.0, "{name} holds no connection:\n{text}");
        assert!(open <= value(&text, "db_pool_max_connections", &[]), "{name}");
    }
}

#[test]
fn value_sums_the_matching_samples_only() {
    let text =
        "# TYPE x counter\nx_total{a=\"1\",b=\"2\"} 3\nx_total{a=\"1\",b=\"3\"} 4\nx_total{a=\"2\"} 5\ny 9\n";
    assert_eq!(value(text, "x_total", &[("a", "1")]), 7.0);
    assert_eq!(value(text, "x_total", &[("a", "1"), ("b", "3")]), 4.0);
    assert_eq!(value(text, "y", &[]), 9.0);
    assert_eq!(value(text, "z", &[]), 0.0);
}
