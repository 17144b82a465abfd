//! Prometheus metrics: one explicit registry per service, the per-RPC
//! families every gRPC server and client records, and the admin port that
//! serves them.
//!
//! A service builds one [`Registry`] in `App::build`, registers its own
//! families in it (plain Prometheus names without a `taxi_` prefix, with the
//! unit as a suffix: `_seconds`, `_bytes`) together with
//! [`rpc::RpcMetrics::register`], and then freezes it as `Arc<Registry>`:
//! after start-up nothing registers anything, so scraping needs no lock
//! beyond the metrics' own.
//!
//! - [`rpc`]: a tower layer recording `grpc_server_*` (or `grpc_client_*`)
//!   under the names the gRPC ecosystem's dashboards use.
//! - [`admin`]: a plain HTTP/1.1 server answering `GET /metrics`.
//!
//! A counter is registered without its `_total` suffix, which the encoder
//! adds: prometheus-client 0.26 panics in debug builds on a counter whose
//! registered name already ends in `_total`.

pub mod admin;
pub mod rpc;

pub use prometheus_client;
pub use prometheus_client::registry::Registry;

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric in `registry` as OpenMetrics text, ending in `# EOF`.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail; the encoder only passes on the
    // writer's errors.
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::error!(%error, "cannot encode the metrics");
    }
    text
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn a_counter_is_exported_with_its_total_suffix() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("rides_requested", "Rides asked for", counter.clone());
        counter.inc();

        let text = encode(&registry);

        assert!(text.contains("# TYPE rides_requested counter\n"), "{text}");
        assert!(text.contains("rides_requested_total 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
