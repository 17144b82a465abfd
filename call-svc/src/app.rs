//! Builds call-svc (binds the port, connects and migrates the database, wires
//! the store, the use cases, the API, the outbox relay and the sweeper) and
//! runs it until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use outbox::Relay;
use sqlx::PgPool;
use svc_kit::identity::{Signer, Verifier};
use svc_kit::metrics::{Registry, admin::AdminPort, rpc::RpcMetrics};
use taxi_proto::{
    call::v1::call_service_server::CallServiceServer,
    dispatch::v1::dispatch_service_client::DispatchServiceClient,
    payment::v1::payment_service_client::PaymentServiceClient,
};
use tokio::net::TcpListener;
use tonic::{server::NamedService, service::Routes};

use crate::{
    config::Config,
    grpc::CallApi,
    service::{Calls, sweep},
    store::{self, Store},
};

const SERVICE_NAME: &str = <CallServiceServer<CallApi> as NamedService>::NAME;

/// A built call-svc, bound to its port and wired, but not yet serving.
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
    api: CallApi,
    relay: Relay,
    /// The use cases the sweeper runs beside the API.
    calls: Arc<Calls>,
    sweep_interval: Duration,
    health_interval: Duration,
}

impl App {
    /// Binds `config.listen_addr`, connects to PostgreSQL, applies migrations
    /// and wires every part; nothing runs until
    /// [`run_until_stopped`](Self::run_until_stopped).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let verifier = Arc::new(Verifier::from_config(&config.trust)?);
        let signer = Signer::from_config("call-svc", &config.identity)?;
        let listener = TcpListener::bind(&config.listen_addr)
            .await
            .with_context(|| format!("cannot bind {}", config.listen_addr))?;
        let local_addr = listener.local_addr()?;
        let admin = AdminPort::bind(&config.admin_addr).await?;
        let pool = svc_kit::db::connect(&config.database, store::SCHEMA, &store::MIGRATOR).await?;
        outbox::migrate(&pool).await?;
        let js = eventbus::stream::connect(&config.nats, "call-svc").await?;
        let mut registry = Registry::default();
        eventbus::stream::register_connection_metrics(&js, &mut registry);
        let relay = Relay::new(
            pool.clone(),
            js,
            config.nats.clone(),
            store::SCHEMA,
            config.relay.clone(),
        );
        let client_rpc = RpcMetrics::client();
        let dispatch =
            DispatchServiceClient::new(svc_kit::grpc::upstream(config.dispatch.channel()?, &client_rpc));
        let payment =
            PaymentServiceClient::new(svc_kit::grpc::upstream(config.payment.channel()?, &client_rpc));
        let calls = Arc::new(Calls::new(
            Store::new(pool.clone()),
            dispatch,
            payment,
            signer,
            &config,
        ));
        let api = CallApi::new(calls.clone());
        let rpc = RpcMetrics::server();
        rpc.register(&mut registry);
        client_rpc.register(&mut registry);
        svc_kit::db::register_metrics(&pool, &mut registry);
        relay.register_metrics(&mut registry);
        calls.register_metrics(&mut registry);
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
            calls,
            sweep_interval: Duration::from_millis(config.saga.sweep_interval_ms),
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

    /// Serves until `shutdown` resolves, then drains in-flight requests. The
    /// sweeper (expiry and saga recovery), the outbox relay and the health
    /// probe run beside the server and stop with it.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let served = svc_kit::grpc::serve_with_health(
            self.listener,
            Routes::new(CallServiceServer::new(self.api)),
            self.verifier,
            self.rpc,
            &[SERVICE_NAME],
            self.health_interval,
            svc_kit::db::probe(&self.pool),
            shutdown,
        );
        tokio::select! {
            served = served => served,
            () = sweep::run(self.calls, self.sweep_interval) => anyhow::bail!("sweeper stopped"),
            () = self.relay.run() => anyhow::bail!("outbox relay stopped"),
            served = self.admin.serve(self.registry) => served.and_then(|()| anyhow::bail!("admin port stopped")),
        }
    }
}
