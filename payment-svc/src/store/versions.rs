//! The `call_versions` table: the version of each call's payment aggregate,
//! which numbers its events in the outbox.

use anyhow::Context as _;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Store;

impl Store {
    /// Bumps and returns the version of the call's payment aggregate (1 for its
    /// first event). The row lock also orders concurrent writers.
    pub async fn next_version(&self, tx: &mut PgConnection, call_id: Uuid) -> anyhow::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO call_versions (call_id, version) VALUES ($1, 1)
             ON CONFLICT (call_id) DO UPDATE SET version = call_versions.version + 1
             RETURNING version",
        )
        .bind(call_id)
        .fetch_one(tx)
        .await
        .context("cannot bump the call's payment version")
    }
}
