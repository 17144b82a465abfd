//! Builds dispatch-svc and runs it until shutdown. [`App::build`] binds the
//! port, connects and migrates the database, connects to NATS and wires every
//! part: the store, the use cases, the gRPC API with its WatchOffers feeds,
//! the outbox relay, the consumer of call events that makes offers, and the
//! cleanup of expired offers. [`App::run_until_stopped`] runs those parts
//! side by side and says which one stopped.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use eventbus::consumer::Consumer;
use outbox::Relay;
use sqlx::PgPool;
use svc_kit::identity::Verifier;
use svc_kit::metrics::{Registry, admin::AdminPort, rpc::RpcMetrics};
use taxi_proto::dispatch::v1::dispatch_service_server::{DispatchServiceServer, SERVICE_NAME};
use tokio::{net::TcpListener, sync::watch};
use tonic::service::Routes;

use crate::{
    config::Config,
    events::{
        notify::Notifications,
        offers::{OFFERS_DURABLE, OfferDispatcher},
    },
    grpc::DispatchApi,
    service::{Dispatch, OfferCleanup, OfferStreams, Settings},
    store::{self, Store},
};

/// A built dispatch-svc, bound to its port but not yet serving.
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
    pool: PgPool,
    health_interval: Duration,
    api: DispatchApi,
    /// Turned true at shutdown, which ends the WatchOffers feeds.
    stopping: watch::Sender<bool>,
    relay: Relay,
    offers_consumer: Consumer,
    dispatcher: OfferDispatcher,
    cleanup: OfferCleanup,
}

impl App {
    /// Binds `config.listen_addr`, connects to PostgreSQL and applies
    /// migrations, connects to NATS (without waiting for it), and wires the
    /// parts that [`App::run_until_stopped`] runs.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let verifier = Arc::new(Verifier::from_config(&config.trust)?);
        let listener = TcpListener::bind(&config.listen_addr)
            .await
            .with_context(|| format!("cannot bind {}", config.listen_addr))?;
        let local_addr = listener.local_addr()?;
        let admin = AdminPort::bind(&config.admin_addr).await?;
        let pool = svc_kit::db::connect(&config.database, store::SCHEMA, &store::MIGRATOR).await?;
        outbox::migrate(&pool).await?;
        let js = eventbus::stream::connect(&config.nats, "dispatch-svc").await?;
        let mut registry = Registry::default();
        eventbus::stream::register_connection_metrics(&js, &mut registry);

        let store = Store::new(pool.clone());
        let notifications = Notifications::new(js.client(), &config.nats);
        let dispatch = Dispatch::new(
            store.clone(),
            notifications.clone(),
            Settings {
                offers: config.offer_policy(),
                round_retention: config.offer_round_retention(),
                location_max_age: Duration::from_millis(config.location_max_age_ms),
            },
        );
        // Feeds never end on their own, so the server's drain would wait for
        // them forever: they end when this turns true.
        let (stopping, stopping_rx) = watch::channel(false);
        let streams = OfferStreams::new(
            store,
            notifications,
            Duration::from_millis(config.offer_resync_ms),
            stopping_rx,
        );
        let api = DispatchApi::new(dispatch.clone(), config.availability_radius_m, streams);

        let relay = Relay::new(
            pool.clone(),
            js.clone(),
            config.nats.clone(),
            store::SCHEMA,
            config.relay.clone(),
        );
        // Durable, so a restarted (or another) replica resumes where the
        // consumer left off; replicas share its messages.
        let offers_consumer = Consumer::new(
            js,
            config.nats.clone(),
            OFFERS_DURABLE,
            config.nats.subjects().aggregate("call"),
            config.offers_consumer.clone(),
        );
        let dispatcher = OfferDispatcher::new(dispatch.clone());
        let cleanup = OfferCleanup::new(dispatch, Duration::from_millis(config.offer_cleanup_interval_ms));
        let rpc = RpcMetrics::server();
        rpc.register(&mut registry);
        svc_kit::db::register_metrics(&pool, &mut registry);
        relay.register_metrics(&mut registry);
        offers_consumer.register_metrics(&mut registry);
        Ok(Self {
            listener,
            local_addr,
            admin,
            registry: Arc::new(registry),
            rpc,
            verifier,
            pool,
            health_interval: Duration::from_millis(config.health_interval_ms),
            api,
            stopping,
            relay,
            offers_consumer,
            dispatcher,
            cleanup,
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

    /// The outbox relay's depth, oldest unsent age and throughput, for metrics.
    pub fn outbox_stats(&self) -> tokio::sync::watch::Receiver<outbox::RelayStats> {
        self.relay.stats()
    }

    /// Serves until `shutdown` resolves, then ends the WatchOffers feeds and
    /// drains in-flight requests. Returns early with an error if a background
    /// part stops.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            listener,
            admin,
            registry,
            rpc,
            verifier,
            pool,
            health_interval,
            api,
            stopping,
            relay,
            offers_consumer,
            dispatcher,
            cleanup,
            ..
        } = self;
        let routes = Routes::new(DispatchServiceServer::new(api));
        // The offers consumer hands back what it holds when the service
        // stops, so that another replica offers those calls at once.
        let offers_consumer = offers_consumer.stop_when(stopping.subscribe());
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        let served = svc_kit::grpc::serve_with_health(
            listener,
            routes,
            verifier,
            rpc,
            &[SERVICE_NAME],
            health_interval,
            svc_kit::db::probe(&pool),
            shutdown,
        );
        let offering = offers_consumer.run(|event| dispatcher.handle(event));
        tokio::select! {
            // Both drain on shutdown: the requests in flight and the events.
            (served, ()) = async { tokio::join!(served, offering) } => served,
            () = relay.run() => anyhow::bail!("outbox relay stopped"),
            () = cleanup.run() => anyhow::bail!("offer cleanup stopped"),
            served = admin.serve(registry) => served.and_then(|()| anyhow::bail!("admin port stopped")),
        }
    }
}
