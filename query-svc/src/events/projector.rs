//! The projector: a durable JetStream consumer of every domain event that
//! applies each one to the active generation of the read models.
//!
//! Exactly-once in effect: the consumer delivers at least once and possibly
//! out of order; the store's apply script drops an event it has applied
//! before and never lets an older version replace a newer view.
//!
//! Its metrics ([`Projector::register_metrics`]) say how far the read models
//! trail the commands: `projection_lag_seconds`, from an event's
//! `occurred_at` (set by the writing service as it commits the change) to
//! the moment its view is written to Redis, on this process's clock;
//! `projection_events_applied_total{event_type}` (the catalogue's names,
//! `call.accepted`) and `projection_events_skipped_total` (an event applied
//! before, redelivered or replayed). An event older than the view it meets
//! still counts as applied: its history entry and counters are written,
//! only the view is kept. Events the read models do not use (driver and
//! payment events) count in neither.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream;
use eventbus::{
    NatsConfig,
    consumer::{Consumer, ConsumerConfig, Failure},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};
use svc_kit::{backoff::Backoff, failure::FailureKind};
use taxi_proto::events::v1::EventEnvelope;

use crate::{
    domain::{self, Projection},
    error::is_transient,
    store::{Applied, Store, apply::Target},
};

/// The projector's durable consumer name (one per deployment, shared by the
/// replicas, which then split the events between them).
pub const PROJECTOR_DURABLE: &str = "query-projector";

/// The waits between attempts to apply one event while Redis fails.
const APPLY_BACKOFF: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

/// Buckets of `projection_lag_seconds`: a healthy pipeline (relay, stream,
/// consumer, Redis) takes a few milliseconds; a backlog after an outage
/// tens of seconds.
const LAG_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The event types the read models apply, exported at 0 from the start.
const PROJECTED_EVENT_TYPES: [&str; 8] = [
    "call.requested",
    "call.rejected",
    "call.accepted",
    "call.trip_started",
    "call.trip_completed",
    "call.canceled",
    "call.reoffered",
    "call.settled",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventTypeLabels {
    event_type: &'static str,
}

/// The projector's metric handles, recording from the start whether or not
/// they are registered anywhere.
#[derive(Debug, Clone)]
struct ProjectorMetrics {
    lag_seconds: Histogram,
    applied: Family<EventTypeLabels, Counter>,
    skipped: Counter,
}

impl Default for ProjectorMetrics {
    fn default() -> Self {
        let applied = Family::<EventTypeLabels, Counter>::default();
        for event_type in PROJECTED_EVENT_TYPES {
            drop(applied.get_or_create(&EventTypeLabels { event_type }));
        }
        Self {
            lag_seconds: Histogram::new(LAG_BUCKETS),
            applied,
            skipped: Counter::default(),
        }
    }
}

impl ProjectorMetrics {
    /// `event` was just applied (`Fresh`) or found applied before.
    fn applied(&self, event: &EventEnvelope, applied: Applied) {
        if applied != Applied::Fresh {
            self.skipped.inc();
            return;
        }
        // The label is the catalogue's name of the payload (bounded); an
        // applied event always has one.
        if let Some(payload) = &event.payload {
            self.applied
                .get_or_create(&EventTypeLabels {
                    event_type: payload.event_type(),
                })
                .inc();
        }
        let occurred_at = event.occurred_at.as_ref().and_then(svc_kit::clock::from_proto);
        if let Some(occurred_at) = occurred_at {
            // Clocks of different hosts may disagree a little: never negative.
            let lag = (svc_kit::clock::now() - occurred_at)
                .to_std()
                .unwrap_or(Duration::ZERO);
            self.lag_seconds.observe(lag.as_secs_f64());
        }
    }
}

/// Applies events to whatever generation is active.
pub struct Projector {
    store: Store,
    /// The active generation as last seen. The apply script re-checks it, so a
    /// stale value costs a retry, never a misplaced write.
    generation: Mutex<Option<String>>,
    /// How long one delivery keeps retrying Redis before handing the event
    /// back for redelivery.
    retry_budget: Duration,
    metrics: ProjectorMetrics,
}

impl Projector {
    pub(crate) fn new(store: Store, retry_budget: Duration) -> Self {
        Self {
            store,
            generation: Mutex::new(None),
            retry_budget,
            metrics: ProjectorMetrics::default(),
        }
    }

    /// Registers the projector's metrics (see the module's docs) in
    /// `registry`. Once per registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let metrics = &self.metrics;
        registry.register_with_unit(
            "projection_lag",
            "Time from an event's occurred_at (its command's commit) to its view written in Redis",
            Unit::Seconds,
            metrics.lag_seconds.clone(),
        );
        registry.register(
            "projection_events_applied",
            "Events applied to the read models in Redis, by event type",
            metrics.applied.clone(),
        );
        registry.register(
            "projection_events_skipped",
            "Events not applied because they had been applied before (redelivered or replayed)",
            metrics.skipped.clone(),
        );
    }

    fn cached(&self) -> Option<String> {
        svc_kit::sync::lock(&self.generation).clone()
    }

    fn remember(&self, generation: Option<String>) {
        *svc_kit::sync::lock(&self.generation) = generation;
    }

    /// Applies one event: `Poison` if it can never be applied, `Retry` if
    /// Redis kept failing.
    pub(crate) async fn handle(&self, event: EventEnvelope) -> Result<(), Failure> {
        let projection = match domain::interpret(&event) {
            Ok(Some(projection)) => projection,
            Ok(None) => return Ok(()),
            Err(error) => return Err(Failure::Poison(error.into())),
        };
        // ConnectionManager fails the command that meets a broken connection
        // and reconnects behind it, so a Redis restart fails at least one
        // apply. Applying is idempotent: retry here for a while rather than
        // spend the consumer's few redeliveries (and dead-letter the event)
        // on a blip.
        let deadline = tokio::time::Instant::now() + self.retry_budget;
        let mut retries = APPLY_BACKOFF.retries();
        loop {
            let error = match self.apply(&projection).await {
                Ok(applied) => {
                    self.metrics.applied(&event, applied);
                    return Ok(());
                }
                Err(error) => error,
            };
            if !is_transient(&error) {
                return Err(Failure::of_kind(
                    FailureKind::Permanent,
                    anyhow::Error::new(error).context("apply to Redis"),
                ));
            }
            let delay = retries.next_delay();
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(Failure::of_kind(
                    FailureKind::Transient,
                    anyhow::Error::new(error).context("apply to Redis"),
                ));
            }
            tracing::warn!(error = %error, retry_in = ?delay, "cannot apply an event to Redis");
            tokio::time::sleep(delay).await;
        }
    }

    /// Applies to the active generation: `Fresh` or `Duplicate`.
    async fn apply(&self, projection: &Projection) -> redis::RedisResult<Applied> {
        // A rebuild switching generations twice while one event is applied is
        // all that can exhaust these attempts.
        for _ in 0..3 {
            let generation = match self.cached() {
                Some(generation) => generation,
                None => {
                    let generation = self.store.ensure_active_generation().await?;
                    self.remember(Some(generation.clone()));
                    generation
                }
            };
            let target = Target {
                generation: &generation,
                require_active: true,
                notify: true,
            };
            match self.store.apply(target, projection).await? {
                applied @ (Applied::Fresh | Applied::Duplicate) => return Ok(applied),
                Applied::StaleGeneration => self.remember(None),
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "the active generation kept changing",
        )))
    }

    /// Applies every event `consumer` delivers, until dropped.
    pub(crate) async fn run(self: Arc<Self>, consumer: Consumer) {
        consumer
            .run(move |event| {
                let projector = self.clone();
                async move { projector.handle(event).await }
            })
            .await;
    }
}

/// The projector's durable consumer of every domain event (described only:
/// nothing is created on the server until it runs).
pub(crate) fn consumer(js: jetstream::Context, nats: NatsConfig, config: ConsumerConfig) -> Consumer {
    let filter = nats.subjects().all_events();
    Consumer::new(js, nats, PROJECTOR_DURABLE, filter, config)
}

#[cfg(test)]
mod tests {
    use outbox::envelope;
    use redis::AsyncCommands as _;
    use svc_kit::{
        clock::to_proto as ts,
        metrics::{Registry, encode},
    };
    use taxi_proto::{
        call::v1::{Call, CallStatus},
        common::v1::TaxiType,
        events::v1::{CallAccepted, CallRequested, DriverOnline, event_envelope::Payload},
    };
    use uuid::Uuid;

    use super::*;
    use crate::config::RedisConfig;

    fn call(call_id: Uuid, status: CallStatus, version: i64) -> Call {
        Call {
            call_id: call_id.to_string(),
            customer_id: Uuid::new_v4().to_string(),
            taxi_type: TaxiType::Normal.into(),
            status: status.into(),
            version,
            requested_at: Some(ts(svc_kit::clock::now())),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn applied_events_count_by_type_with_their_lag_and_a_redelivery_is_skipped() {
        let config = RedisConfig {
            key_prefix: format!("test:{}", Uuid::new_v4()),
            ..RedisConfig::default()
        };
        let (store, _client) = Store::connect(&config).await.expect("Redis at 127.0.0.1:6379");
        let projector = Projector::new(store.clone(), Duration::from_secs(2));
        let mut registry = Registry::default();
        projector.register_metrics(&mut registry);

        // Events committed 200 ms ago, so the lag is at least that.
        let committed = svc_kit::clock::now() - chrono::Duration::milliseconds(200);
        let id = Uuid::new_v4();
        let requested = envelope(
            id,
            1,
            committed,
            Payload::CallRequested(CallRequested {
                call: Some(call(id, CallStatus::Requested, 1)),
            }),
        );
        let mut accepted_call = call(id, CallStatus::Accepted, 2);
        accepted_call.accepted_at = Some(ts(committed));
        let accepted = envelope(
            id,
            2,
            committed,
            Payload::CallAccepted(CallAccepted {
                call: Some(accepted_call),
            }),
        );
        let ignored = envelope(
            Uuid::new_v4(),
            1,
            committed,
            Payload::DriverOnline(DriverOnline::default()),
        );
        for event in [requested.clone(), accepted, requested, ignored] {
            projector.handle(event).await.expect("applies");
        }

        let text = encode(&registry);
        for line in [
            "projection_events_applied_total{event_type=\"call.requested\"} 1\n",
            "projection_events_applied_total{event_type=\"call.accepted\"} 1\n",
            "projection_events_applied_total{event_type=\"call.canceled\"} 0\n",
            "projection_events_skipped_total 1\n",
            "projection_lag_seconds_count 2\n",
            "projection_lag_seconds_bucket{le=\"0.1\"} 0\n",
            "projection_lag_seconds_bucket{le=\"30.0\"} 2\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(!text.contains("driver.online"), "{text}");

        let mut conn = store.conn();
        let keys: Vec<String> = conn.keys(format!("{}:*", config.key_prefix)).await.expect("keys");
        if !keys.is_empty() {
            let () = conn.del(keys).await.expect("cleanup");
        }
    }
}
