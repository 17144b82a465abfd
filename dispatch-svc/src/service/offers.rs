//! Making and withdrawing offers, and deleting expired ones.
//!
//! A CallRequested opens the call's first round (offers to the nearest
//! available drivers) and each CallReoffered its next (to the next nearest,
//! farther out), then notifies the drivers not yet notified; a driver who
//! comes online or moves near a call in an open round is offered it too; a closing event
//! closes the round, withdraws its offers, then notifies. Offers are published
//! only after they commit and marked notified (or, once withdrawn, deleted)
//! only after the publish, so a crash in between is finished by the
//! redelivered event: either step is idempotent, notifications are at least
//! once, and streams drop duplicates.

use std::time::Duration;

use chrono::{DateTime, Utc};
use svc_kit::clock;
use uuid::Uuid;

use super::Dispatch;
use crate::{
    domain::{Offer, RequestedCall},
    error::DispatchError,
};

/// What handling a CallRequested did to the call's round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// The round opened with this many offers (0 when no driver was near).
    Opened(usize),
    /// The call was seen before (a redelivery) or has closed: nothing new.
    Seen,
}

impl Dispatch {
    /// Offers a requested call to the nearest available drivers and tells
    /// them. A request that happened (`requested_at`) longer ago than the
    /// round retention is stale, since its round may have been forgotten, and
    /// is ignored; so is a call seen before, or already closed.
    pub async fn offer_call(
        &self,
        call: &RequestedCall,
        requested_at: Option<DateTime<Utc>>,
    ) -> Result<(), DispatchError> {
        let now = clock::now();
        if requested_at.is_some_and(|at| at < now - self.settings.round_retention) {
            tracing::info!(call_id = %call.call_id, "stale call request ignored");
            return Ok(());
        }
        self.open_round(call).await
    }

    #[tracing::instrument(skip_all, fields(call_id = %call.call_id, round = call.round))]
    async fn open_round(&self, call: &RequestedCall) -> Result<(), DispatchError> {
        let now = clock::now();
        let round = self.make_offers(call, now).await?;
        let offers = self.store.unnotified_offers(call.call_id, now).await?;
        self.notify_offers(&offers).await?;
        tracing::info!(?round, notified = offers.len(), "call offered");
        Ok(())
    }

    /// Tells the drivers of `offers` (committed, not yet notified) and marks
    /// them notified.
    async fn notify_offers(&self, offers: &[Offer]) -> Result<(), DispatchError> {
        if offers.is_empty() {
            return Ok(());
        }
        for offer in offers {
            self.notifications
                .offer(offer)
                .await
                .map_err(DispatchError::notifications_unavailable)?;
        }
        self.notifications
            .flush()
            .await
            .map_err(DispatchError::notifications_unavailable)?;
        self.store.mark_notified(offers, clock::now()).await
    }

    /// Writes the call's round and its offers in one transaction, unless the
    /// call is in that round already (or closed), or the round is over. The
    /// round goes to the nearest drivers never offered the call; when there
    /// is none, to the nearest who were (they may have missed it).
    async fn make_offers(&self, call: &RequestedCall, now: DateTime<Utc>) -> Result<Round, DispatchError> {
        let policy = &self.settings.offers;
        let round_end = policy.round_end(call, now);
        if round_end <= now {
            // A round that ended while dispatch was behind; the next one follows.
            return Ok(Round::Seen);
        }
        let area = policy.area(call);
        let mut tx = self.store.begin().await?;
        if !self
            .store
            .open_round(&mut tx, call, area.radius_m, round_end, now)
            .await?
        {
            return Ok(Round::Seen);
        }
        let max_age = self.settings.location_max_age;
        let mut nearest = self
            .store
            .nearest_available(
                &mut tx,
                call.taxi_type,
                area,
                max_age,
                policy.fanout,
                Some(call.call_id),
            )
            .await?;
        if nearest.is_empty() && call.round > 1 {
            nearest = self
                .store
                .nearest_available(&mut tx, call.taxi_type, area, max_age, policy.fanout, None)
                .await?;
        }
        for &(driver_id, distance_m) in &nearest {
            let offer = policy.offer(call, driver_id, distance_m, now);
            self.store.insert_offer(&mut tx, &offer, call.round).await?;
        }
        tx.commit().await?;
        Ok(Round::Opened(nearest.len()))
    }

    /// Offers the driver every call waiting in an open round within its reach
    /// that they were never offered: called when they come online or move.
    /// Best effort: a failure is logged, as the driver's own request
    /// succeeded and the next move (or a stream's resync) catches up.
    pub(super) async fn offer_waiting_calls(&self, driver_id: Uuid) {
        if let Err(error) = self.try_offer_waiting_calls(driver_id).await {
            tracing::warn!(%driver_id, %error, "cannot offer waiting calls to a driver");
        }
    }

    async fn try_offer_waiting_calls(&self, driver_id: Uuid) -> Result<(), DispatchError> {
        let now = clock::now();
        let waiting = self
            .store
            .waiting_calls_near(driver_id, self.settings.location_max_age, now)
            .await?;
        if waiting.is_empty() {
            return Ok(());
        }
        let policy = &self.settings.offers;
        let mut offers = Vec::with_capacity(waiting.len());
        let mut tx = self.store.begin().await?;
        for (call, distance_m) in &waiting {
            let offer = policy.offer(call, driver_id, *distance_m, now);
            self.store.insert_offer(&mut tx, &offer, call.round).await?;
            offers.push(offer);
        }
        tx.commit().await?;
        self.notify_offers(&offers).await?;
        tracing::info!(%driver_id, offered = offers.len(), "waiting calls offered to a driver nearby");
        Ok(())
    }

    /// Closes the call's round for good (a later CallRequested offers
    /// nothing), withdraws its offers and tells their drivers. When
    /// `taken_by` accepted the call and is still on it, their offers of other
    /// calls are withdrawn too.
    #[tracing::instrument(skip_all, fields(%call_id))]
    pub async fn close_call(&self, call_id: Uuid, taken_by: Option<Uuid>) -> Result<(), DispatchError> {
        let now = clock::now();
        let mut tx = self.store.begin().await?;
        self.store.close_round(&mut tx, call_id, now).await?;
        self.store
            .withdraw_offers(&mut tx, call_id, taken_by, now)
            .await?;
        tx.commit().await?;

        let withdrawals = self.store.pending_withdrawals(call_id, taken_by).await?;
        if !withdrawals.is_empty() {
            for withdrawal in &withdrawals {
                self.notifications
                    .withdrawal(withdrawal)
                    .await
                    .map_err(DispatchError::notifications_unavailable)?;
            }
            self.notifications
                .flush()
                .await
                .map_err(DispatchError::notifications_unavailable)?;
            self.store.forget_withdrawn(&withdrawals).await?;
        }
        tracing::info!(withdrawn = withdrawals.len(), "call closed for offers");
        Ok(())
    }

    /// One cleanup round: deletes expired offers (streams withdraw them on
    /// their own at expiry) and rounds older than the round retention.
    /// Returns how many of each went.
    pub async fn clean_up_offers(&self) -> Result<(u64, u64), DispatchError> {
        let now = clock::now();
        self.store
            .purge_offers(now, now - self.settings.round_retention)
            .await
    }
}

/// The loop that runs [`Dispatch::clean_up_offers`] every `interval`.
#[derive(Debug, Clone)]
pub struct OfferCleanup {
    dispatch: Dispatch,
    interval: Duration,
}

impl OfferCleanup {
    /// Cleans up after `dispatch` every `interval`, starting at once.
    pub fn new(dispatch: Dispatch, interval: Duration) -> Self {
        Self { dispatch, interval }
    }

    /// Runs until dropped. A failed round is logged and left to the next.
    pub async fn run(self) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.dispatch.clean_up_offers().await {
                Ok((0, 0)) => {}
                Ok((offers, rounds)) => tracing::info!(offers, rounds, "expired offers deleted"),
                Err(error) => tracing::warn!(%error, "cannot delete expired offers"),
            }
        }
    }
}
