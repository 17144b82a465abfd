//! Builds payment-svc (binds the port, connects and migrates the database,
//! picks the provider, wires the store, the use cases, the API and the outbox
//! relay) and runs it until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use outbox::Relay;
use sqlx::PgPool;
use svc_kit::identity::Verifier;
use svc_kit::metrics::{Registry, admin::AdminPort, rpc::RpcMetrics};
use taxi_proto::payment::v1::payment_service_server::PaymentServiceServer;
use tokio::net::TcpListener;
use tonic::{server::NamedService, service::Routes};

use crate::{
    config::Config,
    grpc::PaymentApi,
    provider::{PaymentProvider, SimulatedProvider},
    service::Payments,
    store::{self, Store},
};

const SERVICE_NAME: &str = <PaymentServiceServer<PaymentApi> as NamedService>::NAME;

/// A built payment-svc, bound to its port and wired, but not yet serving.
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
    /// Probed for the health service.
    pool: PgPool,
    api: PaymentApi,
    relay: Relay,
    health_interval: Duration,
}

impl App {
    /// Builds the service with the simulated provider.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_provider(config, Arc::new(SimulatedProvider)).await
    }

    /// Binds `config.listen_addr`, connects to PostgreSQL, applies migrations
    /// and wires every part to charge through `provider`; nothing runs until
    /// [`run_until_stopped`](Self::run_until_stopped).
    pub async fn build_with_provider(
        config: Config,
        provider: Arc<dyn PaymentProvider>,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let verifier = Arc::new(Verifier::from_config(&config.trust)?);
        let listener = TcpListener::bind(&config.listen_addr)
            .await
            .with_context(|| format!("cannot bind {}", config.listen_addr))?;
        let local_addr = listener.local_addr()?;
        let admin = AdminPort::bind(&config.admin_addr).await?;
        let pool = svc_kit::db::connect(&config.database, store::SCHEMA, &store::MIGRATOR).await?;
        outbox::migrate(&pool).await?;
        let js = eventbus::stream::connect(&config.nats, "payment-svc").await?;
        let mut registry = Registry::default();
        eventbus::stream::register_connection_metrics(&js, &mut registry);
        let relay = Relay::new(
            pool.clone(),
            js,
            config.nats.clone(),
            store::SCHEMA,
            config.relay.clone(),
        );
        let payments = Arc::new(Payments::new(
            Store::new(pool.clone()),
            provider,
            Duration::from_millis(config.provider_timeout_ms),
        ));
        let rpc = RpcMetrics::server();
        rpc.register(&mut registry);
        svc_kit::db::register_metrics(&pool, &mut registry);
        relay.register_metrics(&mut registry);
        payments.register_metrics(&mut registry);
        let api = PaymentApi::new(payments, config.max_amount_krw);
        Ok(Self {
            listener,
            local_addr,
            admin,
            registry: Arc::new(registry),
            rpc,
            verifier,
            pool,
            api,
            relay,
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

    /// The outbox relay's depth, oldest unsent age and throughput, for metrics.
    pub fn outbox_stats(&self) -> tokio::sync::watch::Receiver<outbox::RelayStats> {
        self.relay.stats()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests. Health
    /// follows a database probe beside the server and stops with it.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let served = svc_kit::grpc::serve_with_health(
            self.listener,
            Routes::new(PaymentServiceServer::new(self.api)),
            self.verifier,
            self.rpc,
            &[SERVICE_NAME],
            self.health_interval,
            svc_kit::db::probe(&self.pool),
            shutdown,
        );
        tokio::select! {
            served = served => served,
            () = self.relay.run() => anyhow::bail!("outbox relay stopped"),
            served = self.admin.serve(self.registry) => served.and_then(|()| anyhow::bail!("admin port stopped")),
        }
    }
}
