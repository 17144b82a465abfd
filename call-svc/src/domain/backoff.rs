//! How long the sweeper waits before it retries the effects a call owes:
//! exponential back-off with a cap and a little jitter, so that calls that
//! failed together (a backend was down) are not all retried in the same round.

use std::time::Duration;

/// The delay after `attempts` failed retries (0 after the first, inline
/// attempt): `min(base · 2^attempts, max)`, shortened by up to a quarter by
/// an amount that `jitter_seed` and `attempts` pick. It never exceeds `max`
/// and, until the cap, always exceeds the previous attempt's delay.
pub fn effect_backoff(attempts: u32, base: Duration, max: Duration, jitter_seed: u64) -> Duration {
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    let factor = 1_u64.checked_shl(attempts).unwrap_or(u64::MAX);
    let delay_ms = base_ms.saturating_mul(factor).min(max_ms);
    let jitter_ms = mix(jitter_seed ^ u64::from(attempts)) % (delay_ms / 4 + 1);
    Duration::from_millis(delay_ms - jitter_ms)
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

    const BASE: Duration = Duration::from_millis(1_000);
    const MAX: Duration = Duration::from_secs(60);

    fn within_jitter(delay: Duration, nominal: Duration) -> bool {
        delay <= nominal && delay >= nominal * 3 / 4
    }

    #[test]
    fn the_delay_doubles_with_each_attempt() {
        for attempts in 0..6 {
            let nominal = BASE * 2_u32.pow(attempts);
            let delay = effect_backoff(attempts, BASE, MAX, 42);
            assert!(within_jitter(delay, nominal), "attempt {attempts}: {delay:?}");
        }
    }

    #[test]
    fn the_delay_stops_growing_at_the_cap() {
        for attempts in [6, 10, 31, 32, 63, 64, 1_000, u32::MAX] {
            let delay = effect_backoff(attempts, BASE, MAX, 7);
            assert!(within_jitter(delay, MAX), "attempt {attempts}: {delay:?}");
        }
    }

    #[test]
    fn the_same_seed_and_attempt_give_the_same_delay() {
        assert_eq!(effect_backoff(3, BASE, MAX, 99), effect_backoff(3, BASE, MAX, 99));
    }

    #[test]
    fn different_seeds_spread_the_retries() {
        let delays: std::collections::HashSet<_> = (0..50_u64)
            .map(|seed| effect_backoff(4, BASE, MAX, seed))
            .collect();
        assert!(delays.len() > 25, "only {} distinct delays", delays.len());
    }

    #[test]
    fn a_zero_base_retries_at_once() {
        assert_eq!(effect_backoff(5, Duration::ZERO, MAX, 1), Duration::ZERO);
    }
}
