//! A backend that goes away opens its circuit: after a few UNAVAILABLE answers
//! the gateway refuses at once instead of trying, and lets calls through again
//! once the backend is back and the circuit's open period is over.

use std::time::{Duration, Instant};

use taxi_proto::call::v1::CallStatus;
use tonic::Code;

use crate::helpers::*;

const THRESHOLD: u32 = 3;
/// Long enough that a busy test machine cannot let a circuit half-open
/// between two requests that expect it open.
const OPEN_MS: u64 = 2_000;

#[tokio::test]
async fn a_stopped_backend_opens_its_circuit_and_a_restarted_one_closes_it() {
    // Arrange: query-svc on a fixed port, so that it can come back there.
    let mut app = spawn_app_with_query_on(free_local_addr(), |config| {
        config.limits.breaker_failure_threshold = THRESHOLD;
        config.limits.breaker_open_ms = OPEN_MS;
        config.limits.read_retries = 0;
    })
    .await;
    app.online_driver().await;
    let customer = app.customer();
    let call = app.request_call(&customer).await;
    app.call_view(&customer, &call.call_id, call.version)
        .await
        .expect("query-svc answers at first");

    // Act
    app.backends.stop_query().await;
    let mut failures = Vec::new();
    for _ in 0..THRESHOLD {
        failures.push(
            app.call_view(&customer, &call.call_id, 0)
                .await
                .expect_err("query-svc is down"),
        );
    }
    let asked = Instant::now();
    let refused = app
        .call_view(&customer, &call.call_id, 0)
        .await
        .expect_err("the circuit is open");
    let refused_in = asked.elapsed();
    let other_backend = app.driver_record(&app.online_driver().await).await;
    app.backends.start_query().await;
    tokio::time::sleep(Duration::from_millis(OPEN_MS + 200)).await;
    let recovered = app.call_view(&customer, &call.call_id, 0).await;

    // Assert
    for failure in &failures {
        assert_eq!(failure.code(), Code::Unavailable, "{failure:?}");
        assert!(
            !failure.message().contains("circuit"),
            "the backend was tried: {failure:?}"
        );
    }
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("circuit open"), "{refused:?}");
    assert!(
        refused_in < Duration::from_millis(1_000),
        "refused at once, not after {refused_in:?}"
    );
    assert!(
        !other_backend.driver_id.is_empty(),
        "other backends are unaffected"
    );
    let recovered = recovered.expect("query-svc answers again");
    assert_eq!(recovered.status(), CallStatus::Requested);
}

#[tokio::test]
async fn a_probe_the_client_gives_up_on_does_not_leave_the_circuit_open_for_good() {
    // Arrange: a circuit opened by an outage of query-svc, which is back.
    let mut app = spawn_app_with_query_on(free_local_addr(), |config| {
        config.limits.breaker_failure_threshold = THRESHOLD;
        config.limits.breaker_open_ms = OPEN_MS;
        config.limits.read_retries = 0;
    })
    .await;
    app.online_driver().await;
    let customer = app.customer();
    let call = app.request_call(&customer).await;
    app.call_view(&customer, &call.call_id, call.version)
        .await
        .expect("query-svc answers at first");
    app.backends.stop_query().await;
    for _ in 0..THRESHOLD {
        app.call_view(&customer, &call.call_id, 0)
            .await
            .expect_err("query-svc is down");
    }
    app.backends.start_query().await;
    tokio::time::sleep(Duration::from_millis(OPEN_MS + 100)).await;

    // Act: the first request after the open period (the circuit's probe) waits
    // for a version that never comes, and its client gives up on it.
    let probe = tokio::time::timeout(
        Duration::from_millis(300),
        app.call_view(&customer, &call.call_id, 99),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2 * OPEN_MS)).await;
    let later = app.call_view(&customer, &call.call_id, 0).await;

    // Assert
    assert!(probe.is_err(), "the client gave up on the probe: {probe:?}");
    let later = later.expect("query-svc is up and healthy, so reads go through again");
    assert_eq!(later.status(), CallStatus::Requested);
}

#[tokio::test]
async fn a_backend_slower_than_the_channel_timeout_is_neither_called_unreachable_nor_retried() {
    // Arrange: the gateway's default limits (3 s read deadline, 5 failures open
    // a circuit); query-svc waits up to 2.5 s for a version to be reached.
    let query = QuerySettings {
        read_your_writes_timeout_ms: 2_500,
        ..Default::default()
    };
    let app = spawn_app_with_query(query, |config| config.limits.read_deadline_ms = 3_000).await;
    app.online_driver().await;
    let customer = app.customer();
    let call = app.request_call(&customer).await;
    app.call_view(&customer, &call.call_id, call.version)
        .await
        .expect("projected");

    // Act: twice, a read of a version the call has not reached.
    let asked = Instant::now();
    let waited = app
        .call_view(&customer, &call.call_id, 99)
        .await
        .expect_err("never reached");
    let waited_for = asked.elapsed();
    let again = app
        .call_view(&customer, &call.call_id, 99)
        .await
        .expect_err("never reached");
    let plain = app.call_view(&customer, &call.call_id, 0).await;

    // Assert
    assert_eq!(
        waited.code(),
        Code::DeadlineExceeded,
        "query-svc's own answer: {waited:?}"
    );
    assert!(
        waited_for < Duration::from_millis(3_500),
        "within the read deadline, not {waited_for:?}"
    );
    assert_eq!(again.code(), Code::DeadlineExceeded, "{again:?}");
    let plain = plain.expect("slow answers do not open query-svc's circuit");
    assert_eq!(plain.status(), CallStatus::Requested);
}
