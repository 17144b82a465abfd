//! The transactional outbox, all of it: a service appends its domain events to
//! the `outbox` table of its own schema in the same transaction as the state
//! change they record, and the relay publishes them to JetStream afterwards. A
//! committed change therefore always has its event, and a rolled-back one never
//! does.
//!
//! - [`envelope`] and [`append`]: a new event, and writing it in the caller's
//!   transaction; the commit notifies [`channel`].
//! - [`migrate`]: the table's one definition (`migrations/`), which every
//!   write service applies to its schema after its own migrations.
//! - [`relay`]: publishes the rows in commit order and marks them only after
//!   JetStream acknowledged them.
//!
//! What an event *is* (its payload and type name) belongs to `taxi-proto`;
//! where it goes (streams and subjects) to `eventbus`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod append;
pub mod relay;

use anyhow::Context as _;
use sqlx::PgPool;

pub use append::{append, channel, envelope};
pub use relay::{Relay, RelayConfig, RelayStats};

/// Creates or updates the outbox table in the pool's schema (its
/// `search_path`). The outbox keeps its own migration history,
/// `_outbox_migrations`, beside the service's `_sqlx_migrations`, so the two
/// never compete for version numbers.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut migrator = sqlx::migrate!();
    migrator.dangerous_set_table_name("_outbox_migrations");
    migrator
        .run(pool)
        .await
        .context("cannot migrate the outbox table")?;
    Ok(())
}
