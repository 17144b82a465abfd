//! Builds query-svc (binds the port, connects Redis and NATS, subscribes to
//! change notifications, wires the reads, the API and the projector) and runs
//! it until shutdown; and the one-shot `query-svc rebuild`.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use eventbus::consumer::Consumer;
use svc_kit::identity::Verifier;
use svc_kit::metrics::{
    Registry, admin::AdminPort, prometheus_client::metrics::gauge::Gauge, rpc::RpcMetrics,
};
use taxi_proto::query::v1::query_service_server::QueryServiceServer;
use tokio::{net::TcpListener, sync::watch};
use tonic::{server::NamedService, service::Routes};

use crate::{
    config::Config,
    events::{
        projector::{self, Projector},
        replay::EventLog,
    },
    grpc::QueryApi,
    service::{
        Reads,
        rebuild::{self, RebuildReport},
    },
    store::{Store, notify::Hub},
};

const SERVICE_NAME: &str = <QueryServiceServer<QueryApi> as NamedService>::NAME;

/// A built query-svc, bound to its port but not yet serving.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// `GET /metrics`, served beside the gRPC port.
    admin: AdminPort,
    /// Every metric this process records.
    registry: Arc<Registry>,
    /// Recorded by the gRPC server for every call.
    rpc: RpcMetrics,
    verifier: Arc<Verifier>,
    /// Kept for the health probe.
    store: Store,
    /// 1 while the health probe's PING to Redis is answered.
    redis_up: Gauge,
    api: QueryApi,
    hub: Hub,
    projector: Arc<Projector>,
    consumer: Consumer,
    /// Tells open watches that the server is draining.
    stopping: watch::Sender<bool>,
    health_interval: Duration,
}

impl App {
    /// Binds `config.listen_addr`, connects to Redis (failing if it does not
    /// answer) and to NATS (in the background), subscribes to change
    /// notifications, and builds the reads, the API and the projector.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let verifier = Arc::new(Verifier::from_config(&config.trust)?);
        let listener = TcpListener::bind(&config.listen_addr)
            .await
            .with_context(|| format!("cannot bind {}", config.listen_addr))?;
        let local_addr = listener.local_addr()?;
        let admin = AdminPort::bind(&config.admin_addr).await?;
        let (store, client) = Store::connect(&config.redis).await?;
        let (hub, notifier) = Hub::connect(
            client,
            store.changes_channel(),
            Duration::from_millis(config.redis.connect_timeout_ms),
        )
        .await
        .context("cannot subscribe to change notifications")?;
        let js = eventbus::stream::connect(&config.nats, "query-svc").await?;
        let mut registry = Registry::default();
        eventbus::stream::register_connection_metrics(&js, &mut registry);
        let (stopping, stop_watches) = watch::channel(false);
        let reads = Arc::new(Reads::new(
            store.clone(),
            notifier,
            Duration::from_millis(config.read_your_writes_timeout_ms),
            stop_watches,
        ));
        let api = QueryApi::new(reads);
        // A third of ack_wait: the event is back with the consumer well before
        // the server would redeliver it anyway.
        let retry_budget = Duration::from_millis(config.consumer.ack_wait_ms / 3);
        let projector = Arc::new(Projector::new(store.clone(), retry_budget));
        let consumer = projector::consumer(js, config.nats.clone(), config.consumer.clone());
        let rpc = RpcMetrics::server();
        rpc.register(&mut registry);
        consumer.register_metrics(&mut registry);
        projector.register_metrics(&mut registry);
        let redis_up = Gauge::default();
        registry.register(
            "redis_up",
            "1 while Redis answers the health probe's PING, 0 while it does not",
            redis_up.clone(),
        );
        Ok(Self {
            listener,
            local_addr,
            admin,
            registry: Arc::new(registry),
            rpc,
            verifier,
            store,
            redis_up,
            api,
            hub,
            projector,
            consumer,
            stopping,
            health_interval: Duration::from_millis(config.health_interval_ms),
        })
    }

    /// The address of the admin port (`GET /metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// Every metric this process records, as the admin port serves them.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The address the service listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests. The
    /// projector and the notification hub run beside the server and stop
    /// with it.
    ///
    /// Open `WatchCall` streams end with UNAVAILABLE when the drain starts:
    /// they could otherwise hold the drain open for as long as a trip lasts,
    /// and the client resumes on another replica with `from_version`.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let stopping = self.stopping;
        // The projector hands back what it holds when the service stops, so
        // that another replica projects it at once.
        let consumer = self.consumer.stop_when(stopping.subscribe());
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        let (store, redis_up) = (self.store, self.redis_up);
        let probe = move || {
            let (store, redis_up) = (store.clone(), redis_up.clone());
            async move {
                let answered = store.ping().await;
                redis_up.set(i64::from(answered));
                answered
            }
        };
        let served = svc_kit::grpc::serve_with_health(
            self.listener,
            Routes::new(QueryServiceServer::new(self.api)),
            self.verifier,
            self.rpc,
            &[SERVICE_NAME],
            self.health_interval,
            probe,
            shutdown,
        );
        let projecting = self.projector.run(consumer);
        tokio::select! {
            // Both drain on shutdown: the requests in flight and the events.
            (served, ()) = async { tokio::join!(served, projecting) } => served,
            () = self.hub.run() => anyhow::bail!("change notification hub stopped"),
            served = self.admin.serve(self.registry) => served.and_then(|()| anyhow::bail!("admin port stopped")),
        }
    }
}

/// Rebuilds every read model from the event stream (`query-svc rebuild`):
/// connects to Redis and NATS on its own, without a running service, and
/// reports what it did.
pub async fn rebuild(config: Config) -> anyhow::Result<RebuildReport> {
    config.validate()?;
    let (store, _client) = Store::connect(&config.redis).await?;
    let log = EventLog::connect(&config.nats).await?;
    rebuild::rebuild(&store, &log).await
}
