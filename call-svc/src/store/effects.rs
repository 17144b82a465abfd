//! The effects a call owes other services and their retry schedule: which
//! are due, the lease one sweeper takes on them, the next attempt's time, and
//! forgetting those done. All conditional `UPDATE`s, so that of several
//! replicas exactly one wins and a newer transition's effects are never
//! overwritten by an older attempt.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Store;
use crate::domain::Effects;

/// A sweeper's exclusive right to attempt a call's owed effects once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectsLease {
    pub effects: Effects,
    /// The sweeper's attempts so far, this one included.
    pub attempts: i32,
}

impl Store {
    /// Calls whose owed effects the sweeper may attempt now: their back-off (or an
    /// earlier sweeper's lease) is over, or no attempt has failed yet but they
    /// were recorded before `stale` (the request owing the first attempt died).
    pub async fn effects_due(
        &self,
        now: DateTime<Utc>,
        stale: DateTime<Utc>,
        limit: i64,
    ) -> anyhow::Result<Vec<Uuid>> {
        sqlx::query_scalar(
            "SELECT call_id FROM calls
             WHERE (effect_settle_krw IS NOT NULL OR effect_release_driver IS NOT NULL)
               AND (effect_next_at <= $1 OR (effect_next_at IS NULL AND updated_at < $2))
             ORDER BY effect_next_at NULLS FIRST LIMIT $3",
        )
        .bind(now)
        .bind(stale)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("find owed effects")
    }

    /// How many effects committed calls still owe (a call owing both a
    /// settlement and a release counts twice), due or not.
    pub async fn effects_owed(&self) -> anyhow::Result<i64> {
        sqlx::query_scalar(
            "SELECT count(effect_settle_krw) + count(effect_release_driver) FROM calls
             WHERE effect_settle_krw IS NOT NULL OR effect_release_driver IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .context("count owed effects")
    }

    /// Takes the lease on a call's owed effects if they are still due (see
    /// [`Store::effects_due`]), counting the attempt, so that one sweeper (of possibly
    /// several replicas) attempts them until `until`; `None` when they are not
    /// due any more (another sweeper took them, or they were done).
    pub async fn take_effects_lease(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        stale: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> anyhow::Result<Option<EffectsLease>> {
        let leased: Option<(Option<i64>, Option<Uuid>, i32)> = sqlx::query_as(
            "UPDATE calls SET effect_attempts = effect_attempts + 1, effect_next_at = $4
             WHERE call_id = $1
               AND (effect_settle_krw IS NOT NULL OR effect_release_driver IS NOT NULL)
               AND (effect_next_at <= $2 OR (effect_next_at IS NULL AND updated_at < $3))
             RETURNING effect_settle_krw, effect_release_driver, effect_attempts",
        )
        .bind(id)
        .bind(now)
        .bind(stale)
        .bind(until)
        .fetch_optional(&self.pool)
        .await
        .context("take effects lease")?;
        Ok(leased.map(|(settle_krw, release_driver, attempts)| EffectsLease {
            effects: Effects {
                settle_krw,
                release_driver,
            },
            attempts,
        }))
    }

    /// After a failed attempt, sets when the effects are next due, unless the
    /// attempt was overtaken: a sweeper leased them since (`attempts` moved on) or
    /// a newer transition replaced them.
    pub async fn reschedule_effects(
        &self,
        id: Uuid,
        effects: Effects,
        attempts: i32,
        next_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE calls SET effect_next_at = $5
             WHERE call_id = $1
               AND effect_settle_krw IS NOT DISTINCT FROM $2
               AND effect_release_driver IS NOT DISTINCT FROM $3
               AND effect_attempts = $4",
        )
        .bind(id)
        .bind(effects.settle_krw)
        .bind(effects.release_driver)
        .bind(attempts)
        .bind(next_at)
        .execute(&self.pool)
        .await
        .context("reschedule effects")?;
        Ok(())
    }

    /// Forgets the effects in `done` once performed, each unless a newer
    /// transition replaced it; once nothing is owed, the retry schedule resets.
    pub async fn clear_done_effects(&self, id: Uuid, done: Effects) -> anyhow::Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE calls SET effect_settle_krw = NULLIF(effect_settle_krw, $2),
                 effect_release_driver = NULLIF(effect_release_driver, $3),
                 effect_attempts = CASE WHEN NULLIF(effect_settle_krw, $2) IS NULL
                     AND NULLIF(effect_release_driver, $3) IS NULL THEN 0 ELSE effect_attempts END,
                 effect_next_at = CASE WHEN NULLIF(effect_settle_krw, $2) IS NULL
                     AND NULLIF(effect_release_driver, $3) IS NULL THEN NULL ELSE effect_next_at END
             WHERE call_id = $1",
        )
        .bind(id)
        .bind(done.settle_krw)
        .bind(done.release_driver)
        .execute(&self.pool)
        .await
        .context("clear effects")?;
        Ok(())
    }
}
