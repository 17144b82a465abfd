//! PostgreSQL schema `payment` behind one [`Store`]: ledger entries,
//! settlements, per-call event versions and the outbox. Plain
//! `sqlx::query`/`query_as`.
//!
//! - `entries`: the ledger's entries (charges and refunds) and the ledger of
//!   a call;
//! - `settlements`: each SettleFinal under its idempotency key;
//! - `versions`: the version of each call's payment aggregate, for its events;
//! - `locks`: the advisory locks on a call and on an idempotency key.
//!
//! Methods that belong to a larger unit of work take the service's
//! transaction as `tx: &mut PgConnection` (open one with [`Store::begin`]);
//! the reads needed both inside and outside one come in pairs (`ledger` on
//! the pool, `ledger_in` in `tx`). The outbox's table belongs to the `outbox`
//! crate; the service appends to it inside the same transaction.

mod entries;
mod locks;
mod settlements;
mod versions;

use sqlx::{PgPool, Postgres, Transaction, migrate::Migrator};

pub use entries::NewEntry;
pub use settlements::SettlementRecord;

/// The schema every connection of this service works in.
pub const SCHEMA: &str = "payment";

/// The embedded migrations (`payment-svc/migrations`).
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// payment-svc's rows in PostgreSQL. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// A store on `pool`, whose connections already use [`SCHEMA`].
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Opens a transaction for a unit of work made of several statements.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}
