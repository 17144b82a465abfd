//! A span per gRPC call, server side and client side, as a tower layer.
//!
//! On a server the span continues the caller's trace from the request's
//! `traceparent`; on a client it is a child of whatever span makes the call
//! and its context replaces the request's `traceparent`, so the next hop
//! continues from here. Spans are named and attributed as OpenTelemetry's
//! RPC conventions say (`taxi.call.v1.CallService/RequestCall`,
//! `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`), and a
//! call ends when its response headers arrive: for a unary call that is its
//! whole work, for a stream its opening.
//!
//! While tracing is off (see [`super::trace::enabled`]) the layer passes
//! every call through untouched, as it does health checks and reflection
//! (`/grpc.…`) and a client's calls made outside any span (a health poll).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use pin_project_lite::pin_project;
use tonic::{Code, codegen::http};
use tracing::{Span, field::Empty};

use super::trace;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

/// Wraps a service in [`Traced`]: [`TraceLayer::server`] around a server's
/// routes, [`TraceLayer::client`] around a channel to another service.
#[derive(Clone, Copy, Debug)]
pub struct TraceLayer {
    side: Side,
}

impl TraceLayer {
    /// Spans for the calls a server answers.
    pub fn server() -> Self {
        Self { side: Side::Server }
    }

    /// Spans for the calls a client makes.
    pub fn client() -> Self {
        Self { side: Side::Client }
    }
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Traced {
            inner,
            side: self.side,
        }
    }
}

/// A service whose calls are spans; built by [`TraceLayer`].
#[derive(Clone, Debug)]
pub struct Traced<S> {
    inner: S,
    side: Side,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Traced<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TracedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        if !traced(self.side, request.uri().path()) {
            return TracedFuture {
                inner: self.inner.call(request),
                span: None,
                side: self.side,
            };
        }
        let span = span_for(self.side, request.uri().path());
        match self.side {
            Side::Server => trace::continue_from_headers(&span, request.headers()),
            Side::Client => trace::inject_headers(&span, request.headers_mut()),
        }
        // The handler (or the next layer) runs inside the span.
        let inner = span.in_scope(|| self.inner.call(request));
        TracedFuture {
            inner,
            span: Some(span),
            side: self.side,
        }
    }
}

/// Whether a call to `path` is worth a span: only while tracing is on, on a
/// server not the health checks and reflection the platform itself makes,
/// and on a client only inside a span (a call made for a request or an
/// event), so that a background poll does not start a trace of its own.
fn traced(side: Side, path: &str) -> bool {
    trace::enabled()
        && match side {
            Side::Server => !path.starts_with("/grpc."),
            Side::Client => !Span::current().is_none(),
        }
}

/// The span of one call to `path` (`/package.Service/Method`).
fn span_for(side: Side, path: &str) -> Span {
    let name = path.trim_start_matches('/');
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    match side {
        Side::Server => tracing::info_span!(
            "grpc.server",
            otel.name = name,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
            trace_id = Empty,
        ),
        Side::Client => tracing::info_span!(
            "grpc.client",
            otel.name = name,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
        ),
    }
}

pin_project! {
    /// The response of a [`Traced`] service; the span ends with it.
    pub struct TracedFuture<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
        side: Side,
    }
}

impl<F, ResBody, E> Future for TracedFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(span) = this.span.as_ref() else {
            return this.inner.poll(cx);
        };
        let answered = std::task::ready!(span.in_scope(|| this.inner.poll(cx)));
        let code = match &answered {
            // A trailers-only answer (every error answered before a message)
            // carries its status in the headers; otherwise the call got as
            // far as its first message, which is OK so far.
            Ok(response) => response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok()?.parse::<i32>().ok())
                .map_or(Code::Ok, Code::from),
            // A client whose call never got an answer (refused, broken,
            // timed out).
            Err(_) => Code::Unavailable,
        };
        span.record("rpc.grpc.status_code", code as i32);
        if is_error(*this.side, code) {
            span.record("otel.status_code", "ERROR");
        }
        Poll::Ready(answered)
    }
}

/// Whether `code` marks the span as failed: on a client every code but OK;
/// on a server only those that say the server failed, not the caller (as
/// OpenTelemetry's gRPC conventions have it).
fn is_error(side: Side, code: Code) -> bool {
    match side {
        Side::Client => code != Code::Ok,
        Side::Server => matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_fails_only_for_its_own_faults_and_a_client_for_any() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::PermissionDenied,
            Code::FailedPrecondition,
        ] {
            assert!(!is_error(Side::Server, code), "{code:?} is the caller's");
            assert!(is_error(Side::Client, code), "{code:?} failed the call");
        }
        for code in [Code::Internal, Code::Unavailable, Code::DeadlineExceeded] {
            assert!(is_error(Side::Server, code), "{code:?}");
        }
        assert!(!is_error(Side::Server, Code::Ok) && !is_error(Side::Client, Code::Ok));
    }

    #[test]
    fn health_checks_and_reflection_are_never_traced() {
        trace::set_enabled(true);
        assert!(!traced(Side::Server, "/grpc.health.v1.Health/Check"));
        assert!(!traced(
            Side::Server,
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(traced(Side::Server, "/taxi.call.v1.CallService/RequestCall"));
        // Outside any span, a client's call starts no trace of its own.
        assert!(!traced(Side::Client, "/taxi.call.v1.CallService/RequestCall"));
    }
}
