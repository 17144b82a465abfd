//! `loadgen otlp-sink [ADDR]`: an OTLP/gRPC trace receiver that keeps
//! nothing but counts, so the overhead benchmark can run the services with
//! tracing on without a collector (none exists offline). On SIGTERM or
//! Ctrl-C it prints how many spans and export requests it was sent.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Counts {
    spans: AtomicU64,
    exports: AtomicU64,
}

#[derive(Clone, Default)]
struct Sink(Arc<Counts>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.0.spans.fetch_add(spans as u64, Ordering::Relaxed);
        self.0.exports.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

pub(crate) async fn run(addr: &str) -> anyhow::Result<()> {
    let sink = Sink::default();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("OTLP sink on {}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink.clone()))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            svc_kit::shutdown::signal(),
        )
        .await?;
    println!(
        "OTLP sink received {} spans in {} exports",
        sink.0.spans.load(Ordering::Relaxed),
        sink.0.exports.load(Ordering::Relaxed)
    );
    Ok(())
}
