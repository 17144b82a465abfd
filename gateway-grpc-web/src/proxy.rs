//! Forwarding: one tower service that authenticates a request, applies the
//! per-subject rate limit, replaces any identity metadata with the verified
//! one, and passes the HTTP/2 request through to the backend that owns the
//! method, byte for byte, under that backend's circuit breaker. Unary calls get
//! a deadline; idempotent reads are retried when the backend was unreachable.
//!
//! Each backend's channel records the `grpc_client_*` families (one attempt,
//! one client call); beside them, per backend: `gateway_breaker_state`,
//! `gateway_breaker_rejections_total` and `gateway_retries_total`.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use svc_kit::{
    breaker::{BreakerState, CircuitBreaker},
    identity::{IDENTITY_HEADER, Signer},
    metrics::{
        Registry,
        prometheus_client::{
            collector::Collector,
            encoding::{DescriptorEncoder, EncodeLabelSet},
            metrics::{MetricType, counter::Counter, family::Family},
        },
        rpc::RpcMetrics,
    },
};
use tonic::{Code, Status, body::Body};
use tower::{Service, ServiceExt as _};

use crate::{
    auth::Authenticator,
    limits::{RateLimiter, StreamLimiter},
    routes::{Backend, Route, RouteTable},
};

/// Largest unary request body buffered for a retry.
const MAX_RETRY_BODY: usize = 256 * 1024;

/// A backend, its breaker and its counters.
pub struct Upstream {
    /// The channel, every attempt a span and counted in the client RPC metrics.
    pub channel: svc_kit::grpc::Upstream,
    pub breaker: Arc<CircuitBreaker>,
    /// Calls refused because the circuit was open.
    rejections: Counter,
    /// Attempts after the first at an idempotent read.
    retries: Counter,
}

impl Upstream {
    /// `backend` reached over `channel`, recorded in `client` and `metrics`.
    pub fn new(
        backend: Backend,
        channel: svc_kit::grpc::Balanced,
        breaker: CircuitBreaker,
        client: &RpcMetrics,
        metrics: &ProxyMetrics,
    ) -> Self {
        let labels = BackendLabels {
            backend: backend.name(),
        };
        Self {
            channel: svc_kit::grpc::upstream(channel, client),
            breaker: Arc::new(breaker),
            rejections: metrics.breaker_rejections.get_or_create_owned(&labels),
            retries: metrics.retries.get_or_create_owned(&labels),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: &'static str,
}

/// The counter families of every backend (each [`Upstream`] holds its own
/// members), registered by [`Proxy::register_metrics`].
#[derive(Debug, Clone, Default)]
pub struct ProxyMetrics {
    breaker_rejections: Family<BackendLabels, Counter>,
    retries: Family<BackendLabels, Counter>,
}

/// `gateway_breaker_state{backend}`, read from the breakers at each scrape,
/// so an open period that ran out shows as half-open without waiting for a
/// call: 0 closed, 1 half-open, 2 open.
#[derive(Debug)]
struct BreakerStates(Vec<(&'static str, Arc<CircuitBreaker>)>);

impl Collector for BreakerStates {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "gateway_breaker_state",
            "The circuit breaker of each backend: 0 closed (calls go through), \
             1 half-open (one probe goes through), 2 open (calls are refused)",
            None,
            MetricType::Gauge,
        )?;
        for (backend, breaker) in &self.0 {
            let state: i64 = match breaker.state() {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open => 2,
            };
            family
                .encode_family(&BackendLabels { backend })?
                .encode_gauge(&state)?;
        }
        Ok(())
    }
}

/// Shared by every route.
pub struct Proxy {
    pub routes: RouteTable,
    pub upstreams: HashMap<Backend, Upstream>,
    pub auth: Authenticator,
    /// Signs the verified identity for the backends.
    pub signer: Signer,
    pub limiter: RateLimiter,
    pub streams: StreamLimiter,
    pub read_retries: u32,
    /// The families the upstreams' counters belong to.
    pub metrics: ProxyMetrics,
}

type Response = http::Response<Body>;

impl Proxy {
    /// Registers the gateway's own families: the breakers' states, their
    /// rejections and the read retries per backend, and the authenticator's
    /// and limiters' refusals.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let metrics = &self.metrics;
        registry.register(
            "gateway_breaker_rejections",
            "Calls refused as UNAVAILABLE without trying the backend, because its circuit was open",
            metrics.breaker_rejections.clone(),
        );
        registry.register(
            "gateway_retries",
            "Idempotent reads sent to the backend again after it was unreachable",
            metrics.retries.clone(),
        );
        let breakers = Backend::ALL
            .into_iter()
            .filter_map(|backend| {
                let upstream = self.upstreams.get(&backend)?;
                Some((backend.name(), upstream.breaker.clone()))
            })
            .collect();
        registry.register_collector(Box::new(BreakerStates(breakers)));
        self.auth.register_metrics(registry);
        self.limiter.register_metrics(registry);
        self.streams.register_metrics(registry);
    }

    async fn handle(self: Arc<Self>, request: http::Request<Body>) -> Response {
        match self.forward(request).await {
            Ok(response) => response,
            Err(status) => status.into_http(),
        }
    }

    async fn forward(&self, request: http::Request<Body>) -> Result<Response, Status> {
        let path = request.uri().path().to_owned();
        let route = *self
            .routes
            .get(&path)
            .ok_or_else(|| Status::unimplemented(format!("{path} is not part of the public API")))?;
        let caller = self
            .auth
            .verify(request.headers().get(http::header::AUTHORIZATION))?;
        if route.internal {
            return Err(Status::permission_denied(format!("{path} is internal")));
        }
        let subject = caller.to_string();
        if !self.limiter.allow(&subject) {
            return Err(Status::resource_exhausted("too many requests; slow down"));
        }
        let request = with_identity(request, self.signer.header_value(&caller), route.deadline);
        let upstream = self
            .upstreams
            .get(&route.backend)
            .ok_or_else(|| Status::internal("no upstream for the route"))?;
        if route.streaming {
            let permit = self.streams.acquire(&subject).ok_or_else(|| {
                Status::resource_exhausted("too many open streams; close one before opening another")
            })?;
            let response = call(upstream, route, request).await?;
            // The stream keeps its place for as long as its body is open.
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _holds = &permit;
                    frame
                }))
            }))
        } else if route.idempotent_read {
            self.retrying(upstream, route, request).await
        } else {
            call(upstream, route, request).await
        }
    }

    /// Forwards a read, again (up to `read_retries` times) while the backend is
    /// unreachable; the body is small and buffered for that.
    async fn retrying(
        &self,
        upstream: &Upstream,
        route: Route,
        request: http::Request<Body>,
    ) -> Result<Response, Status> {
        let (parts, body) = request.into_parts();
        let body = Limited::new(body, MAX_RETRY_BODY)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<LengthLimitError>() {
                    // The code the backends give a message over their limit.
                    Status::resource_exhausted(format!(
                        "request too large: the limit is {MAX_RETRY_BODY} bytes"
                    ))
                } else {
                    // Whatever broke the body (a client's reset, bad gRPC-web
                    // text) says what it was.
                    Status::from_error(error)
                }
            })?
            .to_bytes();
        let mut attempt = 0;
        loop {
            let request =
                http::Request::from_parts(parts.clone(), Body::new(Full::<Bytes>::new(body.clone())));
            match call(upstream, route, request).await {
                // An open circuit answers at once; retrying it only adds delay.
                Err(status)
                    if status.code() == Code::Unavailable
                        && attempt < self.read_retries
                        && !upstream.breaker.is_open() =>
                {
                    attempt += 1;
                    upstream.retries.inc();
                    tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
                }
                other => return other,
            }
        }
    }
}

/// One attempt at the backend, counted by its breaker.
async fn call(upstream: &Upstream, route: Route, request: http::Request<Body>) -> Result<Response, Status> {
    if !upstream.breaker.allow() {
        upstream.rejections.inc();
        return Err(Status::unavailable(format!(
            "{} is unavailable (circuit open); retry shortly",
            route.backend.name()
        )));
    }
    let sent = upstream.channel.clone().oneshot(request);
    let outcome = match route.deadline {
        Some(deadline) => match tokio::time::timeout(deadline, sent).await {
            Ok(outcome) => outcome,
            Err(_) => {
                upstream.breaker.record_failure();
                return Err(Status::deadline_exceeded(format!(
                    "{} did not answer in time",
                    route.backend.name()
                )));
            }
        },
        None => sent.await,
    };
    // Only an unreachable or hung backend counts against its circuit: one
    // that answers, even with an error (say UNAVAILABLE because a service
    // behind it is down), is alive.
    match outcome {
        Ok(response) => {
            upstream.breaker.record_success();
            Ok(response.map(Body::new))
        }
        Err(error) => {
            upstream.breaker.record_failure();
            tracing::warn!(backend = route.backend.name(), %error, "backend unreachable");
            Err(Status::unavailable(format!(
                "{} is unreachable",
                route.backend.name()
            )))
        }
    }
}

/// Drops whatever identity the client sent (every `x-taxi-*` entry and the
/// bearer token) and adds `identity`, the signed token of the verified
/// caller; sets the route's deadline unless the client asked for a shorter one.
fn with_identity(
    request: http::Request<Body>,
    identity: Option<http::HeaderValue>,
    deadline: Option<Duration>,
) -> http::Request<Body> {
    let (mut parts, body) = request.into_parts();
    let forged: Vec<_> = parts
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-taxi-"))
        .cloned()
        .collect();
    for name in forged {
        parts.headers.remove(name);
    }
    parts.headers.remove(http::header::AUTHORIZATION);
    if let Some(identity) = identity {
        parts.headers.insert(IDENTITY_HEADER, identity);
    }
    if let Some(deadline) = deadline {
        let asked = parts.headers.get("grpc-timeout").and_then(parse_grpc_timeout);
        let effective = asked.map_or(deadline, |asked| asked.min(deadline));
        if let Ok(value) = format!("{}m", effective.as_millis()).parse() {
            parts.headers.insert("grpc-timeout", value);
        }
    }
    http::Request::from_parts(parts, body)
}

/// Parses a `grpc-timeout` header (`<digits><unit>`, units H M S m u n).
fn parse_grpc_timeout(value: &http::HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3_600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The proxy as a tower service, mounted under every public service's name.
#[derive(Clone)]
pub struct PublicApi(pub Arc<Proxy>);

impl Service<http::Request<axum::body::Body>> for PublicApi {
    type Response = Response;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let proxy = self.0.clone();
        Box::pin(async move { Ok(proxy.handle(request.map(Body::new)).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_identity_is_replaced_by_the_verified_one() {
        let mut request = http::Request::new(Body::empty());
        for (name, value) in [
            ("x-taxi-subject", "someone-else"),
            ("x-taxi-role", "service"),
            ("x-taxi-identity", "a.forged.token"),
            ("x-taxi-anything", "x"),
        ] {
            request.headers_mut().insert(name, value.parse().expect("ascii"));
        }
        let verified = http::HeaderValue::from_static("the.signed.token");

        let forwarded = with_identity(request, Some(verified.clone()), None);

        assert_eq!(forwarded.headers()[IDENTITY_HEADER], verified);
        for name in ["x-taxi-subject", "x-taxi-role", "x-taxi-anything"] {
            assert!(forwarded.headers().get(name).is_none(), "{name}");
        }
    }

    #[test]
    fn the_shorter_of_the_clients_and_the_routes_deadline_wins() {
        let mut request = http::Request::new(Body::empty());
        request
            .headers_mut()
            .insert("grpc-timeout", "500m".parse().expect("ascii"));
        let forwarded = with_identity(request, None, Some(Duration::from_secs(3)));
        assert_eq!(forwarded.headers()["grpc-timeout"], "500m");
        let forwarded = with_identity(
            http::Request::new(Body::empty()),
            None,
            Some(Duration::from_secs(3)),
        );
        assert_eq!(forwarded.headers()["grpc-timeout"], "3000m");
    }

    #[test]
    fn the_breaker_state_gauge_reads_each_breaker_at_scrape_time() {
        let closed = Arc::new(CircuitBreaker::new(1, Duration::from_secs(60)));
        let open = Arc::new(CircuitBreaker::new(1, Duration::from_secs(60)));
        open.record_failure();
        let half_open = Arc::new(CircuitBreaker::new(1, Duration::ZERO));
        half_open.record_failure();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(BreakerStates(vec![
            ("call-svc", closed),
            ("query-svc", open),
            ("payment-svc", half_open),
        ])));

        let text = svc_kit::metrics::encode(&registry);

        assert!(text.contains("# TYPE gateway_breaker_state gauge\n"), "{text}");
        assert!(
            text.contains("gateway_breaker_state{backend=\"call-svc\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("gateway_breaker_state{backend=\"payment-svc\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("gateway_breaker_state{backend=\"query-svc\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        let parse = |s: &str| parse_grpc_timeout(&s.parse().expect("ascii"));
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3_600)));
        assert_eq!(parse("10u"), Some(Duration::from_micros(10)));
        assert_eq!(parse("x"), None);
        assert_eq!(parse(""), None);
    }
}
