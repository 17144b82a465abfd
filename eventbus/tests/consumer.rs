//! Durable consumers against real NATS JetStream: ack, retry, dead letters.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream::{self, consumer::pull};
use eventbus::{
    NatsConfig,
    consumer::{Consumer, ConsumerConfig, DEAD_LETTER_REASON, Failure},
    dead_letters, stream, testing,
};
use futures::StreamExt as _;
use prost::Message as _;
use svc_kit::metrics::{self, Registry};
use taxi_proto::events::v1::{CallRejected, EventEnvelope, event_envelope::Payload};
use uuid::Uuid;

/// A prefix of the test's own on the shared NATS server, with its streams.
async fn isolated_bus() -> (NatsConfig, jetstream::Context) {
    let nats = testing::isolated();
    let js = stream::connect(&nats, "consumer-test").await.expect("nats");
    stream::ensure_streams(&js, &nats).await.expect("streams");
    (nats, js)
}

async fn publish_event(js: &jetstream::Context, nats: &NatsConfig, quoted_fare_krw: i64) {
    let id = Uuid::new_v4();
    let payload = Payload::CallRejected(CallRejected {
        call_id: id.to_string(),
        quoted_fare_krw,
        ..Default::default()
    });
    let subject = nats.subjects().event(payload.event_type(), &id.to_string());
    let event = EventEnvelope {
        event_id: Uuid::new_v4().to_string(),
        aggregate_type: payload.aggregate_type().into(),
        aggregate_id: id.to_string(),
        aggregate_version: 1,
        occurred_at: Some(svc_kit::clock::to_proto(svc_kit::clock::now())),
        trace_context: Default::default(),
        payload: Some(payload),
    };
    js.publish(subject, event.encode_to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("ack");
}

fn fast() -> ConsumerConfig {
    ConsumerConfig {
        retry_delay_ms: 50,
        max_retry_delay_ms: 200,
        ..Default::default()
    }
}

/// The dead letters' reasons, in order.
async fn dead_letters(js: &jetstream::Context, nats: &NatsConfig) -> Vec<String> {
    let stream = js
        .get_stream(nats.subjects().dead_letter_stream())
        .await
        .expect("dlq");
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config::default())
        .await
        .expect("consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_millis(300))
        .messages()
        .await
        .expect("fetch");
    let mut reasons = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.expect("message");
        let reason = message
            .headers
            .as_ref()
            .and_then(|h| h.get(DEAD_LETTER_REASON))
            .map(|v| v.to_string());
        reasons.push(reason.unwrap_or_default());
    }
    reasons
}

/// Runs the durable consumer `test` over every event. A `CallRejected` is
/// handled as `outcome(its fare)` says, and recorded by its fare once
/// handled. Returns the fares handled, in order, and the running consumer.
fn start_consumer(
    js: &jetstream::Context,
    nats: &NatsConfig,
    config: ConsumerConfig,
    outcome: impl Fn(i64) -> Result<(), Failure> + Send + Sync + 'static,
) -> (Arc<Mutex<Vec<i64>>>, tokio::task::AbortHandle) {
    let (seen, running, _) = start_metered(js, nats, config, outcome);
    (seen, running)
}

/// [`start_consumer`], with the consumer's metrics in the registry returned.
fn start_metered(
    js: &jetstream::Context,
    nats: &NatsConfig,
    config: ConsumerConfig,
    outcome: impl Fn(i64) -> Result<(), Failure> + Send + Sync + 'static,
) -> (Arc<Mutex<Vec<i64>>>, tokio::task::AbortHandle, Registry) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (handled, outcome) = (seen.clone(), Arc::new(outcome));
    let consumer = Consumer::new(
        js.clone(),
        nats.clone(),
        "test",
        nats.subjects().all_events(),
        config,
    );
    let mut registry = Registry::default();
    consumer.register_metrics(&mut registry);
    let running = tokio::spawn(consumer.run(move |event| {
        let (handled, outcome) = (handled.clone(), outcome.clone());
        async move {
            if let Some(Payload::CallRejected(rejected)) = event.payload {
                outcome(rejected.quoted_fare_krw)?;
                handled.lock().expect("lock").push(rejected.quoted_fare_krw);
            }
            Ok(())
        }
    }));
    (seen, running.abort_handle(), registry)
}

/// Waits until `registry`'s text holds every one of `lines`, and returns it.
async fn metrics_with(registry: &Registry, lines: &[&str]) -> String {
    let mut text = metrics::encode(registry);
    for _ in 0..400 {
        if lines.iter().all(|line| text.contains(line)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = metrics::encode(registry);
    }
    for line in lines {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    text
}

async fn wait_for(seen: &Arc<Mutex<Vec<i64>>>, n: usize) -> Vec<i64> {
    for _ in 0..400 {
        let now = seen.lock().expect("lock").clone();
        if now.len() >= n {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("only {:?} handled", seen.lock().expect("lock"));
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_later_events_still_arrive() {
    // Arrange
    let (nats, js) = isolated_bus().await;
    let (seen, running) = start_consumer(&js, &nats, fast(), |_| Ok(()));

    // Act
    publish_event(&js, &nats, 1).await;
    js.publish(
        nats.subjects().event("call.requested", "garbage"),
        "not protobuf".into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
    publish_event(&js, &nats, 2).await;

    // Assert
    assert_eq!(wait_for(&seen, 2).await, [1, 2]);
    let reasons = dead_letters(&js, &nats).await;
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("undecodable"), "{reasons:?}");
    running.abort();
}

/// The number of dead letters, or `None` while the dead-letter stream is missing.
async fn dead_letter_count(js: &jetstream::Context, nats: &NatsConfig) -> Option<u64> {
    let mut stream = js.get_stream(nats.subjects().dead_letter_stream()).await.ok()?;
    Some(stream.info().await.ok()?.state.messages)
}

/// The durable consumer's state on the server.
async fn consumer_info(js: &jetstream::Context, nats: &NatsConfig) -> jetstream::consumer::Info {
    js.get_stream(nats.subjects().stream())
        .await
        .expect("stream")
        .consumer_info("test")
        .await
        .expect("consumer info")
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_dead_lettered_after_max_deliver_without_blocking_others() {
    // Arrange: events with fare 13 always fail; 3 deliveries at most.
    let (nats, js) = isolated_bus().await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let tries = attempts.clone();
    let config = ConsumerConfig {
        max_deliver: 3,
        ..fast()
    };
    let (seen, running, registry) = start_metered(&js, &nats, config, move |fare| {
        if fare == 13 {
            tries.fetch_add(1, Ordering::SeqCst);
            return Err(Failure::Retry(anyhow::anyhow!("store unreachable")));
        }
        Ok(())
    });

    // Act
    publish_event(&js, &nats, 13).await;
    publish_event(&js, &nats, 2).await;

    // Assert
    assert_eq!(wait_for(&seen, 1).await, [2], "the later event is not blocked");
    let mut reasons = dead_letters(&js, &nats).await;
    for _ in 0..200 {
        if !reasons.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        reasons = dead_letters(&js, &nats).await;
    }
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("still failing after 3 deliveries"),
        "{reasons:?}"
    );
    assert!(reasons[0].contains("store unreachable"), "{reasons:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), 3, "bounded redelivery");
    metrics_with(
        &registry,
        &[
            "consumer_dead_letters_total{consumer=\"test\",reason=\"max_deliver\"} 1\n",
            "consumer_dead_letters_total{consumer=\"test\",reason=\"permanent\"} 0\n",
        ],
    )
    .await;
    running.abort();
}

#[tokio::test]
async fn the_consumer_metrics_count_deliveries_redeliveries_and_dead_letters_and_its_backlog_drains() {
    // Arrange: seven messages wait; fare 3 can never be applied, the garbage
    // is no event, and fare 6, the last, fails once before it succeeds (so
    // nothing behind it is handed back, and only it is redelivered).
    let (nats, js) = isolated_bus().await;
    for fare in 1..=2 {
        publish_event(&js, &nats, fare).await;
    }
    js.publish(
        nats.subjects().event("call.requested", "garbage"),
        "not protobuf".into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
    for fare in 3..=6 {
        publish_event(&js, &nats, fare).await;
    }
    let failed_once = Arc::new(AtomicBool::new(false));
    let config = ConsumerConfig {
        info_poll_ms: 50,
        ..fast()
    };

    // Act
    let (seen, running, registry) = start_metered(&js, &nats, config, move |fare| match fare {
        3 => Err(Failure::Poison(anyhow::anyhow!("cannot take 3"))),
        6 if !failed_once.swap(true, Ordering::SeqCst) => {
            Err(Failure::Retry(anyhow::anyhow!("store unreachable")))
        }
        _ => Ok(()),
    });

    // Assert
    assert_eq!(wait_for(&seen, 5).await, [1, 2, 4, 5, 6]);
    let text = metrics_with(
        &registry,
        &[
            // 7 messages, fare 6 twice.
            "consumer_deliveries_total{consumer=\"test\"} 8\n",
            "consumer_redeliveries_total{consumer=\"test\"} 1\n",
            "consumer_dead_letters_total{consumer=\"test\",reason=\"permanent\"} 1\n",
            "consumer_dead_letters_total{consumer=\"test\",reason=\"undecodable\"} 1\n",
            "consumer_dead_letters_total{consumer=\"test\",reason=\"max_deliver\"} 0\n",
            // Every decoded delivery reached the handler: 6 events, fare 6 twice.
            "consumer_handler_seconds_count{consumer=\"test\"} 7\n",
            "consumer_pending{consumer=\"test\"} 0\n",
            "consumer_ack_pending{consumer=\"test\"} 0\n",
        ],
    )
    .await;
    for (family, kind) in [
        ("consumer_deliveries", "counter"),
        ("consumer_redeliveries", "counter"),
        ("consumer_dead_letters", "counter"),
        ("consumer_handler_seconds", "histogram"),
        ("consumer_pending", "gauge"),
        ("consumer_ack_pending", "gauge"),
    ] {
        assert!(text.contains(&format!("# TYPE {family} {kind}\n")), "{text}");
        assert!(text.contains(&format!("# HELP {family} ")), "{text}");
    }
    assert_eq!(dead_letter_count(&js, &nats).await, Some(2));
    running.abort();
}

#[tokio::test]
async fn the_consumer_reports_its_backlog_from_jetstream_and_outlives_failing_info_calls() {
    // Arrange: a consumer that falls behind (its handler takes 200 ms an
    // event, one at a time), on a NATS server of the test's own.
    let mut server = testing::NatsServer::start().await.expect("nats-server");
    let nats = server.config();
    let js = stream::connect(&nats, "consumer-test").await.expect("nats");
    stream::ensure_streams(&js, &nats).await.expect("streams");
    for fare in 1..=5 {
        publish_event(&js, &nats, fare).await;
    }
    let config = ConsumerConfig {
        info_poll_ms: 50,
        batch_size: 1,
        ..fast()
    };
    let consumer = Consumer::new(
        js.clone(),
        nats.clone(),
        "test",
        nats.subjects().all_events(),
        config,
    );
    let mut registry = Registry::default();
    consumer.register_metrics(&mut registry);
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let handled = seen.clone();
    let running = tokio::spawn(consumer.run(move |event| {
        let handled = handled.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Some(Payload::CallRejected(rejected)) = event.payload {
                handled.lock().expect("lock").insert(rejected.quoted_fare_krw);
            }
            Ok(())
        }
    }));

    // Act and assert: the backlog shows while it lasts ...
    let behind = |text: &str| {
        text.lines()
            .filter_map(|line| line.strip_prefix("consumer_pending{consumer=\"test\"} "))
            .any(|value| value != "0")
    };
    let mut text = metrics::encode(&registry);
    for _ in 0..100 {
        if behind(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = metrics::encode(&registry);
    }
    assert!(behind(&text), "{text}");
    // ... the info calls fail while NATS is away ...
    server.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.resume().await.expect("nats back");
    publish_event(&js, &nats, 6).await;

    // ... and once it is back every event is handled and the backlog drains.
    for _ in 0..400 {
        if seen.lock().expect("lock").len() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handled: Vec<_> = seen.lock().expect("lock").iter().copied().collect();
    assert_eq!(handled, [1, 2, 3, 4, 5, 6]);
    metrics_with(
        &registry,
        &[
            "consumer_pending{consumer=\"test\"} 0\n",
            "consumer_ack_pending{consumer=\"test\"} 0\n",
        ],
    )
    .await;
    running.abort();
}

#[tokio::test]
async fn an_event_failing_transiently_for_a_while_is_handled_once_the_store_is_back() {
    // Arrange: the event with fare 13 fails 7 times, then succeeds.
    let (nats, js) = isolated_bus().await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let tries = attempts.clone();
    let (seen, running) = start_consumer(&js, &nats, fast(), move |fare| {
        if fare == 13 && tries.fetch_add(1, Ordering::SeqCst) < 7 {
            return Err(Failure::Retry(anyhow::anyhow!("store unreachable")));
        }
        Ok(())
    });

    // Act
    publish_event(&js, &nats, 13).await;
    publish_event(&js, &nats, 2).await;

    // Assert
    let mut handled = wait_for(&seen, 2).await;
    handled.sort_unstable();
    assert_eq!(handled, [2, 13], "both events are handled once");
    assert_eq!(attempts.load(Ordering::SeqCst), 8, "7 failures, then success");
    assert_eq!(
        dead_letter_count(&js, &nats).await,
        Some(0),
        "nothing dead-lettered"
    );
    assert_eq!(consumer_info(&js, &nats).await.config.max_deliver, -1);
    running.abort();
}

#[tokio::test]
async fn while_a_store_is_down_the_consumer_backs_off_and_then_handles_every_event_without_dead_letters() {
    // Arrange: 40 events wait while the store is down.
    let (nats, js) = isolated_bus().await;
    for fare in 1..=40 {
        publish_event(&js, &nats, fare).await;
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(true));
    let (tries, store_down) = (calls.clone(), down.clone());
    let config = ConsumerConfig {
        retry_delay_ms: 100,
        max_retry_delay_ms: 400,
        ..Default::default()
    };
    let (seen, running) = start_consumer(&js, &nats, config, move |_| {
        tries.fetch_add(1, Ordering::SeqCst);
        if store_down.load(Ordering::SeqCst) {
            return Err(Failure::Retry(anyhow::anyhow!("store unreachable")));
        }
        Ok(())
    });

    // Act: the outage lasts 3 s (an upper bound on the calls only gets
    // easier to meet on a slow machine).
    for _ in 0..200 {
        if calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls_while_down = calls.load(Ordering::SeqCst);
    let deliveries_while_down = consumer_info(&js, &nats).await.delivered.consumer_sequence;
    down.store(false, Ordering::SeqCst);

    // Assert: one event at a time with pauses of 100..400 ms is a dozen calls
    // at most, not one per pending event.
    assert!(
        (1..=20).contains(&calls_while_down),
        "{calls_while_down} calls while the store was down"
    );
    // The first pull delivers all 40; what is handed back is not delivered
    // again within the same pull (the batch holds up to 64).
    assert!(
        deliveries_while_down <= 60,
        "{deliveries_while_down} deliveries while the store was down"
    );
    let mut handled = wait_for(&seen, 40).await;
    handled.sort_unstable();
    assert_eq!(handled, (1..=40).collect::<Vec<_>>());
    assert_eq!(
        dead_letter_count(&js, &nats).await,
        Some(0),
        "nothing dead-lettered"
    );
    running.abort();
}

#[tokio::test]
async fn a_poison_event_whose_dead_letter_cannot_be_published_is_kept_until_it_can() {
    // Arrange: the consumer is running; then the dead-letter stream goes.
    let (nats, js) = isolated_bus().await;
    let (seen, running) = start_consumer(&js, &nats, fast(), |_| Ok(()));
    publish_event(&js, &nats, 1).await;
    wait_for(&seen, 1).await;
    js.delete_stream(nats.subjects().dead_letter_stream())
        .await
        .expect("delete the dead-letter stream");

    // Act
    js.publish(
        nats.subjects().event("call.requested", "garbage"),
        "not protobuf".into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
    publish_event(&js, &nats, 2).await;
    assert_eq!(wait_for(&seen, 2).await, [1, 2], "the poison does not block");
    // A few failed attempts at publishing the dead letter.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stream::ensure_streams(&js, &nats).await.expect("streams back");

    // Assert: the poison was kept, and is dead-lettered now.
    let mut count = None;
    for _ in 0..400 {
        count = dead_letter_count(&js, &nats).await;
        if count == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count,
        Some(1),
        "the poison is dead-lettered once the stream is back"
    );
    let reasons = dead_letters(&js, &nats).await;
    assert!(reasons[0].contains("undecodable"), "{reasons:?}");
    running.abort();
}

#[tokio::test]
async fn an_existing_durable_with_bounded_redelivery_is_updated_to_unlimited() {
    // Arrange: the durable as an older version created it.
    let (nats, js) = isolated_bus().await;
    js.get_stream(nats.subjects().stream())
        .await
        .expect("stream")
        .create_consumer(pull::Config {
            durable_name: Some("test".into()),
            filter_subject: nats.subjects().all_events(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            ..Default::default()
        })
        .await
        .expect("old consumer");
    // Act
    let (seen, running) = start_consumer(&js, &nats, fast(), |_| Ok(()));
    publish_event(&js, &nats, 1).await;

    // Assert
    assert_eq!(wait_for(&seen, 1).await, [1]);
    assert_eq!(consumer_info(&js, &nats).await.config.max_deliver, -1);
    running.abort();
}

#[tokio::test]
async fn dead_letters_are_listed_and_once_replayed_are_handled_and_gone() {
    // Arrange: a handler that cannot take events with fare 13 until it is fixed.
    let (nats, js) = isolated_bus().await;
    let broken = Arc::new(AtomicBool::new(true));
    let still_broken = broken.clone();
    let (seen, running) = start_consumer(&js, &nats, fast(), move |fare| {
        if fare == 13 && still_broken.load(Ordering::SeqCst) {
            return Err(Failure::Poison(anyhow::anyhow!("cannot take 13")));
        }
        Ok(())
    });
    publish_event(&js, &nats, 13).await;
    publish_event(&js, &nats, 2).await;
    assert_eq!(wait_for(&seen, 1).await, [2]);
    let mut listed = dead_letters::list(&js, &nats, "test").await.expect("list");
    for _ in 0..100 {
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        listed = dead_letters::list(&js, &nats, "test").await.expect("list");
    }

    // Act
    broken.store(false, Ordering::SeqCst);
    let replayed = dead_letters::replay(&js, &nats, "test").await.expect("replay");
    let handled = wait_for(&seen, 2).await;
    let left = dead_letters::list(&js, &nats, "test").await.expect("list");

    // Assert
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].reason.contains("cannot take 13"), "{listed:?}");
    assert!(listed[0].subject.contains("call.rejected"), "{listed:?}");
    assert_eq!(replayed, 1);
    assert_eq!(handled, [2, 13], "the replayed event is handled");
    assert!(left.is_empty(), "replayed dead letters are removed: {left:?}");
    running.abort();
}
