//! PostgreSQL schema `call`: the calls table, the rejections and the outbox.

mod calls;

pub use calls::{
    EffectsLease, Rejection, claims_older_than, clear_done_effects, effects_due, expire_candidates, get,
    get_by_idempotency_key, insert, insert_rejection, lock, reschedule_effects, take_claim_lease,
    take_effects_lease, update,
};

/// Every connection's `search_path`.
pub const SCHEMA: &str = "call";

/// The schema's migrations, applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
