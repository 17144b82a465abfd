//! Connecting to NATS and making sure the streams exist.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use svc_kit::backoff::Backoff;

use crate::NatsConfig;

/// How long the client waits before reconnecting: 50 ms doubled up to 1 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));

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
        .reconnect_delay_callback(|attempts| RECONNECT.delay(u32::try_from(attempts).unwrap_or(u32::MAX)))
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

/// Exports `nats_connected`, 1 while the client is connected to a server and
/// 0 while it is reconnecting, read at every scrape.
pub fn register_connection_metrics(js: &jetstream::Context, registry: &mut svc_kit::metrics::Registry) {
    registry.register_collector(Box::new(ConnectionState { client: js.client() }));
}

#[derive(Debug)]
struct ConnectionState {
    client: async_nats::Client,
}

impl prometheus_client::collector::Collector for ConnectionState {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>) -> std::fmt::Result {
        use prometheus_client::{
            encoding::EncodeMetric as _,
            metrics::{MetricType, gauge::ConstGauge},
        };

        let connected = matches!(
            self.client.connection_state(),
            async_nats::connection::State::Connected
        );
        let gauge = encoder.encode_descriptor(
            "nats_connected",
            "1 while the NATS client is connected, 0 while it is reconnecting",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(connected)).encode(gauge)
    }
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
