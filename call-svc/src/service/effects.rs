//! The effects a committed transition owes other services (`SettleFinal`,
//! `ReleaseDriver`): attempted right after the commit, each on its own, and
//! on failure left to the sweeper, which retries them with exponential
//! back-off until they succeed (money must settle).

use chrono::{DateTime, Utc};
use taxi_proto::{
    dispatch::v1::ReleaseDriverRequest,
    payment::v1::{EntryKind, EntryStatus, SettleFinalRequest},
};
use tonic::Status;
use uuid::Uuid;

use super::{Calls, metrics::Effect};
use crate::{
    domain::{Applied, Call, Effects},
    error::CallError,
    events,
};

/// Retries of owed effects after which every further failure is logged as an
/// error: someone should look, though the retries go on (money must settle).
const EFFECTS_NEED_ATTENTION_AFTER: i32 = 10;

impl Calls {
    /// Performs the effects a committed transition owes, right after the
    /// commit, then forgets them. A failure is logged and left to the
    /// sweeper, which first retries after the base delay.
    pub(super) async fn perform_effects(&self, call: &Call) {
        if call.effects.is_empty() {
            return;
        }
        // A failure is logged and left to the sweeper by the attempt.
        let _ = self.attempt_effects(call.id, call.effects, 0).await;
    }

    /// Attempts `effects` after `attempts` retries by the sweeper (0: the
    /// attempt right after the commit); when it fails, schedules the next one
    /// and returns why it failed.
    pub(super) async fn attempt_effects(
        &self,
        call_id: Uuid,
        effects: Effects,
        attempts: i32,
    ) -> Option<Status> {
        let Err((owed, status)) = self.try_effects(call_id, effects).await else {
            return None;
        };
        let delay = self
            .effect_retry
            .jittered(u32::try_from(attempts).unwrap_or(0), jitter_seed(call_id));
        let now = svc_kit::clock::now();
        let next_at = chrono::Duration::from_std(delay)
            .ok()
            .and_then(|delay| now.checked_add_signed(delay))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if let Err(error) = self
            .store
            .reschedule_effects(call_id, owed, attempts, next_at)
            .await
        {
            // The effects stay due (or leased); a later sweep retries them.
            tracing::warn!(%call_id, error = ?error, "cannot reschedule the effects");
        }
        let (code, message) = (status.code(), status.message());
        if attempts >= EFFECTS_NEED_ATTENTION_AFTER {
            tracing::error!(%call_id, attempts, ?code, message, retry_in = ?delay, "owed effects keep failing and need attention");
        } else if attempts == 0 {
            tracing::warn!(%call_id, ?code, message, retry_in = ?delay, "effects deferred to the sweeper");
        } else {
            tracing::warn!(%call_id, attempts, ?code, message, retry_in = ?delay, "owed effects failed again");
        }
        Some(status)
    }

    /// Performs each owed effect on its own, side by side (a payment outage
    /// must not keep the driver on the call), and forgets the ones done.
    /// On failure, returns what is still owed and why.
    async fn try_effects(&self, call_id: Uuid, effects: Effects) -> Result<(), (Effects, Status)> {
        let settle = async {
            match effects.settle_krw {
                Some(amount) => self.settle(call_id, amount).await.map(|()| Some(amount)),
                None => Ok(None),
            }
        };
        let release = async {
            match effects.release_driver {
                Some(driver) => self.release(call_id, driver).await.map(|()| Some(driver)),
                None => Ok(None),
            }
        };
        let (settled, released) = tokio::join!(settle, release);
        if effects.settle_krw.is_some() {
            self.metrics.effect_attempted(Effect::Settle, settled.is_ok());
        }
        if effects.release_driver.is_some() {
            self.metrics.effect_attempted(Effect::Release, released.is_ok());
        }
        let done = Effects {
            settle_krw: settled.as_ref().ok().copied().flatten(),
            release_driver: released.as_ref().ok().copied().flatten(),
        };
        let owed = Effects {
            settle_krw: effects.settle_krw.filter(|_| settled.is_err()),
            release_driver: effects.release_driver.filter(|_| released.is_err()),
        };
        if let Err(error) = self.store.clear_done_effects(call_id, done).await {
            return Err((effects, Status::internal(format!("{error:#}"))));
        }
        match (settled, released) {
            (Ok(_), Ok(_)) => Ok(()),
            (Err(status), _) | (_, Err(status)) => Err((owed, status)),
        }
    }

    /// Brings what the customer paid for the call to `amount_krw`, and
    /// records on the call what the ledger answered. A declined charge is a
    /// failure: the call stays owed its settlement.
    async fn settle(&self, call_id: Uuid, amount_krw: i64) -> Result<(), Status> {
        let call = self
            .store
            .get(call_id)
            .await
            .map_err(|error| Status::unavailable(format!("cannot read the call: {error:#}")))?;
        // The advance's card under the call's own key, or the card the
        // customer gave for what is owed, under a key per card given.
        let (idempotency_key, payment_method) = match call {
            Some(call) if call.settle_attempt > 0 => (
                format!("{call_id}/settle/{}", call.settle_attempt),
                call.payment_method,
            ),
            _ => (format!("{call_id}/settle"), String::new()),
        };
        let settle = SettleFinalRequest {
            call_id: call_id.to_string(),
            final_amount_krw: amount_krw,
            idempotency_key,
            payment_method,
        };
        let settled = self
            .payment
            .clone()
            .settle_final(self.signer.service_request(settle))
            .await?
            .into_inner();
        let refunded = settled
            .entry
            .as_ref()
            .filter(|entry| entry.kind() == EntryKind::Refund && entry.status() == EntryStatus::Approved)
            .map(|entry| entry.amount_krw);
        self.record_settlement(call_id, amount_krw, settled.net_paid_krw, refunded)
            .await
            .map_err(|error| Status::unavailable(format!("cannot record the settlement: {error}")))?;
        match settled.entry {
            Some(entry) if entry.status() == EntryStatus::Declined => {
                Err(Status::failed_precondition(format!(
                    "the settlement to {amount_krw} KRW was declined ({} KRW unpaid)",
                    entry.amount_krw
                )))
            }
            _ => Ok(()),
        }
    }

    /// Records a settlement's answer on the call, with a CallSettled event
    /// when it changed what the customer paid, was refunded or owes.
    async fn record_settlement(
        &self,
        call_id: Uuid,
        target_krw: i64,
        net_paid_krw: i64,
        refunded_krw: Option<i64>,
    ) -> Result<(), CallError> {
        let now = svc_kit::clock::now();
        let mut tx = self.store.begin().await?;
        let Some(mut call) = self.store.lock(&mut tx, call_id).await? else {
            return Ok(());
        };
        if call.record_settlement(target_krw, net_paid_krw, refunded_krw) == Applied::Changed {
            self.store.update(&mut tx, &call).await?;
            outbox::append(&mut tx, &events::settled(&call, now)).await?;
            tx.commit().await?;
            tracing::info!(%call_id, paid = call.paid_krw, refunded = call.refunded_krw, owed = call.owed_krw, "payment recorded");
        }
        Ok(())
    }

    async fn release(&self, call_id: Uuid, driver: Uuid) -> Result<(), Status> {
        let release = ReleaseDriverRequest {
            call_id: call_id.to_string(),
            driver_id: driver.to_string(),
        };
        self.dispatch
            .clone()
            .release_driver(self.signer.service_request(release))
            .await?;
        Ok(())
    }
}

/// Spreads the retries of different calls' effects, so that calls that
/// failed together (a backend was down) are not all retried in the same
/// round (see [`svc_kit::backoff::Backoff::jittered`]).
fn jitter_seed(call_id: Uuid) -> u64 {
    let (high, low) = call_id.as_u64_pair();
    high ^ low
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, time::Duration};

    use svc_kit::backoff::Backoff;

    use super::*;

    #[test]
    fn calls_that_failed_together_are_retried_at_different_times() {
        let policy = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let delays: HashSet<Duration> = (0..50)
            .map(|_| policy.jittered(4, jitter_seed(Uuid::new_v4())))
            .collect();
        assert!(delays.len() > 25, "only {} distinct delays", delays.len());
    }
}
