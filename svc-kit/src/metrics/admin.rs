//! The admin port: a plain HTTP/1.1 server answering `GET /metrics` with
//! the registry's OpenMetrics text, and 404 to anything else.
//!
//! It is a port of its own, not a route beside the gRPC ones, so a scraper
//! needs neither HTTP/2 nor an identity token, and a busy gRPC server does
//! not delay the scrape that would show it is busy.

use std::{future::Future, sync::Arc};

use axum::{
    Router,
    http::{Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;

use super::{CONTENT_TYPE, Registry, encode};

/// Serves `registry` on `listener` until `shutdown` resolves, then lets the
/// scrapes in flight finish.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new().fallback(move |method: Method, uri: Uri| {
        let registry = registry.clone();
        async move { answer(&method, &uri, &registry) }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

fn answer(method: &Method, uri: &Uri, registry: &Registry) -> Response {
    if method == Method::GET && uri.path() == "/metrics" {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], encode(registry)).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
