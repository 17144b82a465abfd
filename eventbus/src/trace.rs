//! A span's trace context in NATS message headers (W3C `traceparent`), so
//! that a consumer's span continues the trace of the publish that caused it.
//! Both do nothing while tracing is off.

use async_nats::{HeaderMap, jetstream::message::PublishMessage};
use svc_kit::telemetry::trace;
use tracing::Span;

/// `publish` carrying `span`'s context.
pub fn inject(span: &Span, mut publish: PublishMessage) -> PublishMessage {
    let mut context = Vec::with_capacity(1);
    trace::inject(span, |name, value| context.push((name.to_owned(), value)));
    for (name, value) in context {
        publish = publish.header(name, value);
    }
    publish
}

/// Makes `span` continue the trace in a message's `headers`, if any.
pub fn continue_from(span: &Span, headers: Option<&HeaderMap>) {
    trace::continue_trace(span, |name| {
        headers
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str())
    });
}
