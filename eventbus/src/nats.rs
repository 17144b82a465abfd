//! Where the events live: the NATS connection settings and the naming of
//! streams and subjects.

use serde::{Deserialize, Serialize};
use svc_kit::secret::SecretUrl;

/// How a service reaches JetStream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsConfig {
    /// `nats://[user:password@]host:port`, or several separated by commas
    /// (the servers of a cluster: the client connects to one and moves to
    /// another when it is lost; `tls://` requires TLS).
    pub url: SecretUrl,
    /// First token of every subject and the base of the stream names; tests
    /// use their own prefix so they never see each other's events.
    pub prefix: String,
    /// Stream replicas (1 on one server; 3 on a cluster).
    pub replicas: usize,
    /// How long JetStream remembers a message id to drop a republished event.
    pub duplicate_window_ms: u64,
    /// How long the event stream keeps an event, in hours; 0 keeps it for
    /// ever. A rebuild of the read models replays the whole stream, so a
    /// limit here is how far back a rebuild can reach.
    pub max_age_hours: u64,
    /// Largest size of each stream in bytes (the oldest events go first);
    /// -1 for no limit.
    pub max_bytes: i64,
    /// Update a stream that exists with other settings to these. Off, a
    /// service only creates missing streams and warns about one that
    /// differs, so one service left at its defaults never undoes an
    /// operator's replicas or retention.
    pub update_streams: bool,
    /// How long a JetStream request (a PubAck, a stream lookup) may take.
    pub ack_timeout_ms: u64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            prefix: "taxi".into(),
            replicas: 1,
            duplicate_window_ms: 2 * 60 * 1000,
            max_age_hours: 0,
            max_bytes: -1,
            update_streams: false,
            ack_timeout_ms: 5_000,
        }
    }
}

impl NatsConfig {
    /// Each server `url` lists.
    pub fn servers(&self) -> Vec<&str> {
        self.url
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|server| !server.is_empty())
            .collect()
    }

    /// The subject and stream names under this configuration's prefix.
    pub fn subjects(&self) -> Subjects {
        Subjects::new(&self.prefix)
    }
}

/// The naming scheme of streams and subjects under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Names under `prefix` (letters, digits, `_` and `-`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The stream holding every domain event.
    pub fn stream(&self) -> String {
        let base: String = self
            .prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{base}_EVENTS")
    }

    /// The stream holding messages consumers gave up on.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DLQ", self.stream())
    }

    /// The subject of an event: `event_type` is `aggregate.event`, as the
    /// outbox stores it (for example `call.requested`).
    pub fn event(&self, event_type: &str, aggregate_id: &str) -> String {
        format!("{}.{event_type}.{aggregate_id}", self.prefix)
    }

    /// Matches every domain event.
    pub fn all_events(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// Matches every event of one aggregate type, for example `call`.
    pub fn aggregate(&self, aggregate_type: &str) -> String {
        format!("{}.{aggregate_type}.>", self.prefix)
    }

    /// Matches one event type, for example `call.requested`.
    pub fn event_type(&self, event_type: &str) -> String {
        format!("{}.{event_type}.*", self.prefix)
    }

    /// Where a consumer's dead letters go.
    pub fn dead_letter(&self, consumer: &str) -> String {
        format!("{}_dlq.{consumer}", self.prefix)
    }

    /// Matches every dead letter.
    pub fn all_dead_letters(&self) -> String {
        format!("{}_dlq.>", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_calls_events_share_a_subject_family_filterable_by_type() {
        let s = Subjects::new("taxi");
        assert_eq!(s.event("call.requested", "c1"), "taxi.call.requested.c1");
        assert_eq!(s.event_type("call.requested"), "taxi.call.requested.*");
        assert_eq!(s.aggregate("call"), "taxi.call.>");
        assert_eq!(s.all_events(), "taxi.>");
    }

    #[test]
    fn stream_names_are_derived_from_the_prefix() {
        let s = Subjects::new("test_1a-b");
        assert_eq!(s.stream(), "TEST_1A_B_EVENTS");
        assert_eq!(s.dead_letter_stream(), "TEST_1A_B_EVENTS_DLQ");
        assert_eq!(s.dead_letter("projector"), "test_1a-b_dlq.projector");
    }
}
