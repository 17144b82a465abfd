//! Limits that keep one client or one failing backend from hurting the rest:
//! a token bucket per subject, and the gateway-wide concurrency limit with
//! load shedding (tower), answered with UNAVAILABLE when full.

use std::{
    collections::HashMap,
    sync::Mutex,
    task::{Context, Poll},
    time::Instant,
};

use tonic::{Status, body::Body};
use tower::{BoxError, Layer, Service, load_shed::error::Overloaded};

/// A token bucket per subject: `rate` tokens a second, at most `burst`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `subject`, or says no.
    pub fn allow(&self, subject: &str) -> bool {
        let now = Instant::now();
        // A poisoned lock only means a panic elsewhere; the map is still valid.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Forget idle subjects (full buckets) so the map stays bounded.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(subject.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
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
        let limiter = RateLimiter::new(1.0, 3.0);
        let allowed = (0..5).filter(|_| limiter.allow("alice")).count();
        assert_eq!(allowed, 3);
        assert!(limiter.allow("bob"), "buckets are per subject");
    }
}
