//! Making and withdrawing offers from call events, and deleting expired ones.
//!
//! A CallRequested opens the call's round (offers to the nearest available
//! drivers), then notifies the drivers not yet notified; a closing event
//! closes the round, withdraws its offers, then notifies. Either step is
//! idempotent, so a redelivered event only finishes what was left undone.

use std::time::Duration;

use chrono::TimeDelta;
use eventbus::consumer::Failure;
use svc_kit::clock;
use taxi_proto::events::v1::EventEnvelope;
use uuid::Uuid;

use super::{convert, notify::Notifications};
use crate::{
    domain::{CallEvent, OfferPolicy, RequestedCall},
    error::DispatchError,
    grpc::convert as wire,
    store::Store,
};

/// Durable name of the consumer of call events.
pub const OFFERS_DURABLE: &str = "dispatch-offers";

/// Handles call events for offers.
#[derive(Debug, Clone)]
pub struct OfferDispatcher {
    store: Store,
    notifications: Notifications,
    policy: OfferPolicy,
    round_retention: TimeDelta,
}

/// A store failure: retried if transient, dead-lettered at once otherwise.
fn failure(error: DispatchError) -> Failure {
    Failure::of_kind(error.kind(), anyhow::Error::new(error))
}

impl OfferDispatcher {
    /// Offers calls under `policy`; requests older than `round_retention`
    /// are stale (their round may have been forgotten) and ignored.
    pub fn new(
        store: Store,
        notifications: Notifications,
        policy: OfferPolicy,
        round_retention: TimeDelta,
    ) -> Self {
        Self {
            store,
            notifications,
            policy,
            round_retention,
        }
    }

    /// Applies one call event. Malformed events are poison; failures of the
    /// database or NATS are worth a retry.
    pub async fn handle(&self, envelope: EventEnvelope) -> Result<(), Failure> {
        match convert::call_event(&envelope).map_err(Failure::Poison)? {
            CallEvent::Requested(call) => {
                let now = clock::now();
                let stale = convert::occurred_at(&envelope).is_some_and(|at| at < now - self.round_retention);
                if stale {
                    tracing::info!(call_id = %call.call_id, "stale call request ignored");
                    return Ok(());
                }
                self.offer(&call).await
            }
            CallEvent::Closed { call_id, taken_by } => self.withdraw(call_id, taken_by).await,
            CallEvent::Ignored => Ok(()),
        }
    }

    #[tracing::instrument(skip_all, fields(call_id = %call.call_id))]
    async fn offer(&self, call: &RequestedCall) -> Result<(), Failure> {
        let now = clock::now();
        let round = self
            .store
            .open_round(call, &self.policy, now)
            .await
            .map_err(failure)?;
        let offers = self
            .store
            .unnotified_offers(call.call_id, now)
            .await
            .map_err(failure)?;
        if !offers.is_empty() {
            for offer in &offers {
                self.notifications
                    .publish(offer.driver_id, &wire::offer_made(offer))
                    .await
                    .map_err(Failure::Retry)?;
            }
            self.notifications.flush().await.map_err(Failure::Retry)?;
            self.store
                .mark_notified(&offers, clock::now())
                .await
                .map_err(failure)?;
        }
        tracing::info!(?round, notified = offers.len(), "call offered");
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(%call_id))]
    async fn withdraw(&self, call_id: Uuid, taken_by: Option<Uuid>) -> Result<(), Failure> {
        self.store
            .close_round(call_id, taken_by, clock::now())
            .await
            .map_err(failure)?;
        let withdrawals = self
            .store
            .pending_withdrawals(call_id, taken_by)
            .await
            .map_err(failure)?;
        if !withdrawals.is_empty() {
            for withdrawal in &withdrawals {
                self.notifications
                    .publish(withdrawal.driver_id, &wire::offer_withdrawn(withdrawal.call_id))
                    .await
                    .map_err(Failure::Retry)?;
            }
            self.notifications.flush().await.map_err(Failure::Retry)?;
            self.store.forget_withdrawn(&withdrawals).await.map_err(failure)?;
        }
        tracing::info!(withdrawn = withdrawals.len(), "call closed for offers");
        Ok(())
    }
}

/// Every `interval`, deletes expired offers (streams withdraw them on their
/// own at expiry) and rounds older than `round_retention`. Runs until dropped.
pub async fn clean_up(store: Store, interval: Duration, round_retention: TimeDelta) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = clock::now();
        match store.purge_offers(now, now - round_retention).await {
            Ok((0, 0)) => {}
            Ok((offers, rounds)) => tracing::info!(offers, rounds, "expired offers deleted"),
            Err(error) => tracing::warn!(%error, "cannot delete expired offers"),
        }
    }
}
