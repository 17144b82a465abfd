//! The outbox relay against real PostgreSQL and NATS JetStream.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use eventbus::{NatsConfig, stream, testing};
use futures::StreamExt as _;
use outbox::{Relay, RelayConfig};
use prost::Message as _;
use sqlx::{PgPool, migrate::Migrator};
use svc_kit::metrics::{self, Registry};
use taxi_proto::events::v1::{CallRejected, EventEnvelope, event_envelope::Payload};
use uuid::Uuid;

const SCHEMA: &str = "relaytest";

async fn outbox_db() -> PgPool {
    let url = svc_kit::testing::fresh_database().await.expect("fresh database");
    let config = svc_kit::db::DatabaseConfig {
        url,
        ..Default::default()
    };
    // Only the outbox: the schema of a service with no tables of its own.
    let pool = svc_kit::db::connect(&config, SCHEMA, &Migrator::with_migrations(Vec::new()))
        .await
        .expect("schema");
    outbox::migrate(&pool).await.expect("outbox table");
    pool
}

/// Appends `n` events about `aggregate`, versions 1..=n, each in its own commit.
async fn append_events(pool: &PgPool, aggregate: Uuid, n: i64) -> Vec<EventEnvelope> {
    let mut events = Vec::new();
    for version in 1..=n {
        let payload = Payload::CallRejected(CallRejected {
            call_id: aggregate.to_string(),
            quoted_fare_krw: version,
            ..Default::default()
        });
        let event = outbox::envelope(aggregate, version, svc_kit::clock::now(), payload);
        let mut tx = pool.begin().await.expect("begin");
        outbox::append(&mut tx, &event).await.expect("append");
        tx.commit().await.expect("commit");
        events.push(event);
    }
    events
}

fn relay(pool: &PgPool, js: &jetstream::Context, nats: &NatsConfig) -> Relay {
    let config = RelayConfig {
        idle_poll_ms: 50,
        max_backoff_ms: 200,
        ..Default::default()
    };
    Relay::new(pool.clone(), js.clone(), nats.clone(), SCHEMA, config)
}

/// Every message in the event stream, in stream order, as (msg id, envelope).
async fn stream_contents(js: &jetstream::Context, nats: &NatsConfig) -> Vec<(String, EventEnvelope)> {
    let stream = js.get_stream(nats.subjects().stream()).await.expect("stream");
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config::default())
        .await
        .expect("ephemeral consumer");
    let mut out = Vec::new();
    let mut batch = consumer
        .fetch()
        .max_messages(10_000)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .expect("fetch");
    while let Some(message) = batch.next().await {
        let message = message.expect("message");
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        out.push((
            id,
            EventEnvelope::decode(message.payload.clone()).expect("envelope"),
        ));
    }
    out
}

async fn unpublished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn the_relay_publishes_in_commit_order_with_the_event_id_as_message_id() {
    // Arrange
    let pool = outbox_db().await;
    let nats = testing::isolated();
    let js = stream::connect(&nats, "relay-test").await.expect("nats");
    stream::ensure_streams(&js, &nats).await.expect("streams");
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut expected = append_events(&pool, a, 3).await;
    expected.extend(append_events(&pool, b, 2).await);

    // Act
    let published = relay(&pool, &js, &nats).publish_batch().await.expect("batch");

    // Assert
    assert_eq!(published, 5);
    assert_eq!(unpublished(&pool).await, 0);
    let contents = stream_contents(&js, &nats).await;
    let ids: Vec<_> = contents.iter().map(|(id, _)| id.clone()).collect();
    let expected_ids: Vec<_> = expected.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(
        ids, expected_ids,
        "stream order = commit order, msg id = event id"
    );
    assert_eq!(contents[0].1, expected[0]);
}

#[tokio::test]
async fn republishing_after_a_lost_mark_does_not_duplicate_events() {
    // Arrange: published, then the marks are lost (a crash before commit).
    let pool = outbox_db().await;
    let nats = testing::isolated();
    let js = stream::connect(&nats, "relay-test").await.expect("nats");
    stream::ensure_streams(&js, &nats).await.expect("streams");
    append_events(&pool, Uuid::new_v4(), 4).await;
    let relay = relay(&pool, &js, &nats);
    relay.publish_batch().await.expect("first");
    sqlx::query("UPDATE outbox SET published_at = NULL")
        .execute(&pool)
        .await
        .expect("unmark");

    // Act
    relay.publish_batch().await.expect("again");

    // Assert
    assert_eq!(
        stream_contents(&js, &nats).await.len(),
        4,
        "JetStream dropped the duplicates"
    );
    assert_eq!(unpublished(&pool).await, 0);
}

#[tokio::test]
async fn commands_keep_committing_through_a_nats_outage_and_the_backlog_drains_after() {
    // Arrange: a relay running against a NATS server of this test's own.
    let mut server = testing::NatsServer::start().await.expect("nats-server");
    let nats = server.config();
    let pool = outbox_db().await;
    let js = stream::connect(&nats, "relay-test").await.expect("nats");
    let relay = relay(&pool, &js, &nats);
    let stats = relay.stats();
    let mut registry = Registry::default();
    relay.register_metrics(&mut registry);
    let running = tokio::spawn(relay.run());
    let before = append_events(&pool, Uuid::new_v4(), 3).await;
    wait_until(|| async { unpublished(&pool).await == 0 }).await;

    // Act: NATS goes away while "commands" keep committing events.
    server.stop();
    let during = append_events(&pool, Uuid::new_v4(), 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        unpublished(&pool).await,
        5,
        "nothing is lost or marked while NATS is down"
    );
    server.resume().await.expect("nats back");

    // Assert
    wait_until(|| async { unpublished(&pool).await == 0 }).await;
    let contents = stream_contents(&js, &nats).await;
    let ids: Vec<_> = contents.into_iter().map(|(id, _)| id).collect();
    let expected: Vec<_> = before.iter().chain(&during).map(|e| e.event_id.clone()).collect();
    assert_eq!(ids, expected, "every event once, in order");
    assert_eq!(stats.borrow().published, 8);
    let text = metrics::encode(&registry);
    assert!(
        text.contains("outbox_published_total{schema=\"relaytest\"} 8\n"),
        "{text}"
    );
    assert!(
        metric(&text, "outbox_publish_failures_total{schema=\"relaytest\"}") >= 1.0,
        "the rounds that failed while NATS was down are counted: {text}"
    );
    running.abort();
}

#[tokio::test]
async fn the_relay_metrics_count_every_published_event_and_the_backlog_drains_to_zero() {
    // Arrange: a backlog of 7 events before the relay starts.
    let pool = outbox_db().await;
    let nats = testing::isolated();
    let js = stream::connect(&nats, "relay-test").await.expect("nats");
    stream::ensure_streams(&js, &nats).await.expect("streams");
    append_events(&pool, Uuid::new_v4(), 7).await;
    let config = RelayConfig {
        idle_poll_ms: 50,
        report_interval_ms: 50,
        // Several batches, so the histogram sees more than one.
        batch_size: 3,
        ..Default::default()
    };
    let relay = Relay::new(pool.clone(), js.clone(), nats.clone(), SCHEMA, config);
    let mut registry = Registry::default();
    relay.register_metrics(&mut registry);
    let before = metrics::encode(&registry);

    // Act
    let running = tokio::spawn(relay.run());
    append_events(&pool, Uuid::new_v4(), 2).await;

    // Assert
    let drained = [
        "outbox_published_total{schema=\"relaytest\"} 9\n",
        "outbox_depth{schema=\"relaytest\"} 0\n",
        "outbox_oldest_unsent_age_seconds{schema=\"relaytest\"} 0.0\n",
        "outbox_publish_failures_total{schema=\"relaytest\"} 0\n",
    ];
    let mut text = metrics::encode(&registry);
    for _ in 0..200 {
        if drained.iter().all(|line| text.contains(line)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = metrics::encode(&registry);
    }
    running.abort();
    for line in drained {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    assert!(
        before.contains("outbox_published_total{schema=\"relaytest\"} 0\n"),
        "{before}"
    );
    for (family, kind) in [
        ("outbox_depth", "gauge"),
        ("outbox_oldest_unsent_age_seconds", "gauge"),
        ("outbox_published", "counter"),
        ("outbox_publish_failures", "counter"),
        ("outbox_publish_seconds", "histogram"),
    ] {
        assert!(text.contains(&format!("# TYPE {family} {kind}\n")), "{text}");
        assert!(text.contains(&format!("# HELP {family} ")), "{text}");
    }
    // 7 rows in batches of 3, then the 2 appended later: at least 3 batches.
    assert!(
        metric(&text, "outbox_publish_seconds_count{schema=\"relaytest\"}") >= 3.0,
        "{text}"
    );
    assert_eq!(unpublished(&pool).await, 0);
}

/// The value of the sample `series` (name and labels, as encoded) in `text`.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn only_one_relay_of_a_service_publishes_at_a_time() {
    // Arrange: another replica holds the relay lock.
    let pool = outbox_db().await;
    let nats = testing::isolated();
    let js = stream::connect(&nats, "relay-test").await.expect("nats");
    stream::ensure_streams(&js, &nats).await.expect("streams");
    append_events(&pool, Uuid::new_v4(), 2).await;
    let mut other = pool.begin().await.expect("begin");
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox-relay'))")
            .fetch_one(&mut *other)
            .await
            .expect("lock");
    assert!(locked);

    // Act
    let published = relay(&pool, &js, &nats).publish_batch().await.expect("batch");

    // Assert
    assert_eq!(published, 0, "the second replica stands by");
    other.rollback().await.expect("release");
    assert_eq!(relay(&pool, &js, &nats).publish_batch().await.expect("batch"), 2);
}

async fn wait_until<F, Fut>(mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}
