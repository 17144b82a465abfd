//! Builds the gateway (routes, upstream channels, authenticator, limits) and
//! serves gRPC and gRPC-web on one port until shutdown, and the browser app
//! (plus, in development, the dev token path) on a plain HTTP port beside it.
//!
//! One Prometheus registry holds everything the gateway records: the
//! `grpc_server_*` families of every public call, the `grpc_client_*` ones of
//! every attempt at a backend, and the gateway's own (`gateway_*`, see the
//! components); `GET /metrics` on the HTTP port serves it.

use std::{collections::HashMap, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use svc_kit::{
    identity::Signer,
    metrics::{Registry, rpc::RpcMetrics},
    telemetry::rpc::TraceLayer,
};
use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::{
    ServingStatus, pb::HealthCheckRequest, pb::health_client::HealthClient, server::HealthReporter,
};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    auth::Authenticator,
    config::{Config, DEV_SECRET},
    limits::{RateLimiter, ShedAsUnavailableLayer, StreamLimiter},
    proxy::{Proxy, ProxyMetrics, PublicApi, Upstream},
    routes::{Backend, RouteTable, public_descriptors},
};

/// A built gateway, bound to its port but not yet serving.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    http_listener: TcpListener,
    http_addr: SocketAddr,
    proxy: Arc<Proxy>,
    /// Records every public call, with the code its client got.
    server_metrics: RpcMetrics,
    /// Counts the requests the concurrency limit sheds.
    shed: ShedAsUnavailableLayer,
    registry: Arc<Registry>,
    config: Config,
}

impl App {
    /// Binds `config.listen_addr` and `config.http_addr`, reads the key
    /// material and prepares a lazy channel to every backend (nothing is
    /// contacted yet).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        if config.auth.jwks_file.is_empty()
            && config.auth.rs256_public_key_file.is_empty()
            && config.auth.hs256_secret.expose() == DEV_SECRET
        {
            tracing::warn!(
                "verifying tokens with the development secret; set GATEWAY_AUTH__HS256_SECRET outside a dev machine"
            );
        }
        let listener = TcpListener::bind(&config.listen_addr)
            .await
            .with_context(|| format!("cannot bind {}", config.listen_addr))?;
        let local_addr = listener.local_addr()?;
        let http_listener = TcpListener::bind(&config.http_addr)
            .await
            .with_context(|| format!("cannot bind {}", config.http_addr))?;
        let http_addr = http_listener.local_addr()?;
        let limits = &config.limits;
        let client_metrics = RpcMetrics::client();
        let proxy_metrics = ProxyMetrics::default();
        let mut upstreams = HashMap::new();
        for backend in Backend::ALL {
            let upstream = Upstream::new(
                backend,
                config.backends.get(backend).channel()?,
                svc_kit::breaker::CircuitBreaker::new(
                    limits.breaker_failure_threshold,
                    Duration::from_millis(limits.breaker_open_ms),
                ),
                &client_metrics,
                &proxy_metrics,
            );
            upstreams.insert(backend, upstream);
        }
        let proxy = Arc::new(Proxy {
            routes: RouteTable::from_descriptors(limits)?,
            upstreams,
            auth: Authenticator::from_config(&config.auth)?,
            signer: Signer::from_config("gateway-grpc-web", &config.identity)?,
            limiter: RateLimiter::new(limits.rate_per_second, limits.burst),
            streams: StreamLimiter::new(limits.max_streams_per_subject),
            read_retries: limits.read_retries,
            metrics: proxy_metrics,
        });
        let server_metrics = RpcMetrics::server();
        let shed = ShedAsUnavailableLayer::default();
        let mut registry = Registry::default();
        server_metrics.register(&mut registry);
        client_metrics.register(&mut registry);
        proxy.register_metrics(&mut registry);
        shed.register_metrics(&mut registry);
        Ok(Self {
            listener,
            local_addr,
            http_listener,
            http_addr,
            proxy,
            server_metrics,
            shed,
            registry: Arc::new(registry),
            config,
        })
    }

    /// Every metric the gateway records, as `GET /metrics` serves them.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The address the gateway listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the plain HTTP port: the browser app and, in
    /// development, `POST /dev/token` (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests for at
    /// most `drain_grace_ms`. Backend health is followed beside it.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status("", ServingStatus::Serving).await;
        let public = public_descriptors()?;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_file_descriptor_set(public.clone())
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let mut router = Routes::new(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .into_axum_router();
        for backend in Backend::ALL {
            let path = format!("/{}/{{*method}}", backend.service());
            router = router.route_service(&path, PublicApi(self.proxy.clone()));
        }
        let routes = Routes::from(router);

        let limits = &self.config.limits;
        let server = Server::builder()
            // Browsers speak gRPC-web over HTTP/1.1 on the same port.
            .accept_http1(true)
            // Outermost: answers CORS preflights before anything else sees them.
            .layer(cors(&self.config.cors.origins()))
            // Translates gRPC-web to gRPC for everything inside, including the
            // UNAVAILABLE answers of the load shedder below.
            .layer(tonic_web::GrpcWebLayer::new())
            // Inside the translation, so a gRPC-web call's status is read
            // from gRPC trailers as any other's; outside the shedder and the
            // routes, so every refusal counts with the code the client got.
            .layer(self.server_metrics.layer())
            // The caller's trace (a phone's `traceparent`) continues here.
            .layer(TraceLayer::server())
            .layer(
                ServiceBuilder::new()
                    .layer(self.shed.clone())
                    // Refuse at once when full rather than queue: clients retry
                    // elsewhere or later, and latency stays bounded.
                    .load_shed()
                    .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                        limits.max_concurrent_requests,
                    )),
            )
            .add_routes(routes);
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        // Proxied streams (WatchCall, WatchOffers) last as long as their
        // backends keep them open, so the drain after a shutdown signal is
        // bounded: past the grace period the remaining connections are closed.
        let (stopping, mut stopped) = tokio::sync::watch::channel(false);
        let mut http_stopping = stopping.subscribe();
        let http = axum::serve(
            self.http_listener,
            crate::web::router(&self.config, self.registry.clone()),
        )
        .with_graceful_shutdown(async move {
            let _ = http_stopping.wait_for(|stopping| *stopping).await;
        });
        let signalled = async move {
            shutdown.await;
            let _ = stopping.send(true);
        };
        let grace = Duration::from_millis(self.config.drain_grace_ms);
        let grace_over = async move {
            let _ = stopped.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            // Both ports drain together; the gRPC one decides when it is over.
            served = async {
                tokio::try_join!(
                    async { server.serve_with_incoming_shutdown(incoming, signalled).await.map_err(anyhow::Error::from) },
                    async { http.await.context("the HTTP port failed") },
                )
            } => served.map(|_| ()),
            () = grace_over => {
                tracing::info!(?grace, "drain grace period over; closing open streams");
                Ok(())
            }
            () = follow_backends(health, &self.config) => anyhow::bail!("backend health monitor stopped"),
        }
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<http::HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            http::HeaderName::from_static("x-grpc-web"),
            http::HeaderName::from_static("x-user-agent"),
            http::HeaderName::from_static("grpc-timeout"),
            // W3C Trace Context, so a browser's trace continues inside.
            http::HeaderName::from_static("traceparent"),
            http::HeaderName::from_static("tracestate"),
        ])
        .expose_headers([
            http::HeaderName::from_static("grpc-status"),
            http::HeaderName::from_static("grpc-message"),
            http::HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(600))
}

/// The longest wait for a backend's health answer; no answer is NOT_SERVING.
const HEALTH_CHECK_DEADLINE: Duration = Duration::from_secs(5);

/// Reports each backend's own health under its service name, every interval.
/// Backends are followed side by side, so a hung one delays no other's status.
async fn follow_backends(health: HealthReporter, config: &Config) {
    let interval = Duration::from_millis(config.health_interval_ms);
    let mut followers = tokio::task::JoinSet::new();
    for backend in Backend::ALL {
        if let Ok(channel) = config.backends.get(backend).channel() {
            followers.spawn(follow_backend(
                health.clone(),
                backend.service(),
                HealthClient::new(channel),
                interval,
            ));
        }
    }
    // The followers run until dropped with this future.
    followers.join_next().await;
}

async fn follow_backend(
    health: HealthReporter,
    name: &'static str,
    mut client: HealthClient<svc_kit::grpc::Balanced>,
    interval: Duration,
) {
    loop {
        let request = HealthCheckRequest {
            service: name.to_owned(),
        };
        let answer = tokio::time::timeout(HEALTH_CHECK_DEADLINE, client.check(request)).await;
        let status = match answer {
            Ok(Ok(response))
                if response.get_ref().status()
                    == tonic_health::pb::health_check_response::ServingStatus::Serving =>
            {
                ServingStatus::Serving
            }
            _ => ServingStatus::NotServing,
        };
        health.set_service_status(name, status).await;
        tokio::time::sleep(interval).await;
    }
}
