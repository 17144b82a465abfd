//! Builds dispatch-svc (binds the port, connects and migrates the database,
//! connects to NATS) and runs it until shutdown: the gRPC server, the outbox
//! relay, the consumer of call events that makes offers, and the cleanup of
//! expired offers.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use async_nats::jetstream;
use eventbus::consumer::Consumer;
use outbox::Relay;
use sqlx::PgPool;
use svc_kit::identity::Verifier;
use taxi_proto::dispatch::v1::dispatch_service_server::{DispatchServiceServer, SERVICE_NAME};
use tokio::{net::TcpListener, sync::watch};
use tonic::service::Routes;

use crate::{
    config::Config,
    events::{
        notify::Notifications,
        offers::{self, OFFERS_DURABLE, OfferDispatcher},
    },
    grpc::{DispatchApi, OfferStreams},
    store::{self, Store},
};

/// A built dispatch-svc, bound to its port but not yet serving.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    verifier: Arc<Verifier>,
    pool: PgPool,
    js: jetstream::Context,
    relay: Relay,
    offers_consumer: Consumer,
    config: Config,
}

impl App {
    /// Binds `config.listen_addr`, connects to PostgreSQL and applies
    /// migrations, and connects to NATS (without waiting for it).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let verifier = Arc::new(Verifier::from_config(&config.trust)?);
        let listener = TcpListener::bind(&config.listen_addr)
            .await
            .with_context(|| format!("cannot bind {}", config.listen_addr))?;
        let local_addr = listener.local_addr()?;
        let pool = svc_kit::db::connect(&config.database, store::SCHEMA, &store::MIGRATOR).await?;
        outbox::migrate(&pool).await?;
        let js = eventbus::stream::connect(&config.nats, "dispatch-svc").await?;
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
            js.clone(),
            config.nats.clone(),
            OFFERS_DURABLE,
            config.nats.subjects().aggregate("call"),
            config.offers_consumer.clone(),
        );
        Ok(Self {
            listener,
            local_addr,
            verifier,
            pool,
            js,
            relay,
            offers_consumer,
            config,
        })
    }

    /// The address the service listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The outbox relay's depth, oldest unsent age and throughput, for metrics.
    pub fn outbox_stats(&self) -> tokio::sync::watch::Receiver<outbox::RelayStats> {
        self.relay.stats()
    }

    /// Serves until `shutdown` resolves, then ends the WatchOffers streams and
    /// drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let config = &self.config;
        let store = Store::new(
            self.pool.clone(),
            Duration::from_millis(config.location_max_age_ms),
        );
        let notifications = Notifications::new(self.js.client(), &config.nats);
        // Streams never end on their own, so the server's drain would wait
        // for them forever: they end when this turns true.
        let (stopping, stopping_rx) = watch::channel(false);
        let streams = OfferStreams::new(
            store.clone(),
            notifications.clone(),
            Duration::from_millis(config.offer_resync_ms),
            stopping_rx,
        );
        let api = DispatchApi::new(store.clone(), config.availability_radius_m, streams);
        let dispatcher = OfferDispatcher::new(
            store.clone(),
            notifications,
            config.offer_policy(),
            config.offer_round_retention(),
        );
        let routes = Routes::new(DispatchServiceServer::new(api));
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        let served = svc_kit::grpc::serve_with_health(
            self.listener,
            routes,
            self.verifier.clone(),
            &[SERVICE_NAME],
            Duration::from_millis(config.health_interval_ms),
            svc_kit::db::probe(&self.pool),
            shutdown,
        );
        let cleanup = offers::clean_up(
            store,
            Duration::from_millis(config.offer_cleanup_interval_ms),
            config.offer_round_retention(),
        );
        tokio::select! {
            served = served => served,
            () = self.relay.run() => anyhow::bail!("outbox relay stopped"),
            () = self.offers_consumer.run(|event| dispatcher.handle(event)) => {
                anyhow::bail!("offers consumer stopped")
            }
            () = cleanup => anyhow::bail!("offer cleanup stopped"),
        }
    }
}
