//! Waiting for what the services do in the background (the sweeper, the
//! relays, the health followers): ask again and again, a little apart, until
//! the answer is the one wanted or time is up.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// How long the backends get to do something in the background before a
/// test gives up on it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How long apart [`poll`] asks.
pub const EVERY: Duration = Duration::from_millis(100);

/// Asks `probe` every [`EVERY`] until `done` holds for its answer or `within`
/// has passed, and gives the last answer either way (so the caller's
/// assertion can say what it saw).
pub async fn poll<T, F, Fut>(within: Duration, mut probe: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + within;
    let mut last = probe().await;
    while !done(&last) && Instant::now() < deadline {
        tokio::time::sleep(EVERY).await;
        last = probe().await;
    }
    last
}
