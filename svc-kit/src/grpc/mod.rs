//! Serving a service's gRPC routes next to `grpc.health.v1` and reflection,
//! behind identity verification, and reaching other services: every client
//! is [`Balanced`] over its backend's replicas, traced and counted
//! ([`Upstream`]).
//!
//! Bad requests are the caller's fault on every route: one that does not
//! decode is INVALID_ARGUMENT (`taxi_proto::codec`), one over the size limit
//! RESOURCE_EXHAUSTED ([`too_large_is_resource_exhausted`], here).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::net::TcpListener;
use tonic::{
    Code, Status,
    body::Body,
    codegen::http,
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};

mod balance;

pub use balance::{BalanceSettings, Balanced};

use crate::{
    identity::Verifier,
    metrics::rpc::{Metered, RpcMetrics},
    telemetry::rpc::{TraceLayer, Traced},
};

/// Adds gRPC reflection for `service_names` (fully qualified, for example
/// `taxi.call.v1.CallService`), in both the v1 and v1alpha protocols so that
/// older grpcurl builds work too.
fn with_reflection(mut routes: Routes, service_names: &[&str]) -> anyhow::Result<Routes> {
    let mut v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(taxi_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let mut v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(taxi_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for name in service_names.iter().copied().chain(["grpc.health.v1.Health"]) {
        v1 = v1.with_service_name(name);
        v1alpha = v1alpha.with_service_name(name);
    }
    routes = routes.add_service(v1.build_v1()?);
    routes = routes.add_service(v1alpha.build_v1alpha()?);
    Ok(routes)
}

/// Serves `routes` on `listener` until `shutdown` resolves, then stops taking
/// new requests and waits for in-flight ones to finish.
async fn serve(
    listener: TcpListener,
    routes: Routes,
    verifier: Arc<Verifier>,
    metrics: &RpcMetrics,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        // Outermost, so every answer is counted with the code the caller
        // got, the refusals of the layers below included.
        .layer(metrics.layer())
        // The caller's trace continues here, around everything that follows.
        .layer(TraceLayer::server())
        // Before the routes, so no handler ever sees an identity it did not
        // verify.
        .layer(tower::layer::layer_fn(move |inner| VerifyIdentity {
            inner,
            verifier: verifier.clone(),
        }))
        .layer(tower::util::MapResponseLayer::new(
            too_large_is_resource_exhausted,
        ))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Runs [`Verifier::establish`] on every request before the routes see it,
/// and answers a bad identity token with UNAUTHENTICATED itself.
#[derive(Clone)]
struct VerifyIdentity<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S> tower::Service<http::Request<Body>> for VerifyIdentity<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self.verifier.establish(request.headers_mut()) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

/// How tonic begins the status it answers a request message over its size
/// limit with (`tonic::codec::decode`, 0.14).
const TOO_LARGE: &str = "Error, decoded message length too large";

/// Answers a request message over the size limit with RESOURCE_EXHAUSTED, the
/// code gRPC gives a size limit, rather than tonic's OUT_OF_RANGE.
//
// This sits here, around the routes, because nothing nearer the message can
// see the limit: tonic compares the length in the frame header with it before
// the codec gets a byte, so `RequestCodec` never meets an oversized message.
// Enforcing the limit in the codec instead would mean lifting tonic's on every
// generated server and buffering the whole oversized message first. The
// rejection is a trailers-only answer whose `Status` tonic also leaves in the
// response's extensions, so only that status, recognised by its text, is
// rewritten; a handler's own OUT_OF_RANGE passes untouched.
fn too_large_is_resource_exhausted(mut response: http::Response<Body>) -> http::Response<Body> {
    let Some(status) = response.extensions().get::<Status>() else {
        return response;
    };
    if status.code() != Code::OutOfRange || !status.message().starts_with(TOO_LARGE) {
        return response;
    }
    let exhausted = Status::resource_exhausted(status.message().to_owned());
    if exhausted.add_header(response.headers_mut()).is_ok() {
        response.extensions_mut().insert(exhausted);
    }
    response
}

/// Serves `routes` (the service's own gRPC services, named `service_names`)
/// together with `grpc.health.v1` and reflection on `listener` until `shutdown`
/// resolves, then drains in-flight requests.
///
/// Health starts SERVING, since the service was just built against reachable
/// stores, and then follows `probe`, run every `health_interval`. Every
/// request's identity is checked by `verifier` first, and every call is
/// recorded in `metrics` (made with [`RpcMetrics::server`]; register it in
/// the service's registry to export it).
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one server, each given once at start-up"
)]
pub async fn serve_with_health<F, Fut>(
    listener: TcpListener,
    routes: Routes,
    verifier: Arc<Verifier>,
    metrics: RpcMetrics,
    service_names: &[&str],
    health_interval: Duration,
    probe: F,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let (reporter, health_service) = tonic_health::server::health_reporter();
    for name in service_names.iter().copied().chain([""]) {
        reporter.set_service_status(name, ServingStatus::Serving).await;
    }
    let routes = with_reflection(routes.add_service(health_service), service_names)?;
    tokio::select! {
        served = serve(listener, routes, verifier, &metrics, shutdown) => served,
        () = report_health(reporter, service_names, health_interval, probe) => {
            anyhow::bail!("health reporter stopped")
        }
    }
}

/// Every `interval`, runs `probe` and reports the overall status ("") and each
/// of `service_names` as SERVING only while it succeeds. Runs until dropped.
async fn report_health<F, Fut>(
    reporter: HealthReporter,
    service_names: &[&str],
    interval: Duration,
    mut probe: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut last = Some(ServingStatus::Serving);
    loop {
        tokio::time::sleep(interval).await;
        let status = if probe().await {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            tracing::info!(?status, "health changed");
            for name in service_names.iter().copied().chain([""]) {
                reporter.set_service_status(name, status).await;
            }
            last = Some(status);
        }
    }
}

/// A channel to another service as every client uses it: spread over the
/// backend's replicas ([`Balanced`]), each call a span of the caller's trace
/// (its context sent along) and counted in the client RPC metrics it was
/// made with.
pub type Upstream = Traced<Metered<Balanced>>;

/// `replicas` with their calls traced and recorded in `metrics` (made with
/// [`RpcMetrics::client`]); the generated clients take it as they take a
/// channel.
pub fn upstream(replicas: Balanced, metrics: &RpcMetrics) -> Upstream {
    tower::Layer::layer(&TraceLayer::client(), metrics.wrap(replicas))
}

/// How to reach another service. (No `Default`: a backend has no sensible
/// default address; the owning config's `Default` names it.)
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClientConfig {
    /// `http://host:port`, or several separated by commas. Every address a
    /// host name resolves to is a replica (a Kubernetes headless Service
    /// resolves to its pods), and requests spread over them all.
    pub url: String,
    /// Deadline for establishing a connection to a replica.
    pub connect_timeout_ms: u64,
    /// Deadline for every request; 0 for none (deadlines set per request).
    pub request_timeout_ms: u64,
    /// How often the host names are resolved again, to follow replicas
    /// coming and going.
    #[serde(default = "default_resolve_interval_ms")]
    pub resolve_interval_ms: u64,
}

fn default_resolve_interval_ms() -> u64 {
    5_000
}

impl ClientConfig {
    /// A client of `url` with short deadlines suited to synchronous commands.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connect_timeout_ms: 500,
            request_timeout_ms: 2_000,
            resolve_interval_ms: default_resolve_interval_ms(),
        }
    }

    /// The backend's replicas, balanced, with this configuration's deadlines
    /// (resolving starts now, on the current Tokio runtime).
    pub fn channel(&self) -> anyhow::Result<Balanced> {
        Balanced::new(BalanceSettings {
            url: self.url.clone(),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            request_timeout: (self.request_timeout_ms > 0)
                .then(|| Duration::from_millis(self.request_timeout_ms)),
            resolve_interval: Duration::from_millis(self.resolve_interval_ms.max(100)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(response: &http::Response<Body>) -> Code {
        Status::from_header_map(response.headers())
            .expect("a trailers-only answer")
            .code()
    }

    #[test]
    fn tonics_size_limit_answer_becomes_resource_exhausted() {
        let refused = Status::out_of_range(format!(
            "{TOO_LARGE}: found 5242880 bytes, the limit is: 4194304 bytes"
        ))
        .into_http::<Body>();

        let answered = too_large_is_resource_exhausted(refused);

        assert_eq!(code_of(&answered), Code::ResourceExhausted);
        let status = answered.extensions().get::<Status>().expect("the status");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("found 5242880 bytes"), "{status:?}");
    }

    #[test]
    fn other_answers_pass_untouched() {
        for status in [
            Status::out_of_range("page 7 is past the end"),
            Status::invalid_argument(TOO_LARGE),
            Status::ok(""),
        ] {
            let code = status.code();

            let answered = too_large_is_resource_exhausted(status.into_http::<Body>());

            assert_eq!(code_of(&answered), code);
        }
    }
}
