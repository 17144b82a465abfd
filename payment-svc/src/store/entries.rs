//! The `entries` table: the ledger's charges and refunds, each PENDING until
//! the provider answers and then APPROVED or DECLINED.

use anyhow::{Context as _, anyhow};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::Store;
use crate::domain::{Command, Entry, EntryKind, EntryStatus, Ledger};

#[derive(sqlx::FromRow)]
struct EntryRow {
    entry_id: Uuid,
    call_id: Uuid,
    customer_id: Uuid,
    kind: String,
    status: String,
    amount_krw: i64,
    payment_method: String,
    idempotency_key: String,
    provider_reference: Option<String>,
    command: String,
    requested_amount_krw: i64,
    reason: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<EntryRow> for Entry {
    type Error = anyhow::Error;

    fn try_from(row: EntryRow) -> anyhow::Result<Self> {
        Ok(Self {
            entry_id: row.entry_id,
            call_id: row.call_id,
            customer_id: row.customer_id,
            kind: EntryKind::parse(&row.kind).ok_or_else(|| anyhow!("unknown entry kind {:?}", row.kind))?,
            status: EntryStatus::parse(&row.status)
                .ok_or_else(|| anyhow!("unknown entry status {:?}", row.status))?,
            amount_krw: row.amount_krw,
            payment_method: row.payment_method,
            idempotency_key: row.idempotency_key,
            provider_reference: row.provider_reference,
            command: Command::parse(&row.command)
                .ok_or_else(|| anyhow!("unknown command {:?}", row.command))?,
            requested_amount_krw: row.requested_amount_krw,
            reason: row.reason,
            created_at: row.created_at,
        })
    }
}

/// An entry about to be written, PENDING until the provider answers.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub call_id: Uuid,
    pub customer_id: Uuid,
    pub kind: EntryKind,
    pub amount_krw: i64,
    pub payment_method: &'a str,
    pub idempotency_key: &'a str,
    pub command: Command,
    pub requested_amount_krw: i64,
    pub reason: &'a str,
}

impl Store {
    /// The entry created under `idempotency_key`, if any.
    pub async fn entry_by_key(
        &self,
        tx: &mut PgConnection,
        idempotency_key: &str,
    ) -> anyhow::Result<Option<Entry>> {
        let row: Option<EntryRow> = sqlx::query_as("SELECT * FROM entries WHERE idempotency_key = $1")
            .bind(idempotency_key)
            .fetch_optional(tx)
            .await
            .context("cannot read an entry by key")?;
        row.map(Entry::try_from).transpose()
    }

    /// Writes a PENDING entry.
    pub async fn insert_entry(&self, tx: &mut PgConnection, new: &NewEntry<'_>) -> anyhow::Result<Entry> {
        let row: EntryRow = sqlx::query_as(
            "INSERT INTO entries (entry_id, call_id, customer_id, kind, status, amount_krw, payment_method,
                                  idempotency_key, command, requested_amount_krw, reason)
             VALUES ($1, $2, $3, $4, 'PENDING', $5, $6, $7, $8, $9, $10)
             RETURNING *",
        )
        .bind(Uuid::new_v4())
        .bind(new.call_id)
        .bind(new.customer_id)
        .bind(new.kind.as_str())
        .bind(new.amount_krw)
        .bind(new.payment_method)
        .bind(new.idempotency_key)
        .bind(new.command.as_str())
        .bind(new.requested_amount_krw)
        .bind(new.reason)
        .fetch_one(tx)
        .await
        .context("cannot insert an entry")?;
        Entry::try_from(row)
    }

    /// Records the provider's outcome of a PENDING entry. `None` when the entry
    /// is no longer PENDING because a concurrent retry recorded it first.
    pub async fn finish_entry(
        &self,
        tx: &mut PgConnection,
        entry_id: Uuid,
        status: EntryStatus,
        provider_reference: &str,
    ) -> anyhow::Result<Option<Entry>> {
        let row: Option<EntryRow> = sqlx::query_as(
            "UPDATE entries SET status = $2, provider_reference = $3, updated_at = now()
             WHERE entry_id = $1 AND status = 'PENDING'
             RETURNING *",
        )
        .bind(entry_id)
        .bind(status.as_str())
        .bind(provider_reference)
        .fetch_optional(tx)
        .await
        .context("cannot record a provider outcome")?;
        row.map(Entry::try_from).transpose()
    }

    /// One entry by id, as committed.
    pub async fn entry(&self, entry_id: Uuid) -> anyhow::Result<Entry> {
        fetch_entry(&self.pool, entry_id).await
    }

    /// One entry by id, inside the transaction `tx`.
    pub async fn entry_in(&self, tx: &mut PgConnection, entry_id: Uuid) -> anyhow::Result<Entry> {
        fetch_entry(tx, entry_id).await
    }

    /// Every entry of `call_id`, oldest first, as committed.
    pub async fn ledger(&self, call_id: Uuid) -> anyhow::Result<Ledger> {
        fetch_ledger(&self.pool, call_id).await
    }

    /// Every entry of `call_id`, oldest first, inside the transaction `tx`
    /// (which holds the call's lock when totals are checked).
    pub async fn ledger_in(&self, tx: &mut PgConnection, call_id: Uuid) -> anyhow::Result<Ledger> {
        fetch_ledger(tx, call_id).await
    }
}

async fn fetch_entry(conn: impl PgExecutor<'_>, entry_id: Uuid) -> anyhow::Result<Entry> {
    let row: EntryRow = sqlx::query_as("SELECT * FROM entries WHERE entry_id = $1")
        .bind(entry_id)
        .fetch_one(conn)
        .await
        .context("cannot read an entry")?;
    Entry::try_from(row)
}

async fn fetch_ledger(conn: impl PgExecutor<'_>, call_id: Uuid) -> anyhow::Result<Ledger> {
    let rows: Vec<EntryRow> = sqlx::query_as("SELECT * FROM entries WHERE call_id = $1 ORDER BY seq")
        .bind(call_id)
        .fetch_all(conn)
        .await
        .context("cannot read the ledger")?;
    let entries = rows
        .into_iter()
        .map(Entry::try_from)
        .collect::<anyhow::Result<_>>()?;
    Ok(Ledger::new(entries))
}
