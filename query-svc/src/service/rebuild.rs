//! Rebuilding the read models from the event stream: replay everything into
//! a fresh generation, switch to it, catch up with what arrived meanwhile,
//! drop the old generation.
//!
//! The live projector keeps running throughout. Before the switch it writes
//! the old generation; its writes check the active generation inside their
//! Lua script, so after the switch it writes only the new one. What it wrote
//! to the old generation between the start and the switch is at stream
//! sequences above the start's last sequence, which the catch-up replays
//! (a no-op for anything already applied).

use std::time::Duration;

use taxi_proto::events::v1::EventEnvelope;

use crate::{
    domain,
    events::replay::{EventLog, EventStream},
    store::{Applied, Store, apply::Target},
};

/// The lock outlives any sane rebuild, and expires after a crashed one.
const LOCK_TTL: Duration = Duration::from_secs(60 * 60);

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// The generation now active.
    pub generation: String,
    /// The generation it replaced (deleted), if there was one.
    pub previous_generation: Option<String>,
    /// The stream's last sequence when the rebuild started.
    pub replayed_up_to: u64,
    /// Messages read before the switch.
    pub replayed: u64,
    /// Messages read after the switch (those published during the replay).
    pub caught_up: u64,
    /// Events applied to the new generation.
    pub applied: u64,
    /// Events seen before (redelivered duplicates in the stream, or applied by
    /// the live projector after the switch).
    pub duplicates: u64,
    /// Events no read model uses (driver and payment events).
    pub ignored: u64,
    /// Events that cannot be projected (the live projector dead-letters them).
    pub uninterpretable: u64,
    /// Keys of the previous generation deleted.
    pub keys_deleted: u64,
}

/// Rebuilds every read model in `store` from the stream `log` reads, under
/// the rebuild lock, so that two rebuilds never race; see the module docs.
pub(crate) async fn rebuild(store: &Store, log: &EventLog) -> anyhow::Result<RebuildReport> {
    let owner = uuid::Uuid::new_v4().to_string();
    anyhow::ensure!(
        store.lock_rebuild(&owner, LOCK_TTL).await?,
        "another rebuild is running (lock {})",
        store.rebuild_lock_key()
    );
    let outcome = run(store, log).await;
    if let Err(error) = store.unlock_rebuild(&owner).await {
        tracing::warn!(%error, "cannot release the rebuild lock; it expires by itself");
    }
    outcome
}

async fn run(store: &Store, log: &EventLog) -> anyhow::Result<RebuildReport> {
    let current = store.stored_generation().await?;
    let generation = fresh_name(current.as_deref());
    // Leftovers of a crashed rebuild that picked the same name would mix in.
    store.delete_generation(&generation).await?;
    let mut stream = log.open().await?;
    let end = stream.last_sequence().await?;
    let mut report = RebuildReport {
        generation: generation.clone(),
        replayed_up_to: end,
        ..Default::default()
    };
    tracing::info!(generation, up_to = end, "rebuild: replaying the event stream");
    if let Err(error) = replay(store, &stream, &generation, 1, end, &mut report, Phase::Replay).await {
        if let Err(cleanup) = store.delete_generation(&generation).await {
            tracing::warn!(error = %cleanup, generation, "cannot delete the abandoned generation");
        }
        return Err(error);
    }

    let previous = store.switch_generation(&generation).await?;
    tracing::info!(generation, ?previous, "rebuild: switched generations");
    let now = stream.last_sequence().await?;
    replay(
        store,
        &stream,
        &generation,
        end + 1,
        now,
        &mut report,
        Phase::CatchUp,
    )
    .await?;

    if let Some(previous) = previous.filter(|p| *p != generation) {
        report.keys_deleted = store.delete_generation(&previous).await?;
        report.previous_generation = Some(previous);
    }
    tracing::info!(?report, "rebuild: done");
    Ok(report)
}

/// A generation name that differs from `current`.
fn fresh_name(current: Option<&str>) -> String {
    let millis = chrono::Utc::now().timestamp_millis();
    let name = format!("g{millis}");
    if current == Some(name.as_str()) {
        format!("g{millis}b")
    } else {
        name
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Replay,
    CatchUp,
}

/// Applies the stream's messages `from..=to` to `generation`.
async fn replay(
    store: &Store,
    stream: &EventStream,
    generation: &str,
    from: u64,
    to: u64,
    report: &mut RebuildReport,
    phase: Phase,
) -> anyhow::Result<()> {
    let mut messages = stream.read(from, to).await?;
    while let Some(event) = messages.next().await? {
        match phase {
            Phase::Replay => report.replayed += 1,
            Phase::CatchUp => report.caught_up += 1,
        }
        apply(store, generation, event, report).await?;
    }
    Ok(())
}

async fn apply(
    store: &Store,
    generation: &str,
    event: Result<EventEnvelope, prost::DecodeError>,
    report: &mut RebuildReport,
) -> anyhow::Result<()> {
    let projection = match event
        .map_err(|e| e.to_string())
        .and_then(|event| domain::interpret(&event).map_err(|e| e.to_string()))
    {
        Ok(Some(projection)) => projection,
        Ok(None) => {
            report.ignored += 1;
            return Ok(());
        }
        Err(reason) => {
            tracing::warn!(reason, "rebuild: skipping an event that cannot be projected");
            report.uninterpretable += 1;
            return Ok(());
        }
    };
    let target = Target {
        generation,
        require_active: false,
        // Nobody watches a generation being built; after the switch the
        // views are the same as the ones watchers already saw.
        notify: false,
    };
    let mut attempt = 0;
    loop {
        match store.apply(target, &projection).await {
            Ok(Applied::Fresh) => report.applied += 1,
            Ok(Applied::Duplicate | Applied::StaleGeneration) => report.duplicates += 1,
            Err(error) if attempt < 3 => {
                attempt += 1;
                tracing::warn!(%error, attempt, "rebuild: Redis failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                continue;
            }
            Err(error) => return Err(anyhow::Error::new(error).context("rebuild: cannot write to Redis")),
        }
        return Ok(());
    }
}
