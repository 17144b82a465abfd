//! Limits that keep one client or one failing backend from hurting the rest:
//! a rate limit per subject (governor's GCRA), a cap on each subject's open streams, and the
//! gateway-wide concurrency limit with load shedding (tower), answered with
//! UNAVAILABLE when full.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use governor::{DefaultKeyedRateLimiter, Quota};
use svc_kit::sync::lock;
use tonic::{Status, body::Body};
use tower::{BoxError, Layer, Service, load_shed::error::Overloaded};

/// How many subjects the limiter remembers before it forgets the idle ones.
const TRACKED_SUBJECTS: usize = 100_000;

/// A rate limit per subject: `rate` requests a second sustained, bursts of up
/// to `burst`. governor's keyed GCRA keeps one timestamp per subject, so a
/// check is one compare-and-swap, with no lock over all subjects.
pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl RateLimiter {
    /// `rate` must be positive and finite (the config checks it).
    pub fn new(rate: f64, burst: NonZeroU32) -> Self {
        let period = Duration::try_from_secs_f64(rate.recip())
            .ok()
            .filter(|period| !period.is_zero())
            .unwrap_or(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("the period is not zero")
            .allow_burst(burst);
        Self {
            limiter: governor::RateLimiter::keyed(quota),
        }
    }

    /// Takes a place for one request of `subject`, or says no.
    pub fn allow(&self, subject: &str) -> bool {
        if self.limiter.len() > TRACKED_SUBJECTS {
            // Subjects whose allowance is whole again are the same as new ones.
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&subject.to_owned()).is_ok()
    }
}

/// Counts each subject's open server streams, at most `max` each. A stream
/// holds its place (a [`StreamPermit`]) until its response body is dropped,
/// which the concurrency limit, released once the answer starts, cannot do.
pub struct StreamLimiter {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// A place for one open stream, given back on drop.
#[derive(Debug)]
pub struct StreamPermit {
    subject: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl StreamLimiter {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A place for another stream of `subject`, unless it holds `max` already.
    pub fn acquire(&self, subject: &str) -> Option<StreamPermit> {
        let mut open = lock(&self.open);
        let count = open.entry(subject.to_owned()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(StreamPermit {
            subject: subject.to_owned(),
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(count) = open.get_mut(&self.subject) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Subjects without streams take no room.
                open.remove(&self.subject);
            }
        }
    }
}

/// Turns tower's `Overloaded` (from `LoadShed` in front of the concurrency
/// limit) into a gRPC UNAVAILABLE answer, so clients back off and retry.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShedAsUnavailableLayer;

impl<S> Layer<S> for ShedAsUnavailableLayer {
    type Service = ShedAsUnavailable<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShedAsUnavailable { inner }
    }
}

#[derive(Debug, Clone)]
pub struct ShedAsUnavailable<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for ShedAsUnavailable<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            match future.await {
                Err(error) if error.is::<Overloaded>() => {
                    Ok(Status::unavailable("the gateway is at capacity; retry shortly").into_http())
                }
                other => other,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_gets_its_burst_then_is_refused() {
        let limiter = RateLimiter::new(1.0, NonZeroU32::new(3).expect("not zero"));
        let allowed = (0..5).filter(|_| limiter.allow("alice")).count();
        assert_eq!(allowed, 3);
        assert!(limiter.allow("bob"), "buckets are per subject");
    }

    #[test]
    fn a_subject_holds_at_most_its_streams_and_a_closed_one_frees_its_place() {
        let limiter = StreamLimiter::new(2);
        let first = limiter.acquire("alice").expect("first");
        let _second = limiter.acquire("alice").expect("second");
        assert!(limiter.acquire("alice").is_none(), "a third is refused");
        assert!(limiter.acquire("bob").is_some(), "places are per subject");
        drop(first);
        assert!(
            limiter.acquire("alice").is_some(),
            "a closed stream frees its place"
        );
    }
}
