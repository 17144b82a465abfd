//! Traces: the OTLP pipeline [`super::init`] installs, and carrying a span's
//! context across processes in W3C Trace Context (`traceparent`,
//! `tracestate`): in gRPC metadata ([`super::rpc`]), in an outbox row and in
//! NATS message headers (the outbox and eventbus crates, through
//! [`inject`], [`continue_trace`] and [`current_traceparent`]).
//!
//! Every helper here does nothing while tracing is off, so callers need not
//! check; the spans themselves are the callers', made only when
//! [`enabled`].

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator as _},
    trace::{TraceContextExt as _, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    runtime,
    trace::{SdkTracer, SdkTracerProvider, span_processor_with_async_runtime::BatchSpanProcessor},
};
use tonic::codegen::http::{HeaderMap, HeaderName, HeaderValue};
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt as _};
use tracing_subscriber::registry::LookupSpan;

/// The header a span's context travels in (and the outbox column keeping it).
pub const TRACEPARENT: &str = "traceparent";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces; spans worth making only for a trace
/// are made only then.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub(super) fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether the environment names an OTLP collector for traces.
pub(super) fn exporting() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty()))
}

/// The tracer provider exporting `service`'s spans over OTLP/gRPC, in
/// batches sent from a task on the current Tokio runtime. (The SDK's default
/// batch processor exports from a thread of its own, where tonic finds no
/// runtime.) Endpoint, sampler and batching come from the `OTEL_*`
/// environment.
pub(super) fn provider(service: &'static str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    let batches = BatchSpanProcessor::builder(exporter, runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_resource(resource.build())
        .build())
}

/// The `tracing` layer turning spans into OpenTelemetry spans of `provider`.
pub(super) fn layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("taxi"))
        // Source locations and thread names on every span cost more than
        // they tell; the span names and attributes say where it was.
        .with_location(false)
        .with_threads(false)
}

/// Makes `span` a child of the remote span whose context `get` finds by
/// header name, when there is one, and notes the trace's id in the span's
/// `trace_id` field (declare it `trace_id = tracing::field::Empty`), so every
/// log line inside carries it. Call it before the span is first entered.
pub fn continue_trace<'a>(span: &Span, get: impl Fn(&str) -> Option<&'a str>) {
    if !enabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Getter(get, std::marker::PhantomData));
    if parent.span().span_context().is_valid() {
        // Fails only for a span no layer records (filtered out): nothing to do.
        let _ = span.set_parent(parent);
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// [`continue_trace`] from a carrier that kept only a `traceparent` (an
/// outbox row, a change notification).
pub fn continue_from_traceparent(span: &Span, traceparent: &str) {
    continue_trace(span, |name| (name == TRACEPARENT).then_some(traceparent));
}

/// [`continue_trace`] from the metadata of a gRPC request.
pub fn continue_from_headers(span: &Span, headers: &HeaderMap) {
    continue_trace(span, |name| {
        headers.get(name).and_then(|value| value.to_str().ok())
    });
}

/// Hands `span`'s context to `set`, header by header, for the next process.
pub fn inject(span: &Span, set: impl FnMut(&str, String)) {
    if !enabled() {
        return;
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut Setter(set));
}

/// [`inject`] into the metadata of a gRPC request, replacing whatever
/// context it carried (the caller's caller's).
pub fn inject_headers(span: &Span, headers: &mut HeaderMap) {
    inject(span, |name, value| {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    });
}

/// The current span's `traceparent`, for a carrier that keeps one value (an
/// outbox row); `None` while tracing is off or outside any trace (an unsampled
/// trace has one too, flagged so, and its decision travels with it).
pub fn current_traceparent() -> Option<String> {
    let mut traceparent = None;
    inject(&Span::current(), |name, value| {
        if name == TRACEPARENT {
            traceparent = Some(value);
        }
    });
    traceparent
}

/// A carrier read through `F`; `'a` is what its values borrow, which outlives
/// any borrow of the getter.
struct Getter<'a, F>(F, std::marker::PhantomData<&'a str>);

impl<'a, F: Fn(&str) -> Option<&'a str>> Extractor for Getter<'a, F> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }

    fn keys(&self) -> Vec<&str> {
        // Only the W3C propagator reads this carrier, and it asks by name.
        Vec::new()
    }
}

struct Setter<F>(F);

impl<F: FnMut(&str, String)> Injector for Setter<F> {
    fn set(&mut self, key: &str, value: String) {
        (self.0)(key, value);
    }
}
