//! Durable pull consumers with explicit ack, bounded redelivery and a
//! dead-letter path.
//!
//! A handler that fails with [`Failure::Retry`] gets the event again after a
//! delay, up to `max_deliver` times; then, or at once for [`Failure::Poison`]
//! (and for payloads that do not decode), the message is copied to the
//! dead-letter stream with the reason in its headers, logged, and terminated,
//! so it never blocks the events behind it. Redelivered and delayed events can
//! arrive out of order: handlers must be idempotent and compare versions.

use std::{future::Future, time::Duration};

use anyhow::Context as _;
use async_nats::{
    HeaderMap,
    jetstream::{self, AckKind, consumer::pull},
};
use futures::StreamExt as _;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use taxi_proto::events::v1::EventEnvelope;

use crate::{NatsConfig, stream::ensure_streams};

/// How long one pull request waits on the server for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// Margin past `PULL_EXPIRES` before a pull counts as lost.
const PULL_GRACE: Duration = Duration::from_millis(500);

/// Header naming why a message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "Taxi-Dead-Letter-Reason";
/// Header carrying a dead letter's original subject.
pub const DEAD_LETTER_SUBJECT: &str = "Taxi-Original-Subject";

/// Tuning of a consumer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Deliveries of one message before it is dead-lettered.
    pub max_deliver: i64,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait_ms: u64,
    /// Messages pulled per request.
    pub batch_size: usize,
    /// Delay before a failed message is delivered again.
    pub retry_delay_ms: u64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            max_deliver: 5,
            ack_wait_ms: 30_000,
            batch_size: 64,
            retry_delay_ms: 1_000,
        }
    }
}

/// Why a handler could not apply an event.
#[derive(Debug)]
pub enum Failure {
    /// Worth trying again (a store was unreachable).
    Retry(anyhow::Error),
    /// Will never succeed (malformed content): dead-letter it now.
    Poison(anyhow::Error),
}

/// A durable consumer of `filter_subject` named `durable`.
pub struct Consumer {
    js: jetstream::Context,
    nats: NatsConfig,
    durable: String,
    filter_subject: String,
    config: ConsumerConfig,
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
        }
    }

    /// Consumes forever, handing each event to `handle` in stream order. Waits
    /// out NATS outages (and a missing stream or consumer, which it creates).
    pub async fn run<F, Fut>(self, mut handle: F)
    where
        F: FnMut(EventEnvelope) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.consume(&mut handle).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(consumer = self.durable, error = format!("{error:#}"), retry_in = ?backoff, "consumer interrupted");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Binds the consumer and processes batches until something fails.
    async fn consume<F, Fut>(&self, handle: &mut F) -> anyhow::Result<()>
    where
        F: FnMut(EventEnvelope) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        ensure_streams(&self.js, &self.nats).await?;
        let stream = self.js.get_stream(self.nats.subjects().stream()).await?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &self.durable,
                pull::Config {
                    durable_name: Some(self.durable.clone()),
                    filter_subject: self.filter_subject.clone(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_millis(self.config.ack_wait_ms),
                    max_deliver: self.config.max_deliver,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("cannot bind consumer {}", self.durable))?;
        loop {
            let mut batch = consumer
                .batch()
                .max_messages(self.config.batch_size)
                .expires(PULL_EXPIRES)
                .messages()
                .await?;
            // The server ends a live pull within `PULL_EXPIRES`; a pull lost
            // with its server (a restart) would otherwise be waited on for
            // `expires` + 5 s by the client, so give up on it sooner.
            while let Ok(next) = tokio::time::timeout(PULL_EXPIRES + PULL_GRACE, batch.next()).await {
                let Some(message) = next else { break };
                let message = message.map_err(|e| anyhow::anyhow!(e))?;
                self.process(message, handle).await?;
            }
        }
    }

    async fn process<F, Fut>(&self, message: jetstream::Message, handle: &mut F) -> anyhow::Result<()>
    where
        F: FnMut(EventEnvelope) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
        let outcome = match EventEnvelope::decode(message.payload.clone()) {
            Ok(envelope) => handle(envelope).await,
            Err(error) => Err(Failure::Poison(
                anyhow::Error::new(error).context("undecodable event"),
            )),
        };
        let ack = match outcome {
            Ok(()) => AckKind::Ack,
            Err(Failure::Retry(error)) if delivered < self.config.max_deliver => {
                tracing::warn!(consumer = self.durable, subject = %message.subject, delivered, error = format!("{error:#}"), "event failed; will retry");
                AckKind::Nak(Some(Duration::from_millis(self.config.retry_delay_ms)))
            }
            Err(Failure::Retry(error) | Failure::Poison(error)) => {
                self.dead_letter(&message, &error, delivered).await?;
                AckKind::Term
            }
        };
        message.ack_with(ack).await.map_err(|e| anyhow::anyhow!(e))?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        error: &anyhow::Error,
        delivered: i64,
    ) -> anyhow::Result<()> {
        let reason = format!("{error:#}");
        tracing::error!(consumer = self.durable, subject = %message.subject, delivered, reason, "event dead-lettered");
        let mut headers = HeaderMap::new();
        headers.insert(DEAD_LETTER_REASON, reason.replace(['\r', '\n'], " ").as_str());
        headers.insert(DEAD_LETTER_SUBJECT, message.subject.as_str());
        self.js
            .publish_with_headers(
                self.nats.subjects().dead_letter(&self.durable),
                headers,
                message.payload.clone(),
            )
            .await?
            .await
            .context("publish dead letter")?;
        Ok(())
    }
}
