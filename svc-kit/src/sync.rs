//! Locking shared state.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, also after a panic while another thread held it: every
/// value the services keep behind a mutex (caches, limiter buckets, breaker
/// state) stays valid between statements, so poisoning carries no meaning.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
