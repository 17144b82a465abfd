//! Exponential back-off, written once: the delay doubles per attempt up to a
//! cap, optionally shortened by a deterministic jitter.
//!
//! Two uses share it. A loop that keeps a connection or a consumer alive
//! takes a [`Retries`]: it sleeps longer after each failure in a row and
//! starts over after a success. A retry whose attempt count is stored (the
//! effects call-svc owes, the redelivery of an event) asks
//! [`Backoff::delay`] or [`Backoff::jittered`] for the delay of attempt `n`.
//!
//! `backon` was the crate considered: it retries one fallible future until it
//! succeeds or gives up, with random jitter. Neither use here is that shape.
//! The loops run forever and reset on success, and the stored retries need
//! the delay of a given attempt, with jitter that is the same on every replica.

use std::time::Duration;

/// How the delay grows: `base · 2^attempt`, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// A policy starting at `base` and capped at `max`. `max` below `base`
    /// caps every delay at `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The delay before retry `attempt` (0 is the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1_u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// [`delay`](Self::delay) shortened by up to a quarter, by an amount that
    /// `seed` and `attempt` pick, so that things that failed together (a
    /// backend was down) are not all retried at the same moment. The same
    /// seed and attempt always give the same delay. It never exceeds `max`
    /// and, until the cap, always exceeds the previous attempt's delay.
    pub fn jittered(&self, attempt: u32, seed: u64) -> Duration {
        let delay = self.delay(attempt);
        let quarter_ns = u64::try_from(delay.as_nanos() / 4).unwrap_or(u64::MAX);
        let jitter_ns = mix(seed ^ u64::from(attempt)) % quarter_ns.saturating_add(1);
        delay.saturating_sub(Duration::from_nanos(jitter_ns))
    }

    /// A fresh run of retries under this policy.
    pub fn retries(self) -> Retries {
        Retries {
            policy: self,
            attempt: 0,
        }
    }
}

/// Failures in a row of something that is tried again until it works: each
/// [`next_delay`](Self::next_delay) is twice the last, up to the cap, and
/// [`reset`](Self::reset) after a success starts again from the base.
#[derive(Debug, Clone)]
pub struct Retries {
    policy: Backoff,
    attempt: u32,
}

impl Retries {
    /// The delay to wait after this failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.policy.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// The next failure waits the base delay again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// SplitMix64's finalizer: spreads similar seeds over the whole range.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

    #[test]
    fn doubles_up_to_the_cap() {
        let delays: Vec<u64> = (0..8).map(|n| POLICY.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(POLICY.delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jitter_takes_at_most_a_quarter_and_keeps_the_order() {
        for seed in [0, 7, 42, u64::MAX] {
            let mut previous = Duration::ZERO;
            for attempt in 0..6 {
                let nominal = POLICY.delay(attempt);
                let delay = POLICY.jittered(attempt, seed);
                assert!(
                    delay <= nominal && delay >= nominal * 3 / 4,
                    "{delay:?} against {nominal:?}"
                );
                assert!(delay > previous, "attempt {attempt} with seed {seed}");
                previous = delay;
            }
        }
    }

    #[test]
    fn jitter_is_deterministic_and_spread() {
        assert_eq!(POLICY.jittered(3, 99), POLICY.jittered(3, 99));
        let distinct: std::collections::HashSet<Duration> =
            (0..32).map(|seed| POLICY.jittered(4, seed)).collect();
        assert!(distinct.len() > 16, "only {} distinct delays", distinct.len());
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::from_secs(1)).jittered(5, 1),
            Duration::ZERO
        );
    }

    #[test]
    fn retries_grow_and_start_over_after_a_reset() {
        let mut retries = Backoff::new(Duration::from_millis(100), Duration::from_millis(500)).retries();
        let ms: Vec<u128> = (0..5).map(|_| retries.next_delay().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 500, 500]);
        retries.reset();
        assert_eq!(retries.next_delay(), Duration::from_millis(100));
    }
}
