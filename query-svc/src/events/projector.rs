//! The projector: a durable JetStream consumer of every domain event that
//! applies each one to the active generation of the read models.
//!
//! Exactly-once in effect: the consumer delivers at least once and possibly
//! out of order; the store's apply script drops an event it has applied
//! before and never lets an older version replace a newer view.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream;
use eventbus::{
    NatsConfig,
    consumer::{Consumer, ConsumerConfig, Failure},
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

/// Applies events to whatever generation is active.
pub(crate) struct Projector {
    store: Store,
    /// The active generation as last seen. The apply script re-checks it, so a
    /// stale value costs a retry, never a misplaced write.
    generation: Mutex<Option<String>>,
    /// How long one delivery keeps retrying Redis before handing the event
    /// back for redelivery.
    retry_budget: Duration,
}

impl Projector {
    pub(crate) fn new(store: Store, retry_budget: Duration) -> Self {
        Self {
            store,
            generation: Mutex::new(None),
            retry_budget,
        }
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
                Ok(()) => return Ok(()),
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

    async fn apply(&self, projection: &Projection) -> redis::RedisResult<()> {
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
                Applied::Fresh | Applied::Duplicate => return Ok(()),
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
