//! Advisory locks that serialize the ledger's writers for the rest of a
//! transaction: one per call, one per idempotency key.

use anyhow::Context as _;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Store;

impl Store {
    /// Serializes every money movement of `call_id` until the transaction ends,
    /// so totals checked in it stay true until it commits.
    pub async fn lock_call(&self, tx: &mut PgConnection, call_id: Uuid) -> anyhow::Result<()> {
        // Namespaced so it never collides with another service's locks on the
        // same call id in a shared database.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('payment.call:' || $1::text, 0))")
            .bind(call_id)
            .execute(tx)
            .await
            .context("cannot lock the call")?;
        Ok(())
    }

    /// Serializes the use of one idempotency key until the transaction ends
    /// (keys are unique across calls, and two calls do not share a call lock).
    pub async fn lock_key(&self, tx: &mut PgConnection, idempotency_key: &str) -> anyhow::Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('payment.key:' || $1, 0))")
            .bind(idempotency_key)
            .execute(tx)
            .await
            .context("cannot lock the idempotency key")?;
        Ok(())
    }
}
