//! The sweeper: runs once at start-up (recovery) and then every interval. It
//! expires calls nobody accepted, starts the next round of offers of calls
//! whose round ended unaccepted, finishes or undoes accepts that a crashed
//! process left half-way, and retries effects owed to other services once
//! their back-off is over, taking a lease on each so that only one replica
//! retries them at a time.
//!
//! [`Calls::sweep`] is one round; [`run`] repeats it forever.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt as _};

use super::Calls;
use crate::{
    domain::{Applied, Call, CallStatus, CancelReason},
    events,
};

/// How many rows one sweep takes of each kind.
const SWEEP_BATCH: i64 = 100;

/// Calls one sweep works on at once: a backend that hangs until its deadline
/// then holds up a few calls, not the whole round.
const SWEEP_CONCURRENCY: usize = 4;

/// Sweeps every `interval`, the first round at once; stops only when dropped.
/// A failed round is logged and the next one tries again.
pub async fn run(calls: Arc<Calls>, interval: Duration) {
    loop {
        if let Err(error) = calls.sweep().await {
            tracing::warn!(error = ?error, "sweep failed; retrying next round");
        }
        tokio::time::sleep(interval).await;
    }
}

impl Calls {
    /// One round of the sweeper.
    pub async fn sweep(&self) -> anyhow::Result<()> {
        let now = svc_kit::clock::now();
        self.expire(now).await?;
        self.next_rounds(now).await?;
        // How long a saga step may run before it counts as crashed.
        let stale_after = chrono::Duration::milliseconds(i64::try_from(self.saga.stale_after_ms)?);
        let stale = now - stale_after;
        let claims = self.store.claims_older_than(stale, SWEEP_BATCH).await?;
        stream::iter(claims)
            .for_each_concurrent(SWEEP_CONCURRENCY, |call| async move {
                match self.store.take_claim_lease(&call, svc_kit::clock::now()).await {
                    Ok(true) => {
                        self.metrics.stale_claim_recovered();
                        self.recover_claim(call).await;
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(call_id = %call.id, error = ?error, "cannot lease the claim")
                    }
                }
            })
            .await;
        // A lease lasts as long as a saga step may run, so a slow attempt is
        // not joined by another replica's.
        let due = self.store.effects_due(now, stale, SWEEP_BATCH).await?;
        stream::iter(due)
            .for_each_concurrent(SWEEP_CONCURRENCY, |call_id| async move {
                let now = svc_kit::clock::now();
                match self
                    .store
                    .take_effects_lease(call_id, now, stale, now + stale_after)
                    .await
                {
                    Ok(Some(leased)) => {
                        // A failure is logged and rescheduled by the attempt.
                        let _ = self
                            .attempt_effects(call_id, leased.effects, leased.attempts)
                            .await;
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%call_id, error = ?error, "cannot lease the owed effects"),
                }
            })
            .await;
        // Counted after this round's attempts, in the table, so that every
        // replica reports the same, true backlog.
        self.metrics.effects_owed(self.store.effects_owed().await?);
        Ok(())
    }

    async fn expire(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let cutoff = now - chrono::Duration::milliseconds(i64::try_from(self.saga.expire_after_ms)?);
        let mut tx = self.store.begin().await?;
        let calls = self.store.expire_candidates(&mut tx, cutoff, SWEEP_BATCH).await?;
        let mut expired = Vec::new();
        for mut call in calls {
            if call.cancel(CancelReason::Expired, 0, now)? == Applied::Changed {
                self.store.update(&mut tx, &call).await?;
                outbox::append(&mut tx, &events::transition(&call, now)).await?;
                tracing::info!(call_id = %call.id, "call expired");
                expired.push(call);
            }
        }
        tx.commit().await?;
        for call in &expired {
            self.metrics.committed(call);
        }
        Ok(())
    }

    /// Starts the next round of offers of every call whose round ended
    /// unaccepted; dispatch makes the offers when it reads the event.
    async fn next_rounds(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let search = self.saga.search();
        let mut tx = self.store.begin().await?;
        let calls = self.store.rounds_due(&mut tx, now, SWEEP_BATCH).await?;
        for mut call in calls {
            if call.next_round(search, now) == Applied::Changed {
                self.store.update(&mut tx, &call).await?;
                outbox::append(&mut tx, &events::transition(&call, now)).await?;
                tracing::info!(call_id = %call.id, round = call.offer_round, "call offered again");
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Finishes an accept left half-way: forward while the call still waits
    /// for a driver, otherwise undo what it may have done. An accept still
    /// unfinished well after the call would have expired (a backend it needs
    /// stays down) is given up: the call expires.
    async fn recover_claim(&self, call: Call) {
        let Some(claim) = call.claim else { return };
        let (call_id, driver) = (call.id, claim.driver_id);
        tracing::info!(%call_id, %driver, "recovering an unfinished accept");
        let give_up_after = chrono::Duration::milliseconds(
            i64::try_from(self.saga.expire_after_ms + self.saga.stale_after_ms).unwrap_or(i64::MAX),
        );
        let overdue = svc_kit::clock::now() - call.requested_at > give_up_after;
        let outcome = if call.status == CallStatus::Requested && overdue {
            tracing::warn!(%call_id, %driver, "an accept could not finish in time; the call expires");
            self.transition(call_id, |call, now| Ok(call.give_up_accept(driver, now)?))
                .await
                .map(drop)
        } else if call.status == CallStatus::Requested {
            self.drive_accept(call, driver).await.map(drop)
        } else {
            match self.abandon_claim(call_id, driver).await {
                Ok(call) => {
                    self.perform_effects(&call).await;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        if let Err(error) = outcome {
            tracing::info!(%call_id, error = %error, "accept recovery ended");
        }
    }
}
