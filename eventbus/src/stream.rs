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
        .connect(config.servers().as_slice())
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

/// Makes sure the event and dead-letter streams exist, by intent: a missing
/// stream is created with this configuration (file storage, `replicas`,
/// the retention limits, and the duplicate window that turns a republished
/// event, same `Nats-Msg-Id`, into a no-op). One that exists with other
/// settings is left as it is, with a warning naming each difference, unless
/// `update_streams` asks to update it.
pub async fn ensure_streams(js: &jetstream::Context, config: &NatsConfig) -> anyhow::Result<()> {
    for intended in intended_streams(config) {
        let name = intended.name.clone();
        let mut stream = js
            .get_or_create_stream(intended.clone())
            .await
            .with_context(|| format!("cannot create stream {name}"))?;
        let current = stream
            .info()
            .await
            .with_context(|| format!("cannot read stream {name}"))?
            .config
            .clone();
        let differences = differences(&current, &intended);
        if differences.is_empty() {
            continue;
        }
        let differences = differences.join(", ");
        if config.update_streams {
            js.update_stream(intended)
                .await
                .with_context(|| format!("cannot update stream {name} ({differences})"))?;
            tracing::info!(
                stream = name,
                differences,
                "stream updated to this service's settings"
            );
        } else {
            tracing::warn!(
                stream = name,
                differences,
                "stream differs from this service's settings; left as it is (NATS__UPDATE_STREAMS=true updates it)"
            );
        }
    }
    Ok(())
}

/// The event stream and the dead-letter stream as `config` wants them.
fn intended_streams(config: &NatsConfig) -> [stream::Config; 2] {
    let subjects = config.subjects();
    let events = stream::Config {
        name: subjects.stream(),
        description: Some("Domain events of the taxi platform".into()),
        subjects: vec![subjects.all_events()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_age: Duration::from_secs(config.max_age_hours.saturating_mul(3_600)),
        max_bytes: config.max_bytes,
        duplicate_window: Duration::from_millis(config.duplicate_window_ms),
        ..Default::default()
    };
    let dead_letters = stream::Config {
        name: subjects.dead_letter_stream(),
        description: Some("Events consumers gave up on, for inspection and replay".into()),
        subjects: vec![subjects.all_dead_letters()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_bytes: config.max_bytes,
        ..Default::default()
    };
    [events, dead_letters]
}

/// What differs between a stream's `current` settings and the `intended`
/// ones, among those this platform sets, as `setting current → intended`.
/// A stream's unset limits read back from the server as 0 or -1 alike.
fn differences(current: &stream::Config, intended: &stream::Config) -> Vec<String> {
    let unlimited = |bytes: i64| if bytes <= 0 { -1 } else { bytes };
    let mut differences = Vec::new();
    let mut compare = |setting: &str, current: String, intended: String| {
        if current != intended {
            differences.push(format!("{setting} {current} → {intended}"));
        }
    };
    compare(
        "subjects",
        format!("{:?}", current.subjects),
        format!("{:?}", intended.subjects),
    );
    compare(
        "storage",
        format!("{:?}", current.storage),
        format!("{:?}", intended.storage),
    );
    compare(
        "replicas",
        current.num_replicas.to_string(),
        intended.num_replicas.to_string(),
    );
    compare(
        "max_age",
        format!("{:?}", current.max_age),
        format!("{:?}", intended.max_age),
    );
    compare(
        "max_bytes",
        unlimited(current.max_bytes).to_string(),
        unlimited(intended.max_bytes).to_string(),
    );
    // The server fills in its default window when none was asked for.
    if intended.duplicate_window != Duration::ZERO {
        compare(
            "duplicate_window",
            format!("{:?}", current.duplicate_window),
            format!("{:?}", intended.duplicate_window),
        );
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_as_intended_has_no_differences_and_each_other_setting_is_named() {
        let [events, _] = intended_streams(&NatsConfig::default());
        let mut read_back = events.clone();
        read_back.max_bytes = 0;
        assert!(
            differences(&read_back, &events).is_empty(),
            "0 and -1 both mean no limit"
        );

        let operators = stream::Config {
            num_replicas: 3,
            max_age: Duration::from_secs(7 * 24 * 3_600),
            ..events.clone()
        };

        assert_eq!(
            differences(&operators, &events),
            ["replicas 3 → 1", "max_age 604800s → 0ns"]
        );
    }
}
