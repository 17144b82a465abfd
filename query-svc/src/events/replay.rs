//! Reading the event stream from the start, for a rebuild: the stream's last
//! sequence, and its messages between two sequences in stream order.
//!
//! A replay uses an ordered consumer, which is ephemeral and unacknowledged:
//! it leaves nothing behind on the server and does not take events from the
//! live projector's durable consumer.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull::Ordered, pull::OrderedConfig},
};
use eventbus::NatsConfig;
use futures::StreamExt as _;
use prost::Message as _;
use taxi_proto::events::v1::EventEnvelope;

/// A replay that receives nothing for this long has stalled.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// A connection to JetStream for reading the event stream.
pub(crate) struct EventLog {
    js: jetstream::Context,
    stream: String,
}

impl EventLog {
    /// Connects to NATS and makes sure the streams exist.
    pub(crate) async fn connect(nats: &NatsConfig) -> anyhow::Result<Self> {
        let js = eventbus::stream::connect(nats, "query-svc-rebuild").await?;
        eventbus::stream::ensure_streams(&js, nats).await?;
        Ok(Self {
            js,
            stream: nats.subjects().stream(),
        })
    }

    /// Opens the event stream.
    pub(crate) async fn open(&self) -> anyhow::Result<EventStream> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .context("cannot open the event stream")?;
        Ok(EventStream { stream })
    }
}

/// The event stream, open.
pub(crate) struct EventStream {
    stream: jetstream::stream::Stream,
}

impl EventStream {
    /// The sequence of the newest message now in the stream (0 if empty).
    pub(crate) async fn last_sequence(&mut self) -> anyhow::Result<u64> {
        Ok(self
            .stream
            .info()
            .await
            .context("cannot read the event stream's state")?
            .state
            .last_sequence)
    }

    /// The messages `from..=to`, in stream order.
    pub(crate) async fn read(&self, from: u64, to: u64) -> anyhow::Result<Replay> {
        if to < from {
            return Ok(Replay { messages: None, to });
        }
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from },
                ..Default::default()
            })
            .await
            .context("cannot create the replay consumer")?;
        let messages = consumer.messages().await.context("cannot start the replay")?;
        Ok(Replay {
            messages: Some(messages),
            to,
        })
    }
}

/// The messages of one range of the stream, read one at a time.
pub(crate) struct Replay {
    /// `None` once the range is exhausted (or was empty).
    messages: Option<Ordered>,
    to: u64,
}

impl Replay {
    /// The next message of the range, decoded if it decodes; `None` after the
    /// last one. Fails when the stream ends or goes quiet before `to`.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Option<Result<EventEnvelope, prost::DecodeError>>> {
        let Some(messages) = self.messages.as_mut() else {
            return Ok(None);
        };
        let to = self.to;
        let message = tokio::time::timeout(IDLE_LIMIT, messages.next())
            .await
            .with_context(|| format!("replay stalled before sequence {to}"))?
            .with_context(|| format!("replay ended before sequence {to}"))?
            .map_err(|e| anyhow::anyhow!(e).context("replay failed"))?;
        let seq = message
            .info()
            .map_err(|e| anyhow::anyhow!("replayed message without metadata: {e}"))?
            .stream_sequence;
        if seq > to {
            self.messages = None;
            return Ok(None);
        }
        if seq >= to {
            self.messages = None;
        }
        Ok(Some(EventEnvelope::decode(message.payload.as_ref())))
    }
}
