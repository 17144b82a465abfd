//! The sweeper: runs once at start-up (recovery) and then every interval. It
//! expires calls nobody accepted, finishes or undoes accepts that a crashed
//! process left half-way, and retries effects owed to other services once
//! their back-off is over, taking a lease on each so that only one replica
//! retries them at a time.

use std::{sync::Arc, time::Duration};

use crate::service::Calls;

/// Sweeps forever; stops only when dropped.
pub async fn run(calls: Arc<Calls>, interval: Duration) {
    loop {
        if let Err(error) = calls.sweep().await {
            tracing::warn!(error = ?error, "sweep failed; retrying next round");
        }
        tokio::time::sleep(interval).await;
    }
}
