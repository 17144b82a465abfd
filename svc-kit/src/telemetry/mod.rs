//! Logs and traces: one `tracing` subscriber per process, JSON when
//! deployed, and OpenTelemetry traces over OTLP when a collector is named.
//!
//! Traces follow the OpenTelemetry SDK's own environment variables, so an
//! operator sets them as for any other service:
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) | where spans go over OTLP/gRPC, e.g. `http://otel-collector:4317`; unset, tracing is off |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | e.g. `parentbased_traceidratio` and `0.1`; the default samples every trace |
//! | `OTEL_SERVICE_NAME` | the service's name in the traces; the default is the binary's (`call-svc`, ...) |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, ... | how spans are batched before export |
//!
//! With tracing off no span is made at all on the request path ([`trace`]
//! checks [`trace::enabled`] first), so it costs nothing. With it on, every
//! log line inside a traced span carries the trace's id (`trace_id`, a field
//! of the span that began the trace in this process), so logs and traces
//! meet in the collector.

use serde::{Deserialize, Serialize};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

pub mod rpc;
pub mod trace;

/// How a service logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// An `EnvFilter` directive; `RUST_LOG` takes priority when set.
    pub filter: String,
    /// One JSON object per line instead of human-readable lines.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            json: false,
        }
    }
}

/// What [`init`] installed; hold it for the life of the process and call
/// [`Telemetry::shutdown`] last, so the spans still queued are exported.
#[must_use = "dropping it loses the spans not yet exported"]
pub struct Telemetry {
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.traces else {
            return;
        };
        // The SDK blocks until its batch task, which runs on this runtime,
        // has exported; so it waits on a blocking thread, not a worker.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = stopped {
            tracing::warn!(%error, "spans may have been lost at shutdown");
        }
    }
}

/// Installs the global subscriber, with `service`'s traces exported when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Call once, at the top of `main`,
/// inside the Tokio runtime (the exporter runs on it).
pub fn init(service: &'static str, config: &LogConfig) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&config.filter))?;
    let traces = trace::exporting().then(|| trace::provider(service)).transpose()?;
    let otel = traces.as_ref().map(trace::layer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    if config.json {
        registry
            .with(fmt::layer().json().with_current_span(true))
            .try_init()?;
    } else {
        // Colours only on a terminal; log files and collectors get plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        registry.with(fmt::layer().compact().with_ansi(ansi)).try_init()?;
    }
    trace::set_enabled(traces.is_some());
    crate::metrics::rpc::configure_from_env();
    tracing::info!(
        service,
        tracing = traces.is_some(),
        rpc_metrics = crate::metrics::rpc::enabled(),
        "logging initialised"
    );
    Ok(Telemetry { traces })
}
