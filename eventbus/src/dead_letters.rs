//! The operator's side of the dead-letter stream: list a consumer's dead
//! letters, and replay them once whatever made them fail is fixed.
//!
//! A replay publishes each dead letter again on its original subject, so
//! every consumer of that subject receives the event once more; consumers are
//! idempotent (they dedupe and compare versions), so only the one that missed
//! it changes anything. Each dead letter is removed from the dead-letter stream
//! after JetStream acknowledged its replay, under a message id of its own, so
//! a replay cut short can simply be run again.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::{
    HeaderMap,
    jetstream::{self, consumer::pull},
};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;

use crate::{
    NatsConfig,
    consumer::{DEAD_LETTER_REASON, DEAD_LETTER_SUBJECT},
};

/// How long a read of the dead-letter stream waits for more messages.
const FETCH_EXPIRES: Duration = Duration::from_millis(500);
/// Dead letters read per fetch.
const FETCH_BATCH: usize = 256;

/// One dead letter, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// The subject the event was published on.
    pub subject: String,
    /// Why the consumer gave up on it.
    pub reason: String,
    /// When it was dead-lettered.
    pub at: DateTime<Utc>,
    /// The event as published.
    pub payload: bytes::Bytes,
}

/// Every dead letter of `consumer`, oldest first.
pub async fn list(
    js: &jetstream::Context,
    nats: &NatsConfig,
    consumer: &str,
) -> anyhow::Result<Vec<DeadLetter>> {
    read(&dead_letter_stream(js, nats).await?, nats, consumer).await
}

async fn dead_letter_stream(
    js: &jetstream::Context,
    nats: &NatsConfig,
) -> anyhow::Result<jetstream::stream::Stream> {
    let name = nats.subjects().dead_letter_stream();
    js.get_stream(&name)
        .await
        .with_context(|| format!("no dead-letter stream {name}"))
}

async fn read(
    stream: &jetstream::stream::Stream,
    nats: &NatsConfig,
    consumer: &str,
) -> anyhow::Result<Vec<DeadLetter>> {
    // An ephemeral reader that acknowledges nothing, so reading changes nothing.
    let reader: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: nats.subjects().dead_letter(consumer),
            ack_policy: jetstream::consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .context("cannot read the dead-letter stream")?;
    let mut letters = Vec::new();
    loop {
        let mut batch = reader
            .fetch()
            .max_messages(FETCH_BATCH)
            .expires(FETCH_EXPIRES)
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let before = letters.len();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow::anyhow!(e))?;
            letters.push(dead_letter(&message)?);
        }
        if letters.len() == before {
            return Ok(letters);
        }
    }
}

/// Publishes every dead letter of `consumer` again on its original subject,
/// removing each once JetStream has it; returns how many were replayed.
pub async fn replay(js: &jetstream::Context, nats: &NatsConfig, consumer: &str) -> anyhow::Result<usize> {
    let subjects = nats.subjects();
    let stream = dead_letter_stream(js, nats).await?;
    let letters = read(&stream, nats, consumer).await?;
    for letter in &letters {
        let mut headers = HeaderMap::new();
        // Not the event's own id: JetStream may still remember that one and
        // would drop the replay as a duplicate.
        let id = format!(
            "replay:{}:{consumer}:{}",
            subjects.dead_letter_stream(),
            letter.sequence
        );
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        js.publish_with_headers(letter.subject.clone(), headers, letter.payload.clone())
            .await?
            .await
            .with_context(|| format!("replay of dead letter {}", letter.sequence))?;
        stream
            .delete_message(letter.sequence)
            .await
            .with_context(|| format!("remove replayed dead letter {}", letter.sequence))?;
        tracing::info!(
            consumer,
            sequence = letter.sequence,
            subject = letter.subject,
            "dead letter replayed"
        );
    }
    Ok(letters.len())
}

fn dead_letter(message: &jetstream::Message) -> anyhow::Result<DeadLetter> {
    let info = message.info().map_err(|e| anyhow::anyhow!(e))?;
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
    };
    let at = DateTime::from_timestamp_nanos(
        i64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(i64::MAX),
    );
    Ok(DeadLetter {
        sequence: info.stream_sequence,
        subject: header(DEAD_LETTER_SUBJECT).context("a dead letter without its original subject")?,
        reason: header(DEAD_LETTER_REASON).unwrap_or_default(),
        at,
        payload: message.payload.clone(),
    })
}

/// The `dead-letters` command of a service that consumes events:
/// `dead-letters` lists `consumer`'s dead letters, `dead-letters replay`
/// replays them.
pub async fn command(nats: &NatsConfig, consumer: &str, args: &[String]) -> anyhow::Result<()> {
    let js = crate::stream::connect(nats, "dead-letters").await?;
    crate::stream::ensure_streams(&js, nats).await?;
    match args.first().map(String::as_str) {
        None | Some("list") => {
            let letters = list(&js, nats, consumer).await?;
            for letter in &letters {
                println!(
                    "{}\t{}\t{}\t{}",
                    letter.sequence,
                    letter.at.to_rfc3339(),
                    letter.subject,
                    letter.reason
                );
            }
            println!("{} dead letters of {consumer}", letters.len());
        }
        Some("replay") => {
            let replayed = replay(&js, nats, consumer).await?;
            println!("{replayed} dead letters of {consumer} replayed");
        }
        Some(other) => anyhow::bail!("unknown dead-letters command {other:?}; use `list` or `replay`"),
    }
    Ok(())
}
