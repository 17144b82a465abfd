//! A circuit breaker: after `failure_threshold` consecutive failures calls are
//! refused for `open_for`, then one probe is let through (half-open); its
//! success closes the circuit, its failure opens it again. A probe that never
//! reports back (its caller gave up) expires after `open_for`, and another
//! probe is let through, so the circuit cannot stay half-open for good.
//!
//! Written here because the maintained crates compared do not fit the two
//! callers. `failsafe` (1.3) has the same three calls (`is_call_permitted`,
//! `on_success`, `on_error`), but half-open it lets every call through until
//! one reports back, which for the gateway means a burst of probes at a
//! backend that is just coming back, and it cannot say whether it is open,
//! which the gateway's retry needs. `tower-resilience-circuitbreaker` (0.x) is
//! a tower layer around a whole service, with failure-rate windows; the
//! gateway counts each forwarded attempt and asks the state before a retry,
//! and call-svc guards one method of a generated client, so both would bend
//! around a layer to do what three method calls do here.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// What a breaker does with the next call, for a dashboard to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// One probe goes through (or is out); the others are refused until it
    /// reports back or expires.
    HalfOpen,
    /// Calls are refused until the open period is over.
    Open,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_expires: Instant },
}

/// Shared by every caller of one backend.
#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<State>,
    failure_threshold: u32,
    open_for: Duration,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(failure_threshold: u32, open_for: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            failure_threshold: failure_threshold.max(1),
            open_for,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Whether a call may go ahead now. While half-open only one probe is allowed.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    /// Records a call that reached the backend.
    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// Records a call that could not reach the backend.
    pub fn record_failure(&self) {
        self.record_failure_at(Instant::now());
    }

    /// True while calls are being refused.
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { until } if Instant::now() < until)
    }

    /// The state now. An open circuit whose period is over counts as
    /// half-open: its next call is the probe.
    pub fn state(&self) -> BreakerState {
        self.state_at(Instant::now())
    }

    fn state_at(&self, now: Instant) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => true,
            State::Open { until: ready } | State::HalfOpen { probe_expires: ready } if now >= ready => {
                *state = State::HalfOpen {
                    probe_expires: now + self.open_for,
                };
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    fn record_failure_at(&self, now: Instant) {
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.failure_threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: now + self.open_for,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_secs(10);

    #[test]
    fn opens_after_consecutive_failures_and_probes_once_half_open() {
        let breaker = CircuitBreaker::new(2, OPEN_FOR);
        let start = Instant::now();
        breaker.record_failure_at(start);
        assert!(breaker.allow_at(start), "one failure keeps it closed");
        breaker.record_failure_at(start);
        assert!(!breaker.allow_at(start + OPEN_FOR / 2), "open after two");
        let later = start + OPEN_FOR;
        assert!(breaker.allow_at(later), "half-open lets a probe through");
        assert!(!breaker.allow_at(later), "but only one");
        breaker.record_success();
        assert!(breaker.allow_at(later), "closed again");
    }

    #[test]
    fn a_probe_that_never_reports_back_expires_and_another_is_let_through() {
        let breaker = CircuitBreaker::new(1, OPEN_FOR);
        let start = Instant::now();
        breaker.record_failure_at(start);
        let probe_at = start + OPEN_FOR;
        assert!(breaker.allow_at(probe_at), "the first probe");
        assert!(!breaker.allow_at(probe_at + OPEN_FOR / 2), "while it is out");
        assert!(
            breaker.allow_at(probe_at + OPEN_FOR),
            "the lost probe expired: a new one goes"
        );
    }

    #[test]
    fn the_state_follows_failures_the_open_period_and_the_probe() {
        let breaker = CircuitBreaker::new(1, OPEN_FOR);
        let start = Instant::now();
        assert_eq!(breaker.state_at(start), BreakerState::Closed);
        breaker.record_failure_at(start);
        assert_eq!(breaker.state_at(start), BreakerState::Open);
        assert_eq!(
            breaker.state_at(start + OPEN_FOR),
            BreakerState::HalfOpen,
            "the period is over: the next call probes"
        );
        assert!(breaker.allow_at(start + OPEN_FOR));
        assert_eq!(breaker.state_at(start + OPEN_FOR), BreakerState::HalfOpen);
        breaker.record_success();
        assert_eq!(breaker.state_at(start + OPEN_FOR), BreakerState::Closed);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(60));
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        assert!(breaker.allow());
        assert!(!breaker.is_open());
    }
}
