//! Connecting to NATS and making sure the streams exist.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};

use crate::NatsConfig;

/// Connects to NATS. Start-up does not wait for the server: the client keeps
/// trying in the background, so a service starts (and takes commands) while
/// NATS is down.
pub async fn connect(config: &NatsConfig, name: &str) -> anyhow::Result<jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        // The client's default backs off to 4 s between reconnects; a capped 1 s
        // lets the outbox backlog drain promptly once NATS is back.
        .reconnect_delay_callback(|attempts| {
            let exponent = u32::try_from(attempts).unwrap_or(u32::MAX).min(5);
            Duration::from_millis(50 * 2u64.pow(exponent)).min(Duration::from_secs(1))
        })
        .event_callback(|event| async move {
            tracing::info!(%event, "nats connection event");
        })
        .connect(config.url.expose())
        .await
        .with_context(|| format!("cannot connect to NATS at {}", config.url))?;
    let mut js = jetstream::new(client);
    // A PubAck normally takes milliseconds; events published in the instant
    // before the client notices a lost server wait this long before the relay
    // retries them (harmlessly: they are de-duplicated).
    js.set_timeout(Duration::from_millis(config.ack_timeout_ms));
    Ok(js)
}

/// Creates the event and dead-letter streams, or updates them to this
/// configuration: file storage, `replicas`, and the duplicate window that
/// turns a republished event (same `Nats-Msg-Id`) into a no-op.
pub async fn ensure_streams(js: &jetstream::Context, config: &NatsConfig) -> anyhow::Result<()> {
    let subjects = config.subjects();
    let events = stream::Config {
        name: subjects.stream(),
        description: Some("Domain events of the taxi platform".into()),
        subjects: vec![subjects.all_events()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        duplicate_window: Duration::from_millis(config.duplicate_window_ms),
        ..Default::default()
    };
    js.create_or_update_stream(events)
        .await
        .with_context(|| format!("cannot create stream {}", subjects.stream()))?;
    let dead_letters = stream::Config {
        name: subjects.dead_letter_stream(),
        description: Some("Events consumers gave up on, for inspection and replay".into()),
        subjects: vec![subjects.all_dead_letters()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        ..Default::default()
    };
    js.create_or_update_stream(dead_letters)
        .await
        .with_context(|| format!("cannot create stream {}", subjects.dead_letter_stream()))?;
    Ok(())
}
