//! What an operator sees on the gateway's `GET /metrics` (its plain HTTP
//! port) while it works: every public call counted on the server side with
//! the code its client got, every forwarded attempt on the client side, and
//! the gateway's own refusals (no token, over the rate limit, an open
//! circuit) and retries, each moving by exactly what the test did.

use std::time::Duration;

use taxi_proto::query::v1::{ListMyCallsRequest, WatchCallRequest};
use tokio_stream::StreamExt as _;
use tonic::{Code, Request};

use system_tests::metrics::Scrape;

use crate::helpers::*;

/// The per-RPC families' samples, by method.
trait RpcSamples {
    /// A sample of a per-RPC family (`grpc_server_*`, `grpc_client_*`).
    fn rpc(&self, name: &str, kind: &str, method: &str, code: Option<&str>) -> f64;

    /// `grpc_{side}_handled_total` of a unary method with `code`.
    fn handled(&self, side: &str, method: &str, code: &str) -> f64 {
        self.rpc(&format!("grpc_{side}_handled_total"), "unary", method, Some(code))
    }
}

impl RpcSamples for Scrape {
    fn rpc(&self, name: &str, kind: &str, method: &str, code: Option<&str>) -> f64 {
        let (service, method) = method.rsplit_once('/').expect("service/method");
        let mut labels = vec![
            ("grpc_type", kind),
            ("grpc_service", service),
            ("grpc_method", method),
        ];
        labels.extend(code.map(|code| ("grpc_code", code)));
        self.value(name, &labels)
    }
}

/// `GET /metrics` on the gateway's HTTP port.
async fn scrape(app: &TestApp) -> Scrape {
    system_tests::metrics::scrape(app.config.http_addr.as_str()).await
}

const REQUEST_CALL: &str = "taxi.call.v1.CallService/RequestCall";
const ACCEPT_CALL: &str = "taxi.call.v1.CallService/AcceptCall";
const COMPLETE_TRIP: &str = "taxi.call.v1.CallService/CompleteTrip";
const LIST_MY_CALLS: &str = "taxi.query.v1.QueryService/ListMyCalls";
const GET_CALL_VIEW: &str = "taxi.query.v1.QueryService/GetCallView";
const WATCH_CALL: &str = "taxi.query.v1.QueryService/WatchCall";

/// A burst big enough for one trip's driver, small enough to exhaust.
const BURST: u32 = 12;

#[tokio::test]
async fn a_trip_a_missing_token_and_a_rate_limited_subject_move_the_gateway_metrics() {
    // Arrange: a burst of BURST, refilled far slower than the test runs.
    let app = spawn_app_with(|config| {
        config.http_addr = free_local_addr();
        config.limits.rate_per_second = 0.01;
        config.limits.burst = std::num::NonZeroU32::new(BURST).expect("not zero");
    })
    .await;
    let before = scrape(&app).await;

    // Act: a whole trip, with its customer watching the call.
    let customer = app.customer();
    let (call, driver) = app.accepted_call(&customer).await;
    let mut watch = app
        .query_client()
        .watch_call(bearer(
            &customer,
            WatchCallRequest {
                call_id: call.call_id.clone(),
                from_version: 0,
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    let first_view = watch.next().await.expect("a view").expect("a view");
    let watching = scrape(&app).await;
    drop(watch);
    app.start_trip(&driver, &call.call_id).await.expect("start");
    app.complete_trip(&driver, &call.call_id).await.expect("complete");
    let after_trip = scrape(&app).await;
    // A request without a token.
    let anonymous = app
        .call_client()
        .request_call(Request::new(call_request()))
        .await
        .expect_err("no token");
    // A subject beyond its burst.
    let eager = app.customer();
    let mut eager_codes = Vec::new();
    for _ in 0..=BURST {
        let answer = app
            .query_client()
            .list_my_calls(bearer(&eager, ListMyCallsRequest::default()))
            .await;
        eager_codes.push(answer.map_or_else(|status| status.code(), |_| Code::Ok));
    }
    // A browser's read, over gRPC-web.
    let over_grpc_web = app
        .grpc_web()
        .unary::<taxi_proto::query::v1::ListMyCallsResponse>(
            &format!("/{LIST_MY_CALLS}"),
            Some(&app.customer().token),
            &ListMyCallsRequest::default(),
        )
        .await;
    // The stream's end reaches the gateway shortly after the drop.
    let after = system_tests::poll(
        Duration::from_secs(10),
        || scrape(&app),
        |scrape| {
            scrape.value(
                "grpc_server_streams_open",
                &[
                    ("grpc_service", "taxi.query.v1.QueryService"),
                    ("grpc_method", "WatchCall"),
                ],
            ) == 0.0
        },
    )
    .await;

    // Assert: the families are all there.
    for family in [
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_count",
        "grpc_server_msg_sent_total",
        "grpc_client_started_total",
        "grpc_client_handled_total",
        "grpc_client_handling_seconds_count",
        "grpc_client_msg_received_total",
        "gateway_breaker_state",
        "gateway_breaker_rejections_total",
        "gateway_retries_total",
        "gateway_shed_total",
        "gateway_rate_limited_total",
        "gateway_stream_cap_refusals_total",
        "gateway_auth_failures_total",
    ] {
        assert!(after.families().contains(&family), "{family} in {after:?}");
    }
    // The trip: one call of each command, on both sides, all OK.
    assert_eq!(first_view.view.expect("view").call_id, call.call_id);
    for method in [REQUEST_CALL, ACCEPT_CALL, COMPLETE_TRIP] {
        for side in ["server", "client"] {
            assert_eq!(
                after_trip.handled(side, method, "OK") - before.handled(side, method, "OK"),
                1.0,
                "{side} {method}"
            );
            assert_eq!(
                after_trip.rpc(
                    &format!("grpc_{side}_handling_seconds_count"),
                    "unary",
                    method,
                    None
                ),
                1.0,
                "{side} {method} timed"
            );
        }
    }
    // The watch: open on both sides while it lasted, its first message
    // counted, closed (as the client's cancel) once dropped.
    let open = |scrape: &Scrape, side: &str| {
        scrape.value(
            &format!("grpc_{side}_streams_open"),
            &[
                ("grpc_service", "taxi.query.v1.QueryService"),
                ("grpc_method", "WatchCall"),
            ],
        )
    };
    assert_eq!((open(&watching, "server"), open(&watching, "client")), (1.0, 1.0));
    assert!(watching.rpc("grpc_server_msg_sent_total", "server_stream", WATCH_CALL, None) >= 1.0);
    assert!(
        watching.rpc(
            "grpc_client_msg_received_total",
            "server_stream",
            WATCH_CALL,
            None
        ) >= 1.0
    );
    assert_eq!((open(&after, "server"), open(&after, "client")), (0.0, 0.0));
    assert_eq!(
        after.rpc(
            "grpc_server_handled_total",
            "server_stream",
            WATCH_CALL,
            Some("Canceled")
        ),
        1.0
    );
    // No token: refused by the gateway, never forwarded.
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    assert_eq!(
        after.handled("server", REQUEST_CALL, "Unauthenticated")
            - before.handled("server", REQUEST_CALL, "Unauthenticated"),
        1.0
    );
    assert_eq!(after.handled("client", REQUEST_CALL, "Unauthenticated"), 0.0);
    assert_eq!(
        after.value("gateway_auth_failures_total", &[("reason", "missing")])
            - before.value("gateway_auth_failures_total", &[("reason", "missing")]),
        1.0
    );
    assert_eq!(
        after.value("gateway_auth_failures_total", &[("reason", "expired")]),
        0.0
    );
    // The eager subject: BURST answered, one refused at the gateway.
    let mut expected = vec![Code::Ok; BURST as usize];
    expected.push(Code::ResourceExhausted);
    assert_eq!(eager_codes, expected);
    assert_eq!(
        after.value("gateway_rate_limited_total", &[]) - before.value("gateway_rate_limited_total", &[]),
        1.0
    );
    assert_eq!(after.handled("server", LIST_MY_CALLS, "ResourceExhausted"), 1.0);
    assert!(over_grpc_web.is_ok(), "{over_grpc_web:?}");
    assert_eq!(
        after.handled("server", LIST_MY_CALLS, "OK") - after_trip.handled("server", LIST_MY_CALLS, "OK"),
        f64::from(BURST + 1),
        "the gRPC-web read's status is read as any other's"
    );
    assert_eq!(after.handled("client", LIST_MY_CALLS, "ResourceExhausted"), 0.0);
    assert_eq!(
        after.handled("client", LIST_MY_CALLS, "OK") - after_trip.handled("client", LIST_MY_CALLS, "OK"),
        f64::from(BURST + 1)
    );
    // Every call's status was found, in headers, trailers or gRPC-web.
    let unknown: Vec<_> = after
        .samples()
        .filter(|(name, labels, _)| {
            name.ends_with("_handled_total") && labels.get("grpc_code").is_some_and(|code| code == "Unknown")
        })
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    // Nothing was shed, no circuit opened.
    assert_eq!(after.value("gateway_shed_total", &[]), 0.0);
    for backend in ["call-svc", "dispatch-svc", "payment-svc", "query-svc"] {
        assert_eq!(
            after.value("gateway_breaker_state", &[("backend", backend)]),
            0.0,
            "{backend}"
        );
        assert_eq!(
            after.value("gateway_breaker_rejections_total", &[("backend", backend)]),
            0.0,
            "{backend}"
        );
    }
}

const THRESHOLD: u32 = 4;
/// Long enough that a busy test machine cannot let the circuit half-open
/// before the scrape that expects it open.
const OPEN_MS: u64 = 2_000;

#[tokio::test]
async fn a_stopped_backend_shows_in_its_retries_its_breaker_state_and_its_rejections() {
    // Arrange: query-svc on a fixed port, so that it can come back there; a
    // read is tried twice, so two reads open the circuit.
    let mut app = spawn_app_with_query_on(free_local_addr(), |config| {
        config.http_addr = free_local_addr();
        config.limits.breaker_failure_threshold = THRESHOLD;
        config.limits.breaker_open_ms = OPEN_MS;
        config.limits.read_retries = 1;
    })
    .await;
    app.online_driver().await;
    let customer = app.customer();
    let call = app.request_call(&customer).await;
    app.call_view(&customer, &call.call_id, call.version)
        .await
        .expect("query-svc answers at first");
    let before = scrape(&app).await;

    // Act
    app.backends.stop_query().await;
    let mut failures = Vec::new();
    for _ in 0..THRESHOLD / 2 {
        failures.push(
            app.call_view(&customer, &call.call_id, 0)
                .await
                .expect_err("query-svc is down"),
        );
    }
    let refused = app
        .call_view(&customer, &call.call_id, 0)
        .await
        .expect_err("the circuit is open");
    let open = scrape(&app).await;
    app.backends.start_query().await;
    tokio::time::sleep(Duration::from_millis(OPEN_MS + 200)).await;
    let half_open = scrape(&app).await;
    app.call_view(&customer, &call.call_id, 0)
        .await
        .expect("query-svc answers again");
    let closed = scrape(&app).await;

    // Assert
    for failure in &failures {
        assert_eq!(failure.code(), Code::Unavailable, "{failure:?}");
        assert!(!failure.message().contains("circuit"), "{failure:?}");
    }
    assert!(refused.message().contains("circuit open"), "{refused:?}");
    let query = [("backend", "query-svc")];
    let delta = |name: &str, labels: &[(&str, &str)]| open.value(name, labels) - before.value(name, labels);
    assert_eq!(
        delta("gateway_retries_total", &query),
        f64::from(THRESHOLD / 2),
        "one retry per read"
    );
    assert_eq!(delta("gateway_breaker_rejections_total", &query), 1.0);
    assert_eq!(
        open.handled("server", GET_CALL_VIEW, "Unavailable")
            - before.handled("server", GET_CALL_VIEW, "Unavailable"),
        f64::from(THRESHOLD / 2 + 1),
        "each read once, with the code its client got"
    );
    assert_eq!(
        open.handled("client", GET_CALL_VIEW, "Unavailable")
            - before.handled("client", GET_CALL_VIEW, "Unavailable"),
        f64::from(THRESHOLD),
        "each attempt at query-svc, none while the circuit was open"
    );
    assert_eq!(open.value("gateway_breaker_state", &query), 2.0, "open");
    assert_eq!(
        open.value("gateway_breaker_state", &[("backend", "call-svc")]),
        0.0,
        "other backends are unaffected"
    );
    assert_eq!(half_open.value("gateway_breaker_state", &query), 1.0, "half-open");
    assert_eq!(closed.value("gateway_breaker_state", &query), 0.0, "closed again");
    assert_eq!(
        closed.value("gateway_retries_total", &query),
        open.value("gateway_retries_total", &query),
        "a read that goes through is not retried"
    );
}
