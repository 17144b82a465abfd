//! The `settlements` table: each SettleFinal under its idempotency key, with
//! the entry it made (none when nothing was owed either way).

use anyhow::Context as _;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Store;

/// A SettleFinal as recorded under its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SettlementRecord {
    pub call_id: Uuid,
    pub final_amount_krw: i64,
    /// The charge or refund it made; none when nothing was owed.
    pub entry_id: Option<Uuid>,
}

impl Store {
    /// The settlement recorded under `idempotency_key`, if any.
    pub async fn settlement_by_key(
        &self,
        tx: &mut PgConnection,
        idempotency_key: &str,
    ) -> anyhow::Result<Option<SettlementRecord>> {
        sqlx::query_as(
            "SELECT call_id, final_amount_krw, entry_id FROM settlements WHERE idempotency_key = $1",
        )
        .bind(idempotency_key)
        .fetch_optional(tx)
        .await
        .context("cannot read a settlement")
    }

    /// Records a settlement under its idempotency key.
    pub async fn insert_settlement(
        &self,
        tx: &mut PgConnection,
        idempotency_key: &str,
        settlement: &SettlementRecord,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO settlements (idempotency_key, call_id, final_amount_krw, entry_id)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(idempotency_key)
        .bind(settlement.call_id)
        .bind(settlement.final_amount_krw)
        .bind(settlement.entry_id)
        .execute(tx)
        .await
        .context("cannot insert a settlement")?;
        Ok(())
    }
}
