//! Limits that keep one client or one failing backend from hurting the rest:
//! a rate limit per subject (governor's GCRA), a cap on each subject's open streams, and the
//! gateway-wide concurrency limit with load shedding (tower), answered with
//! UNAVAILABLE when full.
//!
//! Each refusal is counted: `gateway_rate_limited_total`,
//! `gateway_stream_cap_refusals_total` and `gateway_shed_total`.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use governor::{DefaultKeyedRateLimiter, Quota};
use svc_kit::{
    metrics::{Registry, prometheus_client::metrics::counter::Counter},
    sync::lock,
};
use tonic::{Status, body::Body};
use tower::{BoxError, Layer, Service, load_shed::error::Overloaded};

/// How many subjects the limiter remembers before it forgets the idle ones.
const TRACKED_SUBJECTS: usize = 100_000;

/// A rate limit per subject: `rate` requests a second sustained, bursts of up
/// to `burst`. governor's keyed GCRA keeps one timestamp per subject, so a
/// check is one compare-and-swap, with no lock over all subjects.
pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    refused: Counter,
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
            refused: Counter::default(),
        }
    }

    /// Registers `gateway_rate_limited_total`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "gateway_rate_limited",
            "Requests refused as RESOURCE_EXHAUSTED because their subject was over its rate limit",
            self.refused.clone(),
        );
    }

    /// Takes a place for one request of `subject`, or says no (and counts it).
    pub fn allow(&self, subject: &str) -> bool {
        if self.limiter.len() > TRACKED_SUBJECTS {
            // Subjects whose allowance is whole again are the same as new ones.
            self.limiter.retain_recent();
        }
        let allowed = self.limiter.check_key(&subject.to_owned()).is_ok();
        if !allowed {
            self.refused.inc();
        }
        allowed
    }
}

/// Counts each subject's open server streams, at most `max` each. A stream
/// holds its place (a [`StreamPermit`]) until its response body is dropped,
/// which the concurrency limit, released once the answer starts, cannot do.
pub struct StreamLimiter {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
    refused: Counter,
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
            refused: Counter::default(),
        }
    }

    /// Registers `gateway_stream_cap_refusals_total`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "gateway_stream_cap_refusals",
            "Streams refused as RESOURCE_EXHAUSTED because their subject held its most open streams",
            self.refused.clone(),
        );
    }

    /// A place for another stream of `subject`, unless it holds `max` already
    /// (a refusal is counted).
    pub fn acquire(&self, subject: &str) -> Option<StreamPermit> {
        let mut open = lock(&self.open);
        let count = open.entry(subject.to_owned()).or_default();
        if *count >= self.max {
            self.refused.inc();
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
/// limit) into a gRPC UNAVAILABLE answer, so clients back off and retry, and
/// counts each one in `gateway_shed_total`.
#[derive(Debug, Clone, Default)]
pub struct ShedAsUnavailableLayer {
    shed: Counter,
}

impl ShedAsUnavailableLayer {
    /// Registers `gateway_shed_total`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "gateway_shed",
            "Requests refused as UNAVAILABLE because the gateway had its most requests in flight",
            self.shed.clone(),
        );
    }
}

impl<S> Layer<S> for ShedAsUnavailableLayer {
    type Service = ShedAsUnavailable<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShedAsUnavailable {
            inner,
            shed: self.shed.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShedAsUnavailable<S> {
    inner: S,
    shed: Counter,
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
        let shed = self.shed.clone();
        Box::pin(async move {
            match future.await {
                Err(error) if error.is::<Overloaded>() => {
                    shed.inc();
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
        assert_eq!(limiter.refused.get(), 2, "each refusal is counted");
    }

    #[tokio::test]
    async fn a_shed_request_is_unavailable_and_counted() {
        use tower::ServiceExt as _;

        let layer = ShedAsUnavailableLayer::default();
        let mut registry = svc_kit::metrics::Registry::default();
        layer.register_metrics(&mut registry);
        let full = layer.layer(tower::service_fn(|_: http::Request<Body>| async {
            Err::<http::Response<Body>, BoxError>(Overloaded::new().into())
        }));

        let answer = full
            .oneshot(http::Request::new(Body::empty()))
            .await
            .expect("an answer");

        let status = Status::from_header_map(answer.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let text = svc_kit::metrics::encode(&registry);
        assert!(text.contains("gateway_shed_total 1\n"), "{text}");
    }

    #[test]
    fn a_subject_holds_at_most_its_streams_and_a_closed_one_frees_its_place() {
        let limiter = StreamLimiter::new(2);
        let first = limiter.acquire("alice").expect("first");
        let _second = limiter.acquire("alice").expect("second");
        assert!(limiter.acquire("alice").is_none(), "a third is refused");
        assert_eq!(limiter.refused.get(), 1, "and counted");
        assert!(limiter.acquire("bob").is_some(), "places are per subject");
        drop(first);
        assert!(
            limiter.acquire("alice").is_some(),
            "a closed stream frees its place"
        );
    }
}
