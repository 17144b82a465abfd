//! Durable pull consumers with explicit ack, bounded redelivery and a
//! dead-letter path.
//!
//! - A handler that fails with [`Failure::Retry`] (a store was unreachable)
//!   gets the event again after a delay that doubles with each delivery, up to
//!   `max_retry_delay_ms`, until `max_deliver` deliveries: by default about an
//!   hour and a half of retries, so that an outage of a store delays the read
//!   model but does not lose events from it. Each failure is logged as a
//!   warning, and every [`ERROR_EVERY`]-th delivery of the same event as an
//!   error. While failures last, the consumer also slows itself down: it hands
//!   the rest of the batch back, pauses (with the same back-off), and pulls
//!   one message at a time until a handler succeeds again.
//! - An event still failing at `max_deliver` deliveries is dead-lettered like
//!   poison, so it never blocks the events behind it for good.
//! - [`Failure::Poison`] (and a payload that does not decode) can never
//!   succeed: the message is copied to the dead-letter stream at once, with
//!   the reason in its headers, logged, and terminated, so it never blocks the
//!   events behind it. If the copy cannot be published, the message is not
//!   terminated but delivered again later.
//!
//! JetStream's own `max_deliver` counts every delivery, retries included, and
//! silently drops a message at the limit; the consumer is therefore created
//! (or updated) with unlimited deliveries at the server and enforces its
//! bound itself, dead-lettering rather than dropping.
//!
//! Redelivered and delayed events can arrive out of order: handlers must be
//! idempotent and compare versions.
//!
//! The consumer's metrics ([`Consumer::register_metrics`], labelled with the
//! durable name) count its deliveries, redeliveries and dead letters (by a
//! bounded reason) and time its handler; its backlog on the server
//! (`consumer_pending`, `consumer_ack_pending`) is read from JetStream's
//! consumer info every `info_poll_ms` while it runs.

use std::{future::Future, time::Duration};

use tokio::{sync::watch, time::Instant};
use tracing::Instrument as _;

use anyhow::Context as _;
use async_nats::{
    HeaderMap,
    jetstream::{self, AckKind, consumer::pull},
};
use futures::StreamExt as _;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use svc_kit::{backoff::Backoff, failure::FailureKind};
use taxi_proto::events::v1::EventEnvelope;

use crate::{NatsConfig, stream::ensure_streams};

/// How long the consumer waits before binding again after NATS went away.
const INTERRUPTED: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));

/// How long one pull request waits on the server for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// Margin past `PULL_EXPIRES` before a pull counts as lost.
const PULL_GRACE: Duration = Duration::from_millis(500);

/// Header naming why a message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "Taxi-Dead-Letter-Reason";
/// Header carrying a dead letter's original subject.
pub const DEAD_LETTER_SUBJECT: &str = "Taxi-Original-Subject";

/// An event that keeps failing transiently is logged as an error on every
/// `ERROR_EVERY`-th delivery (as a warning on the others).
pub const ERROR_EVERY: i64 = 10;

/// JetStream's `max_deliver` for "no limit".
const UNLIMITED_DELIVERIES: i64 = -1;

/// Tuning of a consumer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Deliveries of an event that keeps failing transiently before it is
    /// dead-lettered.
    pub max_deliver: i64,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait_ms: u64,
    /// Messages pulled per request (one at a time while handlers fail).
    pub batch_size: usize,
    /// Delay before an event that failed transiently is delivered again; it
    /// doubles with each further delivery of the event.
    pub retry_delay_ms: u64,
    /// The longest such delay (and pause of the consumer while failing).
    pub max_retry_delay_ms: u64,
    /// How often the consumer's pending and ack-pending counts are read from
    /// JetStream for its metrics.
    pub info_poll_ms: u64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            // With the delays below: about 95 minutes of retries.
            max_deliver: 200,
            // A replica that dies holding events delays them this long; a
            // handler takes milliseconds, and one that fails hands its event
            // back itself.
            ack_wait_ms: 10_000,
            batch_size: 64,
            retry_delay_ms: 1_000,
            max_retry_delay_ms: 30_000,
            info_poll_ms: 5_000,
        }
    }
}

impl ConsumerConfig {
    /// Rejects settings that cannot work; `prefix` begins the names of the
    /// environment variables that set them (say `QUERY_CONSUMER__`).
    pub fn validate(&self, prefix: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.batch_size >= 1
                && self.ack_wait_ms >= 1
                && self.retry_delay_ms >= 1
                && self.max_deliver >= 1
                && self.info_poll_ms >= 1,
            "{prefix}BATCH_SIZE, {prefix}ACK_WAIT_MS, {prefix}RETRY_DELAY_MS, {prefix}MAX_DELIVER and \
             {prefix}INFO_POLL_MS must be positive"
        );
        anyhow::ensure!(
            self.max_retry_delay_ms >= self.retry_delay_ms,
            "{prefix}MAX_RETRY_DELAY_MS must be at least {prefix}RETRY_DELAY_MS"
        );
        Ok(())
    }

    /// The delay after the `attempt`-th failure in a row (1 for the first):
    /// `retry_delay_ms` doubled per attempt, at most `max_retry_delay_ms`,
    /// and never under 1 ms.
    pub fn retry_delay(&self, attempt: i64) -> Duration {
        let retry = u32::try_from(attempt.saturating_sub(1).max(0)).unwrap_or(u32::MAX);
        Backoff::new(
            Duration::from_millis(self.retry_delay_ms.max(1)),
            Duration::from_millis(self.max_retry_delay_ms.max(1)),
        )
        .delay(retry)
    }
}

/// Why a handler could not apply an event.
#[derive(Debug)]
pub enum Failure {
    /// Worth trying again (a store was unreachable): retried with back-off,
    /// dead-lettered only after `max_deliver` deliveries.
    Retry(anyhow::Error),
    /// Will never succeed (malformed content): dead-letter it now.
    Poison(anyhow::Error),
}

impl Failure {
    /// The consumer's decision for a handler's failure of `kind`: only a
    /// transient one is retried. Redelivering a permanent failure (a
    /// constraint the event violates, a bug) cannot change its outcome and
    /// would hold the event for the whole retry budget, so it is dead-lettered
    /// at once, to be replayed once the cause is fixed.
    pub fn of_kind(kind: FailureKind, error: anyhow::Error) -> Self {
        match kind {
            FailureKind::Transient => Self::Retry(error),
            FailureKind::Caller | FailureKind::Permanent => Self::Poison(error),
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Handled and acked.
    Handled,
    /// Poison, copied to the dead-letter stream and terminated.
    DeadLettered,
    /// Handed back to be delivered again later.
    Retrying,
}

/// Why an event was dead-lettered: the `reason` label of
/// `consumer_dead_letters_total`, a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeadLetterReason {
    /// The handler answered [`Failure::Poison`].
    Permanent,
    /// The payload is not an event envelope.
    Undecodable,
    /// Still failing transiently after `max_deliver` deliveries.
    MaxDeliver,
}

impl DeadLetterReason {
    const ALL: [Self; 3] = [Self::Permanent, Self::Undecodable, Self::MaxDeliver];

    fn label(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Undecodable => "undecodable",
            Self::MaxDeliver => "max_deliver",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Buckets of `consumer_handler_seconds`: a projection into Redis takes
/// well under a millisecond to a few, a handler waiting on a slow store up
/// to seconds.
const HANDLER_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The consumer's metric handles, recording from the start whether or not
/// they are registered anywhere.
#[derive(Debug, Clone)]
struct ConsumerMetrics {
    deliveries: Counter,
    redeliveries: Counter,
    dead_letters: Family<ReasonLabels, Counter>,
    handler_seconds: Histogram,
    pending: Gauge,
    ack_pending: Gauge,
}

impl Default for ConsumerMetrics {
    fn default() -> Self {
        let dead_letters = Family::<ReasonLabels, Counter>::default();
        // Every reason is exported from the start, at 0, so that a rate or
        // an alert over it has a series before the first dead letter.
        for reason in DeadLetterReason::ALL {
            drop(dead_letters.get_or_create(&ReasonLabels {
                reason: reason.label(),
            }));
        }
        Self {
            deliveries: Counter::default(),
            redeliveries: Counter::default(),
            dead_letters,
            handler_seconds: Histogram::new(HANDLER_BUCKETS),
            pending: Gauge::default(),
            ack_pending: Gauge::default(),
        }
    }
}

impl ConsumerMetrics {
    fn dead_lettered(&self, reason: DeadLetterReason) {
        self.dead_letters
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc();
    }
}

/// A durable consumer of `filter_subject` named `durable`.
pub struct Consumer {
    js: jetstream::Context,
    nats: NatsConfig,
    durable: String,
    filter_subject: String,
    config: ConsumerConfig,
    metrics: ConsumerMetrics,
    /// Set when the service shuts down: see [`Consumer::stop_when`].
    stopping: Option<watch::Receiver<bool>>,
}

impl Consumer {
    /// Describes a consumer; nothing is created until [`Consumer::run`].
    pub fn new(
        js: jetstream::Context,
        nats: NatsConfig,
        durable: impl Into<String>,
        filter_subject: impl Into<String>,
        config: ConsumerConfig,
    ) -> Self {
        Self {
            js,
            nats,
            durable: durable.into(),
            filter_subject: filter_subject.into(),
            config,
            metrics: ConsumerMetrics::default(),
            stopping: None,
        }
    }

    /// Makes [`Consumer::run`] end once `stopping` reads true, gracefully:
    /// it finishes the event in hand, hands the rest of its pull back to
    /// JetStream at once (so another replica takes them now, not after
    /// `ack_wait`), and returns when that pull is over (within about 1.5 s).
    pub fn stop_when(mut self, stopping: watch::Receiver<bool>) -> Self {
        self.stopping = Some(stopping);
        self
    }

    fn stopping(&self) -> bool {
        self.stopping.as_ref().is_some_and(|stopping| *stopping.borrow())
    }

    /// Registers the consumer's metrics in `registry`, labelled
    /// `consumer` with its durable name. Once per registry, and one consumer
    /// per registry: a second would repeat the families.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_label(("consumer".into(), self.durable.clone().into()));
        let metrics = &self.metrics;
        registry.register(
            "consumer_deliveries",
            "Messages JetStream delivered to the consumer, redeliveries included",
            metrics.deliveries.clone(),
        );
        registry.register(
            "consumer_redeliveries",
            "Deliveries of a message JetStream had delivered before (a retry, a message handed back, \
             an ack that came too late)",
            metrics.redeliveries.clone(),
        );
        registry.register(
            "consumer_dead_letters",
            "Events the consumer gave up on and copied to the dead-letter stream, by reason: permanent \
             (the handler can never apply it), undecodable (not an event), max_deliver (still failing \
             after max_deliver deliveries)",
            metrics.dead_letters.clone(),
        );
        registry.register_with_unit(
            "consumer_handler",
            "Time the handler took for one event, whatever its outcome",
            Unit::Seconds,
            metrics.handler_seconds.clone(),
        );
        registry.register(
            "consumer_pending",
            "Messages of the consumer's subjects not yet delivered to it, as JetStream last reported",
            metrics.pending.clone(),
        );
        registry.register(
            "consumer_ack_pending",
            "Messages delivered to the consumer and not yet acknowledged (being handled or waiting \
             for a retry), as JetStream last reported",
            metrics.ack_pending.clone(),
        );
    }

    /// Consumes until stopped (see [`Consumer::stop_when`]; for ever
    /// without it), handing each event to `handle` in stream order. Waits
    /// out NATS outages (and a missing stream or consumer, which it creates).
    /// Meanwhile it reads its pending counts from JetStream for its metrics.
    pub async fn run<F, Fut>(self, mut handle: F)
    where
        F: FnMut(EventEnvelope) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        let consume = async {
            let mut retries = INTERRUPTED.retries();
            while !self.stopping() {
                match self.consume(&mut handle).await {
                    Ok(()) => retries.reset(),
                    Err(error) if !self.stopping() => {
                        let delay = retries.next_delay();
                        tracing::warn!(consumer = self.durable, error = format!("{error:#}"), retry_in = ?delay, "consumer interrupted");
                        tokio::time::sleep(delay).await;
                    }
                    Err(_) => {}
                }
            }
            tracing::info!(consumer = self.durable, "consumer stopped");
        };
        // The poller never ends; it lives exactly as long as the consumer.
        tokio::select! {
            () = consume => {}
            () = self.poll_pending() => {}
        }
    }

    /// Reads the consumer's pending counts from JetStream every
    /// `info_poll_ms`, forever. A failed read (NATS down, the consumer not
    /// created yet) keeps the last counts and never disturbs consuming.
    async fn poll_pending(&self) {
        let mut ticks = tokio::time::interval(Duration::from_millis(self.config.info_poll_ms.max(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.pending().await {
                Ok((pending, ack_pending)) => {
                    self.metrics
                        .pending
                        .set(i64::try_from(pending).unwrap_or(i64::MAX));
                    self.metrics
                        .ack_pending
                        .set(i64::try_from(ack_pending).unwrap_or(i64::MAX));
                }
                Err(error) => {
                    tracing::debug!(
                        consumer = self.durable,
                        error = format!("{error:#}"),
                        "cannot read the consumer's pending counts"
                    );
                }
            }
        }
    }

    /// The consumer's `num_pending` and `num_ack_pending` on the server.
    async fn pending(&self) -> anyhow::Result<(u64, usize)> {
        let stream = self.js.get_stream_no_info(self.nats.subjects().stream()).await?;
        let info = stream.consumer_info(&self.durable).await?;
        Ok((info.num_pending, info.num_ack_pending))
    }

    /// Creates the durable consumer, or binds the existing one and brings its
    /// redelivery settings up to date: a consumer created by an older version
    /// has a bounded `max_deliver`, at which the server would silently stop
    /// delivering an event that keeps failing transiently.
    async fn bind(&self) -> anyhow::Result<jetstream::consumer::PullConsumer> {
        ensure_streams(&self.js, &self.nats).await?;
        let stream = self.js.get_stream(self.nats.subjects().stream()).await?;
        let config = pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subject: self.filter_subject.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_millis(self.config.ack_wait_ms),
            max_deliver: UNLIMITED_DELIVERIES,
            ..Default::default()
        };
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(&self.durable, config.clone())
            .await
            .with_context(|| format!("cannot bind consumer {}", self.durable))?;
        let current = &consumer.cached_info().config;
        if current.max_deliver == config.max_deliver && current.ack_wait == config.ack_wait {
            return Ok(consumer);
        }
        // Creating an existing durable with a different configuration updates
        // it, for the settings the server allows to change (NATS 2.9 included
        // `max_deliver` and `ack_wait`).
        let (old_max_deliver, old_ack_wait) = (current.max_deliver, current.ack_wait);
        match stream.create_consumer(config).await {
            Ok(updated) => {
                tracing::info!(
                    consumer = self.durable,
                    old_max_deliver,
                    ?old_ack_wait,
                    "consumer settings updated"
                );
                Ok(updated)
            }
            Err(error) => {
                tracing::error!(
                    consumer = self.durable,
                    old_max_deliver,
                    ?old_ack_wait,
                    error = format!("{error:#}"),
                    "cannot update the consumer's settings; events that keep failing may be dropped \
                     by the server after max_deliver attempts: delete the consumer to recreate it"
                );
                Ok(consumer)
            }
        }
    }

    /// Binds the consumer and processes batches until something fails.
    async fn consume<F, Fut>(&self, handle: &mut F) -> anyhow::Result<()>
    where
        F: FnMut(EventEnvelope) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        let consumer = self.bind().await?;
        // Transient failures in a row: while there are any, the consumer
        // pauses after each and pulls one message at a time, so that a store
        // that is down is not handed every pending event in turn.
        let mut failures: i64 = 0;
        loop {
            let batch_size = if failures == 0 { self.config.batch_size } else { 1 };
            let mut batch = consumer
                .batch()
                .max_messages(batch_size)
                .expires(PULL_EXPIRES)
                .messages()
                .await?;
            // Until then, a message handed back may be delivered again into
            // this same pull, so it is handed back for at least that long.
            let batch_end = Instant::now() + PULL_EXPIRES + PULL_GRACE;
            let open_for = || {
                if batch_size > 1 {
                    batch_end.saturating_duration_since(Instant::now())
                } else {
                    Duration::ZERO
                }
            };
            let mut failed = false;
            // The server ends a live pull within `PULL_EXPIRES`; a pull lost
            // with its server (a restart) would otherwise be waited on for
            // `expires` + 5 s by the client, so give up on it sooner.
            while let Ok(next) = tokio::time::timeout(PULL_EXPIRES + PULL_GRACE, batch.next()).await {
                let Some(message) = next else { break };
                let message = message.map_err(|e| anyhow::anyhow!(e))?;
                self.metrics.deliveries.inc();
                if message.info().is_ok_and(|info| info.delivered > 1) {
                    self.metrics.redeliveries.inc();
                }
                if self.stopping() {
                    // Shutting down: back to JetStream at once, for another
                    // replica (or this one's successor) to take now.
                    message
                        .ack_with(AckKind::Nak(None))
                        .await
                        .map_err(|e| anyhow::anyhow!(e))?;
                    continue;
                }
                if failed {
                    // Hand the rest of the batch back untried: it comes back
                    // one message at a time after the pause.
                    message
                        .ack_with(AckKind::Nak(Some(open_for().max(Duration::from_millis(1)))))
                        .await
                        .map_err(|e| anyhow::anyhow!(e))?;
                    continue;
                }
                match self.process(message, handle, open_for()).await? {
                    Outcome::Handled => failures = 0,
                    Outcome::DeadLettered => {}
                    Outcome::Retrying => {
                        failures = failures.saturating_add(1);
                        failed = true;
                    }
                }
            }
            if self.stopping() {
                return Ok(());
            }
            if failed {
                let pause = self.config.retry_delay(failures);
                tracing::debug!(consumer = self.durable, failures, ?pause, "consumer backing off");
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Handles one message; one handed back for a retry is not delivered
    /// again for at least `min_delay`.
    async fn process<F, Fut>(
        &self,
        message: jetstream::Message,
        handle: &mut F,
        min_delay: Duration,
    ) -> anyhow::Result<Outcome>
    where
        F: FnMut(EventEnvelope) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        let (delivered, sequence) = message
            .info()
            .map(|info| (info.delivered, info.stream_sequence))
            .unwrap_or((1, 0));
        let (outcome, poison) = match EventEnvelope::decode(message.payload.clone()) {
            Ok(envelope) => {
                let started = Instant::now();
                let outcome = match self.handler_span(&message) {
                    Some(span) => handle(envelope).instrument(span).await,
                    None => handle(envelope).await,
                };
                self.metrics
                    .handler_seconds
                    .observe(started.elapsed().as_secs_f64());
                (outcome, DeadLetterReason::Permanent)
            }
            Err(error) => (
                Err(Failure::Poison(
                    anyhow::Error::new(error).context("undecodable event"),
                )),
                DeadLetterReason::Undecodable,
            ),
        };
        let (ack, result) = match outcome {
            Ok(()) => (AckKind::Ack, Outcome::Handled),
            Err(Failure::Retry(error)) if delivered < self.config.max_deliver => {
                let retry_in = self.config.retry_delay(delivered).max(min_delay);
                let error = format!("{error:#}");
                if delivered % ERROR_EVERY == 0 {
                    tracing::error!(consumer = self.durable, subject = %message.subject, sequence, delivered, error, ?retry_in, "event keeps failing; will retry");
                } else {
                    tracing::warn!(consumer = self.durable, subject = %message.subject, sequence, delivered, error, ?retry_in, "event failed; will retry");
                }
                (AckKind::Nak(Some(retry_in)), Outcome::Retrying)
            }
            Err(Failure::Retry(error)) => {
                self.give_up(
                    &message,
                    &error.context(format!("still failing after {delivered} deliveries")),
                    DeadLetterReason::MaxDeliver,
                    delivered,
                    sequence,
                    min_delay,
                )
                .await
            }
            Err(Failure::Poison(error)) => {
                self.give_up(&message, &error, poison, delivered, sequence, min_delay)
                    .await
            }
        };
        message.ack_with(ack).await.map_err(|e| anyhow::anyhow!(e))?;
        Ok(result)
    }

    /// The span `message`'s handler runs in, continuing the trace the
    /// message's headers carry; none while tracing is off or for a message
    /// published outside a trace.
    fn handler_span(&self, message: &jetstream::Message) -> Option<tracing::Span> {
        let traced = message
            .headers
            .as_ref()
            .is_some_and(|headers| headers.get(svc_kit::telemetry::trace::TRACEPARENT).is_some());
        if !traced || !svc_kit::telemetry::trace::enabled() {
            return None;
        }
        let span = tracing::info_span!(
            "consume",
            otel.name = format!("process {}", self.durable),
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.consumer.group.name = %self.durable,
            messaging.destination.name = %message.subject,
            trace_id = tracing::field::Empty,
        );
        crate::trace::continue_from(&span, message.headers.as_ref());
        Some(span)
    }

    /// Dead-letters a message; if the dead letter cannot be published, hands
    /// the message back instead, to be dead-lettered when it comes again.
    async fn give_up(
        &self,
        message: &jetstream::Message,
        error: &anyhow::Error,
        reason: DeadLetterReason,
        delivered: i64,
        sequence: u64,
        min_delay: Duration,
    ) -> (AckKind, Outcome) {
        match self.dead_letter(message, error, delivered, sequence).await {
            Ok(()) => {
                self.metrics.dead_lettered(reason);
                (AckKind::Term, Outcome::DeadLettered)
            }
            Err(publish) => {
                // Not terminated: the event comes back and is dead-lettered
                // once the dead-letter stream takes it.
                let retry_in = self.config.retry_delay(delivered).max(min_delay);
                tracing::error!(consumer = self.durable, subject = %message.subject, sequence, delivered, error = format!("{publish:#}"), ?retry_in, "cannot dead-letter the event; will retry");
                (AckKind::Nak(Some(retry_in)), Outcome::Retrying)
            }
        }
    }

    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        error: &anyhow::Error,
        delivered: i64,
        sequence: u64,
    ) -> anyhow::Result<()> {
        let reason = format!("{error:#}");
        let mut headers = HeaderMap::new();
        headers.insert(DEAD_LETTER_REASON, reason.replace(['\r', '\n'], " ").as_str());
        headers.insert(DEAD_LETTER_SUBJECT, message.subject.as_str());
        if sequence > 0 {
            // A message dead-lettered again (its Term was lost) is dropped as
            // a duplicate within the stream's duplicate window.
            let id = format!("{}:{}:{sequence}", self.nats.subjects().stream(), self.durable);
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        }
        self.js
            .publish_with_headers(
                self.nats.subjects().dead_letter(&self.durable),
                headers,
                message.payload.clone(),
            )
            .await?
            .await
            .context("publish dead letter")?;
        tracing::error!(consumer = self.durable, subject = %message.subject, sequence, delivered, reason, "event dead-lettered");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_per_attempt_up_to_the_cap() {
        let config = ConsumerConfig {
            retry_delay_ms: 1_000,
            max_retry_delay_ms: 30_000,
            ..Default::default()
        };
        let ms = |attempt| config.retry_delay(attempt).as_millis();
        assert_eq!(
            [0, 1, 2, 3, 5, 6, 100, i64::MAX].map(ms),
            [1_000, 1_000, 2_000, 4_000, 16_000, 30_000, 30_000, 30_000]
        );
    }
}
