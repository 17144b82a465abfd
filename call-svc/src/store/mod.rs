//! PostgreSQL schema `call`: the calls table and the outbox.

mod calls;

pub use calls::{
    claims_older_than, clear_effects, effects_older_than, expire_candidates, get, get_by_idempotency_key,
    insert, lock, take_claim_lease, update,
};

/// Every connection's `search_path`.
pub const SCHEMA: &str = "call";

/// The schema's migrations, applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
