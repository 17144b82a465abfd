//! Builds query-svc (binds the port, connects Redis and NATS, subscribes to
//! change notifications) and runs it until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use async_nats::jetstream;
use svc_kit::identity::Verifier;
use taxi_proto::query::v1::query_service_server::QueryServiceServer;
use tokio::net::TcpListener;
use tonic::{server::NamedService, service::Routes};

use crate::{config::Config, grpc::QueryApi, notify::Hub, projector::Projector, reads::Reads, store::Store};

const SERVICE_NAME: &str = <QueryServiceServer<QueryApi> as NamedService>::NAME;

/// A built query-svc, bound to its port but not yet serving.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    verifier: Arc<Verifier>,
    store: Store,
    hub: Hub,
    reads: Arc<Reads>,
    stopping: tokio::sync::watch::Sender<bool>,
    js: jetstream::Context,
    config: Config,
}

impl App {
    /// Binds `config.listen_addr`, connects to Redis (failing if it does not
    /// answer) and to NATS (in the background), and subscribes to change
    /// notifications.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let verifier = Arc::new(Verifier::from_config(&config.trust)?);
        let listener = TcpListener::bind(&config.listen_addr)
            .await
            .with_context(|| format!("cannot bind {}", config.listen_addr))?;
        let local_addr = listener.local_addr()?;
        let (store, client) = Store::connect(&config.redis).await?;
        let (hub, notifier) = Hub::connect(
            client,
            store.changes_channel(),
            Duration::from_millis(config.redis.connect_timeout_ms),
        )
        .await
        .context("cannot subscribe to change notifications")?;
        let js = eventbus::stream::connect(&config.nats, "query-svc").await?;
        let (stopping, stop_watches) = tokio::sync::watch::channel(false);
        let reads = Arc::new(Reads::new(
            store.clone(),
            notifier,
            Duration::from_millis(config.read_your_writes_timeout_ms),
            stop_watches,
        ));
        Ok(Self {
            listener,
            local_addr,
            verifier,
            store,
            hub,
            reads,
            stopping,
            js,
            config,
        })
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
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        let routes = Routes::new(QueryServiceServer::new(QueryApi::new(self.reads.clone())));
        let probe_store = self.store.clone();
        let probe = move || {
            let store = probe_store.clone();
            async move { store.ping().await }
        };
        let served = svc_kit::grpc::serve_with_health(
            self.listener,
            routes,
            self.verifier.clone(),
            &[SERVICE_NAME],
            Duration::from_millis(self.config.health_interval_ms),
            probe,
            shutdown,
        );
        // A third of ack_wait: the event is back with the consumer well before
        // the server would redeliver it anyway.
        let retry_budget = Duration::from_millis(self.config.consumer.ack_wait_ms / 3);
        let projector = Arc::new(Projector::new(self.store.clone(), retry_budget)).run(
            self.js.clone(),
            self.config.nats.clone(),
            self.config.consumer.clone(),
        );
        tokio::select! {
            served = served => served,
            () = projector => anyhow::bail!("projector stopped"),
            () = self.hub.run() => anyhow::bail!("change notification hub stopped"),
        }
    }
}
