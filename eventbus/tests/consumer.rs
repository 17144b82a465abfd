//! Durable consumers against real NATS JetStream: ack, retry, dead letters.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, consumer::pull};
use eventbus::{
    NatsConfig,
    consumer::{Consumer, ConsumerConfig, DEAD_LETTER_REASON, Failure},
    stream, testing,
};
use futures::StreamExt as _;
use prost::Message as _;
use taxi_proto::events::v1::{CallRejected, event_envelope::Payload};
use uuid::Uuid;

async fn publish_event(js: &jetstream::Context, nats: &NatsConfig, quoted_fare_krw: i64) {
    let id = Uuid::new_v4();
    let payload = Payload::CallRejected(CallRejected {
        call_id: id.to_string(),
        quoted_fare_krw,
        ..Default::default()
    });
    let event = svc_kit::outbox::envelope("call", id, 1, svc_kit::clock::now(), payload);
    let subject = nats.subjects().event("call.rejected", &id.to_string());
    js.publish(subject, event.encode_to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("ack");
}

fn fast() -> ConsumerConfig {
    ConsumerConfig {
        max_deliver: 3,
        retry_delay_ms: 50,
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

async fn wait_for(seen: &Arc<Mutex<Vec<i64>>>, n: usize) -> Vec<i64> {
    for _ in 0..200 {
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
    let nats = testing::isolated();
    let js = stream::connect(&nats, "consumer-test").await.expect("nats");
    stream::ensure_streams(&js, &nats).await.expect("streams");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handled = seen.clone();
    let consumer = Consumer::new(
        js.clone(),
        nats.clone(),
        "test",
        nats.subjects().all_events(),
        fast(),
    );
    let running = tokio::spawn(consumer.run(move |event| {
        let handled = handled.clone();
        async move {
            if let Some(Payload::CallRejected(rejected)) = event.payload {
                handled.lock().expect("lock").push(rejected.quoted_fare_krw);
            }
            Ok::<(), Failure>(())
        }
    }));

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

#[tokio::test]
async fn an_event_that_keeps_failing_is_dead_lettered_after_max_deliver_without_blocking_others() {
    // Arrange: events with fare 13 always fail.
    let nats = testing::isolated();
    let js = stream::connect(&nats, "consumer-test").await.expect("nats");
    stream::ensure_streams(&js, &nats).await.expect("streams");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(Mutex::new(0));
    let (handled, tries) = (seen.clone(), attempts.clone());
    let consumer = Consumer::new(
        js.clone(),
        nats.clone(),
        "test",
        nats.subjects().all_events(),
        fast(),
    );
    let running = tokio::spawn(consumer.run(move |event| {
        let (handled, tries) = (handled.clone(), tries.clone());
        async move {
            let Some(Payload::CallRejected(rejected)) = event.payload else {
                return Ok(());
            };
            if rejected.quoted_fare_krw == 13 {
                *tries.lock().expect("lock") += 1;
                return Err(Failure::Retry(anyhow::anyhow!("store unreachable")));
            }
            handled.lock().expect("lock").push(rejected.quoted_fare_krw);
            Ok(())
        }
    }));

    // Act
    publish_event(&js, &nats, 13).await;
    publish_event(&js, &nats, 2).await;

    // Assert
    assert_eq!(wait_for(&seen, 1).await, [2], "the later event is not blocked");
    for _ in 0..100 {
        if !dead_letters(&js, &nats).await.is_empty() {
            break;
        }
    }
    let reasons = dead_letters(&js, &nats).await;
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("store unreachable"), "{reasons:?}");
    assert_eq!(*attempts.lock().expect("lock"), 3, "bounded redelivery");
    running.abort();
}
