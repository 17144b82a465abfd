//! Benchmark: the outbox relay's publish rate against raw JetStream publishing
//! of the same events, measured in the same run on the same servers.
//!
//! `cargo run --release -p eventbus --example relay_bench -- [EVENTS] [ROUNDS]`
//! (defaults 20000 events, 3 rounds; needs PostgreSQL and NATS on localhost).
//! Each round measures raw and relay back to back; the medians are compared.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use eventbus::{NatsConfig, stream, testing};
use outbox::{Relay, RelayConfig};
use prost::Message as _;
use sqlx::{PgPool, migrate::Migrator};
use taxi_proto::{
    call::v1::{Call, CallStatus},
    events::v1::{CallRequested, EventEnvelope, event_envelope::Payload},
};
use uuid::Uuid;

const SCHEMA: &str = "relaybench";
const BATCH: usize = 256;

fn event() -> EventEnvelope {
    let id = Uuid::new_v4();
    let call = Call {
        call_id: id.to_string(),
        customer_id: Uuid::new_v4().to_string(),
        status: CallStatus::Requested.into(),
        quoted_fare_krw: 11_600,
        version: 1,
        ..Default::default()
    };
    let payload = Payload::CallRequested(CallRequested { call: Some(call) });
    outbox::envelope(id, 1, svc_kit::clock::now(), payload)
}

/// Publishes `events` the way the relay does (a batch of sends, then the
/// acks), without the database.
async fn raw(
    js: &jetstream::Context,
    nats: &NatsConfig,
    events: &[EventEnvelope],
) -> anyhow::Result<Duration> {
    let subjects = nats.subjects();
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        let mut acks = Vec::with_capacity(chunk.len());
        for event in chunk {
            let message = PublishMessage::build()
                .payload(event.encode_to_vec().into())
                .message_id(event.event_id.clone());
            acks.push(
                js.send_publish(subjects.event("call.requested", &event.aggregate_id), message)
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
    }
    Ok(started.elapsed())
}

/// Loads `events` into the outbox (untimed), then times the relay draining it.
async fn relayed(
    pool: &PgPool,
    js: &jetstream::Context,
    nats: &NatsConfig,
    events: &[EventEnvelope],
) -> anyhow::Result<Duration> {
    for chunk in events.chunks(1_000) {
        let mut tx = pool.begin().await?;
        for event in chunk {
            outbox::append(&mut tx, event).await?;
        }
        tx.commit().await?;
    }
    let config = RelayConfig {
        batch_size: BATCH as i64,
        ..Default::default()
    };
    let relay = Relay::new(pool.clone(), js.clone(), nats.clone(), SCHEMA, config);
    let started = Instant::now();
    let mut published = 0;
    while published < events.len() {
        // As `Relay::run` does: a failed batch is retried (and deduplicated).
        match relay.publish_batch().await {
            Ok(n) => published += n,
            Err(error) => eprintln!("relay batch failed, retrying: {error:#}"),
        }
    }
    Ok(started.elapsed())
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);

    let url = svc_kit::testing::fresh_database().await?;
    let database = svc_kit::db::DatabaseConfig {
        url,
        ..Default::default()
    };
    let pool = svc_kit::db::connect(&database, SCHEMA, &Migrator::with_migrations(Vec::new())).await?;
    outbox::migrate(&pool).await?;
    let (mut raw_rates, mut relay_rates) = (Vec::new(), Vec::new());
    println!(
        "{n} events of {} bytes per round, {rounds} rounds",
        event().encoded_len()
    );
    for round in 1..=rounds {
        // Separate prefixes: each measurement publishes into an empty stream.
        let (raw_nats, relay_nats) = (testing::isolated(), testing::isolated());
        let js = stream::connect(&raw_nats, "relay-bench").await?;
        stream::ensure_streams(&js, &raw_nats).await?;
        stream::ensure_streams(&js, &relay_nats).await?;
        let events: Vec<_> = (0..n).map(|_| event()).collect();
        let raw_took = raw(&js, &raw_nats, &events).await?;
        let events: Vec<_> = (0..n).map(|_| event()).collect();
        let relay_took = relayed(&pool, &js, &relay_nats, &events).await?;
        raw_rates.push(rate(n, raw_took));
        relay_rates.push(rate(n, relay_took));
        println!(
            "round {round}: raw JetStream {:>8.0} events/s   outbox relay {:>8.0} events/s",
            rate(n, raw_took),
            rate(n, relay_took)
        );
        for nats in [&raw_nats, &relay_nats] {
            js.delete_stream(nats.subjects().stream()).await?;
            js.delete_stream(nats.subjects().dead_letter_stream()).await?;
        }
    }
    let (raw_median, relay_median) = (median(raw_rates), median(relay_rates));
    println!(
        "median: raw {raw_median:.0} events/s, relay {relay_median:.0} events/s, relay/raw = {:.2}",
        relay_median / raw_median
    );
    Ok(())
}
