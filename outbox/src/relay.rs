//! The outbox relay: publishes a service's outbox rows to JetStream.
//!
//! - **Order.** Rows go out in `seq` order. A call's events are inserted under
//!   the call's row lock, so their `seq` order is their commit order, and the
//!   stream keeps them in that order.
//! - **Exactly once in effect.** A row is marked published only after its
//!   PubAck; a crash in between republishes it with the same `Nats-Msg-Id`
//!   (the event id), which JetStream drops within the duplicate window, and
//!   consumers are idempotent beyond it.
//! - **One relay at a time.** Each batch runs in a transaction holding an
//!   advisory lock, so several replicas of a service never interleave.
//! - **NATS down.** Commands only write the outbox; the relay backs off and
//!   the backlog drains when NATS is back.
//!
//! If a PubAck fails in the middle of a batch, only the rows before it are
//! marked; later rows that did reach the stream are republished (and dropped as
//! duplicates), but the failed row lands after them, out of per-call order.
//! Consumers compare versions, so they tolerate that rare reordering.
//!
//! The relay's metrics ([`Relay::register_metrics`]) are what an operator
//! watches of it: the backlog (`outbox_depth`, `outbox_oldest_unsent_age_seconds`,
//! measured every `report_interval_ms`), the throughput
//! (`outbox_published_total`), failed rounds (`outbox_publish_failures_total`)
//! and the time one batch takes (`outbox_publish_seconds`).

use std::{
    sync::atomic::AtomicU64,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use async_nats::jetstream::{self, message::PublishMessage};
use chrono::{DateTime, Utc};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, postgres::PgListener};
use svc_kit::backoff::Backoff;
use tokio::sync::watch;
use uuid::Uuid;

use eventbus::{NatsConfig, Subjects, stream::ensure_streams};

use crate::channel;

/// Tuning of the relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RelayConfig {
    /// Rows published per round trip.
    pub batch_size: i64,
    /// Longest wait for new rows when no notification arrives.
    pub idle_poll_ms: u64,
    /// Longest back-off after a failure (NATS or the database down).
    pub max_backoff_ms: u64,
    /// How often depth and age are measured and logged.
    pub report_interval_ms: u64,
    /// Published rows are deleted after this long.
    pub retain_published_hours: i64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            idle_poll_ms: 1_000,
            max_backoff_ms: 2_000,
            report_interval_ms: 10_000,
            retain_published_hours: 24,
        }
    }
}

/// What the relay has left to do: the metric hook for operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Rows not yet published.
    pub depth: i64,
    /// Age of the oldest unpublished row (zero when there is none).
    pub oldest_unsent_age: Duration,
    /// Rows this relay has published since it started.
    pub published: u64,
}

/// Buckets of `outbox_publish_seconds`: a batch of a few rows takes a
/// millisecond or two on a healthy bus, a full batch or a slow server up to
/// seconds.
const PUBLISH_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The relay's metric handles, recording from the start whether or not they
/// are registered anywhere.
#[derive(Debug, Clone)]
struct RelayMetrics {
    depth: Gauge,
    oldest_unsent_age: Gauge<f64, AtomicU64>,
    published: Counter,
    failures: Counter,
    publish_seconds: Histogram,
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self {
            depth: Gauge::default(),
            oldest_unsent_age: Gauge::default(),
            published: Counter::default(),
            failures: Counter::default(),
            publish_seconds: Histogram::new(PUBLISH_BUCKETS),
        }
    }
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    seq: i64,
    event_id: Uuid,
    aggregate_id: Uuid,
    event_type: String,
    payload: Vec<u8>,
    /// The trace of the command that appended it, if it was traced.
    traceparent: Option<String>,
}

impl PendingRow {
    /// The span of publishing this row to `subject`, continuing the trace it
    /// was appended in; none for a row appended outside a trace (or while
    /// tracing is off), which would otherwise start a trace of its own.
    fn publish_span(&self, subject: &str) -> Option<tracing::Span> {
        let traceparent = self.traceparent.as_deref()?;
        if !svc_kit::telemetry::trace::enabled() {
            return None;
        }
        let span = tracing::info_span!(
            "outbox.publish",
            otel.name = format!("publish {}", self.event_type),
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.destination.name = subject,
            messaging.message.id = %self.event_id,
            otel.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        svc_kit::telemetry::trace::continue_from_traceparent(&span, traceparent);
        Some(span)
    }
}

/// Publishes one service's outbox (the pool's schema).
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    nats: NatsConfig,
    subjects: Subjects,
    schema: &'static str,
    config: RelayConfig,
    stats: watch::Sender<RelayStats>,
    metrics: RelayMetrics,
}

impl Relay {
    /// A relay for the outbox of `schema`, reached through `pool`.
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        nats: NatsConfig,
        schema: &'static str,
        config: RelayConfig,
    ) -> Self {
        Self {
            pool,
            js,
            subjects: nats.subjects(),
            nats,
            schema,
            config,
            stats: watch::Sender::new(RelayStats::default()),
            metrics: RelayMetrics::default(),
        }
    }

    /// Registers the relay's metrics in `registry`, labelled with the
    /// schema whose outbox it publishes. Once per registry: a second relay
    /// in the same registry would repeat the families.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_label(("schema".into(), self.schema.into()));
        let metrics = &self.metrics;
        registry.register(
            "outbox_depth",
            "Outbox rows not yet published to JetStream, as last measured",
            metrics.depth.clone(),
        );
        registry.register_with_unit(
            "outbox_oldest_unsent_age",
            "Age of the oldest outbox row not yet published, as last measured (0 when there is none)",
            Unit::Seconds,
            metrics.oldest_unsent_age.clone(),
        );
        registry.register(
            "outbox_published",
            "Outbox rows published to JetStream and marked published",
            metrics.published.clone(),
        );
        registry.register(
            "outbox_publish_failures",
            "Relay rounds that failed (NATS or PostgreSQL unreachable, a publish not acknowledged)",
            metrics.failures.clone(),
        );
        registry.register_with_unit(
            "outbox_publish",
            "Time to publish one batch of outbox rows and mark them, failed batches included",
            Unit::Seconds,
            metrics.publish_seconds.clone(),
        );
    }

    /// Follows the relay's depth, age and throughput.
    pub fn stats(&self) -> watch::Receiver<RelayStats> {
        self.stats.subscribe()
    }

    /// Relays forever: a batch whenever rows are committed (LISTEN/NOTIFY),
    /// at least every `idle_poll_ms`, backing off while NATS or PostgreSQL fail.
    pub async fn run(self) {
        let idle = Duration::from_millis(self.config.idle_poll_ms);
        let report_every = Duration::from_millis(self.config.report_interval_ms);
        let mut listener = None;
        let mut retries = Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(self.config.max_backoff_ms),
        )
        .retries();
        let mut next_report = tokio::time::Instant::now();
        let mut streams_ready = false;
        loop {
            if !streams_ready {
                // Publishing needs the stream; it may be missing on a new
                // server or after an operator deleted it.
                if let Err(error) = ensure_streams(&self.js, &self.nats).await {
                    self.metrics.failures.inc();
                    let delay = retries.next_delay();
                    tracing::warn!(error = format!("{error:#}"), retry_in = ?delay, "cannot set up the event streams");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                streams_ready = true;
            }
            if tokio::time::Instant::now() >= next_report {
                self.report().await;
                next_report = tokio::time::Instant::now() + report_every;
            }
            match self.publish_batch().await {
                Ok(n) if n as i64 >= self.config.batch_size => {
                    retries.reset();
                    continue;
                }
                Ok(_) => retries.reset(),
                Err(error) => {
                    let delay = retries.next_delay();
                    tracing::warn!(error = format!("{error:#}"), retry_in = ?delay, "outbox relay failed");
                    streams_ready = false;
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            if listener.is_none() {
                listener = self.listen().await;
            }
            let woken = match listener.as_mut() {
                Some(listener) => tokio::time::timeout(idle, listener.recv()).await,
                None => {
                    tokio::time::sleep(idle).await;
                    continue;
                }
            };
            if let Ok(Err(error)) = woken {
                tracing::warn!(%error, "outbox notifications lost; polling until they are back");
                listener = None;
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let channel = channel(self.schema);
        let attempt = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match attempt.await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for outbox notifications");
                None
            }
        }
    }

    /// Publishes up to `batch_size` unpublished rows in order and marks those
    /// JetStream acknowledged. Returns how many were published; 0 when another
    /// replica holds the relay lock.
    pub async fn publish_batch(&self) -> anyhow::Result<usize> {
        let published = self.try_publish_batch().await;
        if published.is_err() {
            self.metrics.failures.inc();
        }
        published
    }

    async fn try_publish_batch(&self) -> anyhow::Result<usize> {
        // A disconnected client would buffer the batch and fail its acks only
        // after the ack timeout; backing off instead lets the backlog go out as
        // soon as the connection is back.
        anyhow::ensure!(
            self.js.client().connection_state() == async_nats::connection::State::Connected,
            "NATS is not connected"
        );
        let mut tx = self.pool.begin().await?;
        let leader: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox-relay'))",
        )
        .fetch_one(&mut *tx)
        .await?;
        if !leader {
            return Ok(0);
        }
        let rows: Vec<PendingRow> = sqlx::query_as(
            "SELECT seq, event_id, aggregate_id, event_type, payload, traceparent FROM outbox
             WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(self.config.batch_size)
        .fetch_all(&mut *tx)
        .await
        .context("read the outbox")?;
        if rows.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        let published = self.publish_rows(tx, rows).await;
        self.metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        published
    }

    /// Publishes `rows`, marks those acknowledged and commits `tx`.
    async fn publish_rows(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        rows: Vec<PendingRow>,
    ) -> anyhow::Result<usize> {
        // Send the whole batch, then collect the acks, so that one round trip
        // is paid per batch rather than per event.
        let mut pending_acks = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in rows {
            let subject = self
                .subjects
                .event(&row.event_type, &row.aggregate_id.to_string());
            let span = row.publish_span(&subject);
            let mut publish = PublishMessage::build().message_id(row.event_id.to_string());
            if let Some(span) = &span {
                publish = eventbus::trace::inject(span, publish);
            }
            let publish = publish.payload(row.payload.into());
            match self.js.send_publish(subject, publish).await {
                // The span lasts until JetStream has the event.
                Ok(ack) => pending_acks.push((row.seq, ack, span)),
                Err(error) => {
                    failure = Some(anyhow::Error::new(error).context("publish to JetStream"));
                    break;
                }
            }
        }
        let mut acked = Vec::with_capacity(pending_acks.len());
        for (seq, ack, span) in pending_acks {
            if failure.is_some() {
                break;
            }
            match ack.await {
                Ok(_) => acked.push(seq),
                Err(error) => {
                    if let Some(span) = span {
                        span.record("otel.status_code", "ERROR");
                    }
                    failure = Some(anyhow::Error::new(error).context("JetStream PubAck"));
                }
            }
        }

        if !acked.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE seq = ANY($1)")
                .bind(&acked)
                .execute(&mut *tx)
                .await
                .context("mark published")?;
        }
        tx.commit().await?;
        let published = acked.len();
        self.stats
            .send_modify(|stats| stats.published += published as u64);
        self.metrics.published.inc_by(published as u64);
        match failure {
            Some(error) => Err(error),
            None => Ok(published),
        }
    }

    /// Measures and logs what is left to publish, and trims old published rows.
    async fn report(&self) {
        let measured: Result<(i64, Option<DateTime<Utc>>), sqlx::Error> =
            sqlx::query_as("SELECT count(*), min(created_at) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.pool)
                .await;
        match measured {
            Ok((depth, oldest)) => {
                let age = oldest
                    .and_then(|at| (Utc::now() - at).to_std().ok())
                    .unwrap_or_default();
                self.stats.send_modify(|stats| {
                    stats.depth = depth;
                    stats.oldest_unsent_age = age;
                });
                self.metrics.depth.set(depth);
                self.metrics.oldest_unsent_age.set(age.as_secs_f64());
                if depth > 0 {
                    tracing::info!(depth, oldest_unsent_age = ?age, "outbox backlog");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot measure the outbox"),
        }
        let trimmed =
            sqlx::query("DELETE FROM outbox WHERE published_at < now() - make_interval(hours => $1)")
                .bind(i32::try_from(self.config.retain_published_hours).unwrap_or(i32::MAX))
                .execute(&self.pool)
                .await;
        if let Err(error) = trimmed {
            tracing::warn!(%error, "cannot trim published outbox rows");
        }
    }
}
