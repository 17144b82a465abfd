//! The admin port: a plain HTTP/1.1 server answering `GET /metrics` with
//! the registry's OpenMetrics text, and 404 to anything else.
//!
//! It is a port of its own, not a route beside the gRPC ones, so a scraper
//! needs neither HTTP/2 nor an identity token, and a busy gRPC server does
//! not delay the scrape that would show it is busy.

use std::{
    future::{Future, IntoFuture as _},
    net::SocketAddr,
    sync::Arc,
};

use anyhow::Context as _;

use axum::{
    Router,
    http::{Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;

use super::{CONTENT_TYPE, Registry, encode};

/// A service's admin port, bound while the service is built and served
/// beside its gRPC port for as long as that one runs.
#[derive(Debug)]
pub struct AdminPort {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl AdminPort {
    /// Binds `addr` (port 0 picks a free one).
    pub async fn bind(addr: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind the admin port {addr}"))?;
        let local_addr = listener.local_addr()?;
        Ok(Self { listener, local_addr })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `registry` until dropped (the service's `select!` drops it
    /// once its gRPC server has drained).
    pub async fn serve(self, registry: Arc<Registry>) -> anyhow::Result<()> {
        serve(self.listener, registry, std::future::pending()).await
    }
}

/// Serves `registry` on `listener` until `shutdown` resolves.
///
/// It then stops taking connections; a scrape already in flight finishes on
/// its own task. (Not axum's graceful shutdown, which would want `shutdown`
/// to be `Send + 'static`; a scrape is too short to be worth waiting for.)
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let app = Router::new().fallback(move |method: Method, uri: Uri| {
        let registry = registry.clone();
        async move { answer(&method, &uri, &registry) }
    });
    tokio::select! {
        served = axum::serve(listener, app).into_future() => served?,
        () = shutdown => {}
    }
    Ok(())
}

fn answer(method: &Method, uri: &Uri, registry: &Registry) -> Response {
    if method == Method::GET && uri.path() == "/metrics" {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], encode(registry)).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
