//! The sweeper's reads and leases on calls: REQUESTED calls to expire or to
//! offer in their next round, and accepts left half-way. A lease is a conditional `UPDATE`, so that of
//! several replicas exactly one wins.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Store, calls::to_calls};
use crate::domain::Call;

impl Store {
    /// Locks REQUESTED calls nobody is accepting that were requested before
    /// `cutoff`, skipping rows another replica holds.
    pub async fn expire_candidates(
        &self,
        conn: &mut PgConnection,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> anyhow::Result<Vec<Call>> {
        let rows = sqlx::query(
            "SELECT * FROM calls
             WHERE status = 'REQUESTED' AND claim_driver_id IS NULL AND requested_at < $1
             ORDER BY requested_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(conn)
        .await
        .context("find expired calls")?;
        to_calls(rows)
    }

    /// Locks REQUESTED calls nobody is accepting whose round of offers ended
    /// by `now`, before they expire, skipping rows another replica holds.
    pub async fn rounds_due(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
        limit: i64,
    ) -> anyhow::Result<Vec<Call>> {
        let rows = sqlx::query(
            "SELECT * FROM calls
             WHERE status = 'REQUESTED' AND claim_driver_id IS NULL AND round_expires_at <= $1
               AND expires_at > $1
             ORDER BY round_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(conn)
        .await
        .context("find rounds of offers that ended")?;
        to_calls(rows)
    }

    /// Calls whose accept has been in progress since before `cutoff`.
    pub async fn claims_older_than(&self, cutoff: DateTime<Utc>, limit: i64) -> anyhow::Result<Vec<Call>> {
        let rows = sqlx::query(
            "SELECT * FROM calls WHERE claim_driver_id IS NOT NULL AND claim_since < $1
             ORDER BY claim_since LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("find stale claims")?;
        to_calls(rows)
    }

    /// Renews a stale claim's timestamp so that one sweeper (of possibly several
    /// replicas) takes it over; false when someone else got there first.
    pub async fn take_claim_lease(&self, call: &Call, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let Some(claim) = call.claim else {
            return Ok(false);
        };
        let taken = sqlx::query(
            "UPDATE calls SET claim_since = $3 WHERE call_id = $1 AND claim_driver_id = $2 AND claim_since = $4",
        )
        .bind(call.id)
        .bind(claim.driver_id)
        .bind(now)
        .bind(claim.since)
        .execute(&self.pool)
        .await
        .context("take claim lease")?
        .rows_affected();
        Ok(taken == 1)
    }
}
