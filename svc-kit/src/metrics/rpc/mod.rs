//! Per-RPC metrics, server side and client side, as a tower layer, under the
//! names go-grpc-prometheus gave them, so the gRPC ecosystem's dashboards
//! and alerts work unchanged:
//!
//! | server | client | labels |
//! |---|---|---|
//! | `grpc_server_started_total` | `grpc_client_started_total` | type, service, method |
//! | `grpc_server_handled_total` | `grpc_client_handled_total` | type, service, method, code |
//! | `grpc_server_handling_seconds` | `grpc_client_handling_seconds` | type, service, method |
//! | `grpc_server_msg_sent_total` | `grpc_client_msg_received_total` | type, service, method |
//! | `grpc_server_streams_open` | `grpc_client_streams_open` | service, method |
//!
//! (Every label is named `grpc_…`: `grpc_type`, `grpc_service`,
//! `grpc_method`, `grpc_code`.)
//!
//! A call is started when its request reaches the layer and handled when
//! its status is known: from the response headers for a trailers-only
//! answer (every error tonic answers before a message), else from the
//! trailers at the end of the body. A body dropped before its end (the
//! client went away, or stopped reading a stream) is CANCELLED; a request
//! that gets no response at all (on a client: refused connection, broken
//! transport) is UNAVAILABLE, or DEADLINE_EXCEEDED when the channel's own
//! timeout fired. The handling time runs until then too, so for a stream it
//! is the stream's whole life. Codes are spelled as Go's `codes.Code`
//! prints them (`OK`, `Canceled`, `InvalidArgument`, ...), which is what
//! the dashboards match on.
//!
//! Only the methods in [`methods`] get labels of their own; every other path
//! is `unknown`. On the hot path a call costs a map lookup for its labels,
//! which borrow `'static` strings from that catalogue, and atomic updates:
//! nothing is allocated beyond the response future and body the layer wraps.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use pin_project_lite::pin_project;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use tonic::{
    Code,
    codegen::{StdError, http},
};

mod body;
mod methods;

pub use body::MeteredBody;
use methods::Method;

/// The families of one side (server or client), shared by every clone of
/// the layer. Register them with [`RpcMetrics::register`]; until then (or
/// without it) they record all the same, unseen.
#[derive(Clone, Debug)]
pub struct RpcMetrics {
    families: Arc<Families>,
}

#[derive(Debug)]
struct Families {
    side: Side,
    started: Family<MethodLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    handling: Family<MethodLabels, Histogram, fn() -> Histogram>,
    messages: Family<MethodLabels, Counter>,
    streams_open: Family<StreamLabels, Gauge>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_type: &'static str,
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
}

impl From<Method> for MethodLabels {
    fn from(method: Method) -> Self {
        Self {
            grpc_type: method.kind,
            grpc_service: method.service,
            grpc_method: method.method,
        }
    }
}

/// The handling-time buckets, in seconds: Prometheus's default buckets,
/// which go-grpc-prometheus uses too, so the dashboards' quantiles compare.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn handling_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl RpcMetrics {
    /// The families of a gRPC server: `grpc_server_*`.
    pub fn server() -> Self {
        Self::new(Side::Server)
    }

    /// The families of a gRPC client: `grpc_client_*`.
    pub fn client() -> Self {
        Self::new(Side::Client)
    }

    fn new(side: Side) -> Self {
        Self {
            families: Arc::new(Families {
                side,
                started: Family::default(),
                handled: Family::default(),
                handling: Family::new_with_constructor(handling_histogram),
                messages: Family::default(),
                streams_open: Family::default(),
            }),
        }
    }

    /// Registers the families in `registry`. Register each side once per
    /// registry: the names would clash.
    pub fn register(&self, registry: &mut Registry) {
        let families = &*self.families;
        let (prefix, peer, messages, messages_help) = match families.side {
            Side::Server => (
                "grpc_server",
                "server",
                "grpc_server_msg_sent",
                "gRPC messages sent by the server, in streams and single answers",
            ),
            Side::Client => (
                "grpc_client",
                "client",
                "grpc_client_msg_received",
                "gRPC messages received by the client, in streams and single answers",
            ),
        };
        registry.register(
            format!("{prefix}_started"),
            format!("RPCs started on the {peer}"),
            families.started.clone(),
        );
        registry.register(
            format!("{prefix}_handled"),
            format!("RPCs completed on the {peer}, whatever their status"),
            families.handled.clone(),
        );
        registry.register_with_unit(
            format!("{prefix}_handling"),
            format!("Time from an RPC's start until its status on the {peer}"),
            Unit::Seconds,
            families.handling.clone(),
        );
        registry.register(messages, messages_help, families.messages.clone());
        registry.register(
            format!("{prefix}_streams_open"),
            format!("Streaming RPCs open on the {peer}"),
            families.streams_open.clone(),
        );
    }

    /// The layer recording every call through it in these families.
    pub fn layer(&self) -> RpcMetricsLayer {
        RpcMetricsLayer {
            metrics: self.clone(),
        }
    }

    /// `service` with every call through it recorded here; for a client, the
    /// `Channel` a generated client is then built on.
    pub fn wrap<S>(&self, service: S) -> Metered<S> {
        tower::Layer::layer(&self.layer(), service)
    }
}

/// Records each call through the service it wraps; see [`RpcMetrics`].
///
/// On a server, it belongs outermost, so that refusals made by other layers
/// (an identity that does not verify, an oversized message) are counted
/// with the codes the caller saw. On a client, it wraps the `Channel`; the
/// generated clients take the result as they take a channel.
#[derive(Clone, Debug)]
pub struct RpcMetricsLayer {
    metrics: RpcMetrics,
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metered {
            inner,
            families: self.metrics.families.clone(),
        }
    }
}

/// A service whose calls are recorded; built by [`RpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct Metered<S> {
    inner: S,
    families: Arc<Families>,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Metered<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Into<StdError>,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = StdError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let call = enabled().then(|| {
            let method = methods::lookup(request.uri().path());
            Call::start(self.families.clone(), method)
        });
        ResponseFuture {
            inner: self.inner.call(request),
            call,
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether calls are recorded: always, unless the process was started with
/// `TAXI_RPC_METRICS=off`, which exists to measure what recording costs
/// (see the README's benchmarks) and leaves these families empty.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Reads `TAXI_RPC_METRICS` (`off` stops recording); once, at start-up.
pub fn configure_from_env() {
    let off = std::env::var("TAXI_RPC_METRICS").is_ok_and(|value| value.eq_ignore_ascii_case("off"));
    ENABLED.store(!off, Ordering::Relaxed);
}

pin_project! {
    /// The response of a [`Metered`] service; dropped before it is ready, it
    /// records the call as CANCELLED.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    E: Into<StdError>,
{
    type Output = Result<http::Response<MeteredBody<ResBody>>, StdError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answered = std::task::ready!(this.inner.poll(cx));
        let Some(mut call) = this.call.take() else {
            // Recording is off, or polled again after it was ready (tonic
            // never does that): pass the answer on unrecorded.
            return Poll::Ready(
                answered
                    .map(|response| response.map(MeteredBody::passing))
                    .map_err(Into::into),
            );
        };
        Poll::Ready(match answered {
            Ok(response) => {
                if let Some(code) = status_in(response.headers()).or_else(|| http_failure(response.status()))
                {
                    call.finish(code);
                    Ok(response.map(MeteredBody::passing))
                } else {
                    Ok(response.map(|body| MeteredBody::watching(body, call)))
                }
            }
            Err(error) => {
                let error = error.into();
                call.finish(code_of_error(&*error));
                Err(error)
            }
        })
    }
}

/// One call from its start until it is recorded as handled, with the status
/// given to [`Call::finish`], or CANCELLED if it is dropped first.
pub(super) struct Call {
    families: Arc<Families>,
    method: Method,
    started: Instant,
    finished: bool,
}

impl Call {
    fn start(families: Arc<Families>, method: Method) -> Self {
        families.started.get_or_create(&MethodLabels::from(method)).inc();
        if method.streams() {
            families
                .streams_open
                .get_or_create(&StreamLabels {
                    grpc_service: method.service,
                    grpc_method: method.method,
                })
                .inc();
        }
        Self {
            families,
            method,
            started: Instant::now(),
            finished: false,
        }
    }

    /// The counter of this call's messages (sent on a server, received on
    /// a client).
    fn messages(&self) -> Counter {
        self.families
            .messages
            .get_or_create_owned(&MethodLabels::from(self.method))
    }

    /// Records the call as handled with `code`; only the first status
    /// counts.
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let method = self.method;
        let families = &self.families;
        families
            .handled
            .get_or_create(&HandledLabels {
                grpc_type: method.kind,
                grpc_service: method.service,
                grpc_method: method.method,
                grpc_code: code_name(code),
            })
            .inc();
        families
            .handling
            .get_or_create(&MethodLabels::from(method))
            .observe(self.started.elapsed().as_secs_f64());
        if method.streams() {
            families
                .streams_open
                .get_or_create(&StreamLabels {
                    grpc_service: method.service,
                    grpc_method: method.method,
                })
                .dec();
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// The `grpc-status` in `headers` (response headers or trailers), if any.
fn status_in(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|value| Code::from_bytes(value.as_bytes()))
}

/// The code gRPC gives an HTTP answer other than 200 that carries no
/// `grpc-status` (a proxy's, say), per gRPC's HTTP-to-gRPC status mapping.
fn http_failure(status: http::StatusCode) -> Option<Code> {
    use http::StatusCode as Http;
    Some(match status {
        Http::OK => return None,
        Http::BAD_REQUEST => Code::Internal,
        Http::UNAUTHORIZED => Code::Unauthenticated,
        Http::FORBIDDEN => Code::PermissionDenied,
        Http::NOT_FOUND => Code::Unimplemented,
        Http::TOO_MANY_REQUESTS | Http::BAD_GATEWAY | Http::SERVICE_UNAVAILABLE | Http::GATEWAY_TIMEOUT => {
            Code::Unavailable
        }
        _ => Code::Unknown,
    })
}

/// The code of a call that failed with `error` instead of an answer: the
/// status it carries, DEADLINE_EXCEEDED for the channel's own timeout, else
/// UNAVAILABLE (the connection failed).
fn code_of_error(error: &(dyn std::error::Error + 'static)) -> Code {
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(status) = error.downcast_ref::<tonic::Status>() {
            return status.code();
        }
        if error.is::<tonic::TimeoutExpired>() {
            return Code::DeadlineExceeded;
        }
        source = error.source();
    }
    Code::Unavailable
}

/// `code` as Go's `codes.Code` spells it, which go-grpc-prometheus exports
/// and the dashboards match on.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_go_spells_them() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::InvalidArgument), "InvalidArgument");
        assert_eq!(code_name(Code::Unavailable), "Unavailable");
    }

    #[test]
    fn the_status_is_read_from_headers_or_trailers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_in(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_in(&headers), Some(Code::NotFound));
    }

    #[test]
    fn an_http_failure_without_a_grpc_status_gets_grpcs_mapping() {
        assert_eq!(http_failure(http::StatusCode::OK), None);
        assert_eq!(
            http_failure(http::StatusCode::SERVICE_UNAVAILABLE),
            Some(Code::Unavailable)
        );
        assert_eq!(
            http_failure(http::StatusCode::NOT_FOUND),
            Some(Code::Unimplemented)
        );
        assert_eq!(http_failure(http::StatusCode::IM_A_TEAPOT), Some(Code::Unknown));
    }

    #[test]
    fn a_failure_without_an_answer_is_unavailable_unless_it_says_otherwise() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(code_of_error(&refused), Code::Unavailable);
        assert_eq!(
            code_of_error(&tonic::Status::permission_denied("no")),
            Code::PermissionDenied
        );
    }

    #[test]
    fn both_sides_register_in_one_registry_without_clashing() {
        let mut registry = Registry::default();
        for side in [RpcMetrics::server(), RpcMetrics::client()] {
            side.register(&mut registry);
            // A family shows once it has a member.
            let mut call = Call::start(
                side.families.clone(),
                methods::lookup("/grpc.health.v1.Health/Watch"),
            );
            call.messages().inc();
            call.finish(Code::Ok);
        }

        let text = crate::metrics::encode(&registry);

        for name in [
            "grpc_server_started",
            "grpc_server_handled",
            "grpc_server_handling_seconds",
            "grpc_server_msg_sent",
            "grpc_server_streams_open",
            "grpc_client_started",
            "grpc_client_handled",
            "grpc_client_handling_seconds",
            "grpc_client_msg_received",
            "grpc_client_streams_open",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} in {text}");
        }
    }
}
