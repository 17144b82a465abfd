//! PostgreSQL schema `call`: the calls table, the rejected requests and the
//! outbox, behind one [`Store`].
//!
//! - `calls`: the row of a call and its whole-row reads and writes; writers
//!   lock the row (`SELECT … FOR UPDATE`) in a transaction the service opened.
//! - `rejections`: requests refused because no taxi was available.
//! - `sweep`: the sweeper's candidates (calls to expire, stale accepts) and
//!   its claim lease.
//! - `effects`: the effects owed to other services and their retry schedule.
//!
//! Methods that belong to a larger unit of work take the service's
//! transaction as `&mut PgConnection` (open one with [`Store::begin`]); the
//! others run on the pool by themselves. The sweeper's bookkeeping (leases,
//! the effects' schedule) is written with conditional `UPDATE`s, so that of
//! several replicas exactly one wins. The outbox's table belongs to the
//! `outbox` crate; the service appends to it inside the same transaction.

mod calls;
mod effects;
mod rejections;
mod sweep;

use sqlx::{PgPool, Postgres, Transaction};

pub use effects::EffectsLease;
pub use rejections::Rejection;

/// Every connection's `search_path`.
pub const SCHEMA: &str = "call";

/// The schema's migrations, applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// call-svc's rows in PostgreSQL. Cheap to clone (the pool is shared).
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
