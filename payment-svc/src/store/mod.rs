//! PostgreSQL schema `payment`: ledger entries, settlements, per-call event
//! versions and the outbox. Plain `sqlx::query`/`query_as`; every function
//! takes an executor so callers decide what runs in one transaction.

use anyhow::{Context as _, anyhow};
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, migrate::Migrator};
use uuid::Uuid;

use crate::domain::{Command, Entry, EntryKind, EntryStatus, Ledger};

/// The schema every connection of this service works in.
pub const SCHEMA: &str = "payment";

/// The embedded migrations (`payment-svc/migrations`).
pub static MIGRATOR: Migrator = sqlx::migrate!();

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

/// A SettleFinal as recorded under its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SettlementRecord {
    pub call_id: Uuid,
    pub final_amount_krw: i64,
    /// The charge or refund it made; none when nothing was owed.
    pub entry_id: Option<Uuid>,
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

/// Serializes every money movement of `call_id` until the transaction ends,
/// so totals checked in it stay true until it commits.
pub async fn lock_call(conn: impl PgExecutor<'_>, call_id: Uuid) -> anyhow::Result<()> {
    // Namespaced so it never collides with another service's locks on the
    // same call id in a shared database.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('payment.call:' || $1::text, 0))")
        .bind(call_id)
        .execute(conn)
        .await
        .context("cannot lock the call")?;
    Ok(())
}

/// Serializes the use of one idempotency key until the transaction ends
/// (keys are unique across calls, and two calls do not share a call lock).
pub async fn lock_key(conn: impl PgExecutor<'_>, idempotency_key: &str) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('payment.key:' || $1, 0))")
        .bind(idempotency_key)
        .execute(conn)
        .await
        .context("cannot lock the idempotency key")?;
    Ok(())
}

/// The entry created under `idempotency_key`, if any.
pub async fn entry_by_key(conn: impl PgExecutor<'_>, idempotency_key: &str) -> anyhow::Result<Option<Entry>> {
    let row: Option<EntryRow> = sqlx::query_as("SELECT * FROM entries WHERE idempotency_key = $1")
        .bind(idempotency_key)
        .fetch_optional(conn)
        .await
        .context("cannot read an entry by key")?;
    row.map(Entry::try_from).transpose()
}

/// One entry by id.
pub async fn entry(conn: impl PgExecutor<'_>, entry_id: Uuid) -> anyhow::Result<Entry> {
    let row: EntryRow = sqlx::query_as("SELECT * FROM entries WHERE entry_id = $1")
        .bind(entry_id)
        .fetch_one(conn)
        .await
        .context("cannot read an entry")?;
    Entry::try_from(row)
}

/// Every entry of `call_id`, oldest first.
pub async fn ledger(conn: impl PgExecutor<'_>, call_id: Uuid) -> anyhow::Result<Ledger> {
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

/// Writes a PENDING entry.
pub async fn insert_entry(conn: impl PgExecutor<'_>, new: &NewEntry<'_>) -> anyhow::Result<Entry> {
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
    .fetch_one(conn)
    .await
    .context("cannot insert an entry")?;
    Entry::try_from(row)
}

/// Records the provider's outcome of a PENDING entry. `None` when the entry
/// is no longer PENDING because a concurrent retry recorded it first.
pub async fn finish_entry(
    conn: impl PgExecutor<'_>,
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
    .fetch_optional(conn)
    .await
    .context("cannot record a provider outcome")?;
    row.map(Entry::try_from).transpose()
}

/// The settlement recorded under `idempotency_key`, if any.
pub async fn settlement_by_key(
    conn: impl PgExecutor<'_>,
    idempotency_key: &str,
) -> anyhow::Result<Option<SettlementRecord>> {
    sqlx::query_as("SELECT call_id, final_amount_krw, entry_id FROM settlements WHERE idempotency_key = $1")
        .bind(idempotency_key)
        .fetch_optional(conn)
        .await
        .context("cannot read a settlement")
}

/// Records a settlement under its idempotency key.
pub async fn insert_settlement(
    conn: impl PgExecutor<'_>,
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
    .execute(conn)
    .await
    .context("cannot insert a settlement")?;
    Ok(())
}

/// Bumps and returns the version of the call's payment aggregate (1 for its
/// first event). The row lock also orders concurrent writers.
pub async fn next_version(conn: impl PgExecutor<'_>, call_id: Uuid) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO call_versions (call_id, version) VALUES ($1, 1)
         ON CONFLICT (call_id) DO UPDATE SET version = call_versions.version + 1
         RETURNING version",
    )
    .bind(call_id)
    .fetch_one(conn)
    .await
    .context("cannot bump the call's payment version")
}
