//! Builds call-svc (binds the port, connects and migrates the database, wires
//! the store, the use cases, the API, the outbox relay and the sweeper) and
//! runs it until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use outbox::Relay;
use sqlx::PgPool;
use svc_kit::identity::{Signer, Verifier};
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
        let pool = svc_kit::db::connect(&config.database, store::SCHEMA, &store::MIGRATOR).await?;
        outbox::migrate(&pool).await?;
        let js = eventbus::stream::connect(&config.nats, "call-svc").await?;
        let relay = Relay::new(
            pool.clone(),
            js,
            config.nats.clone(),
            store::SCHEMA,
            config.relay.clone(),
        );
        let dispatch = DispatchServiceClient::new(config.dispatch.channel()?);
        let payment = PaymentServiceClient::new(config.payment.channel()?);
        let calls = Arc::new(Calls::new(
            Store::new(pool.clone()),
            dispatch,
            payment,
            signer,
            &config,
        ));
        let api = CallApi::new(calls.clone());
        Ok(Self {
            listener,
            local_addr,
            verifier,
            pool,
            api,
            relay,
            calls,
            sweep_interval: Duration::from_millis(config.saga.sweep_interval_ms),
            health_interval: Duration::from_millis(config.health_interval_ms),
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

    /// Serves until `shutdown` resolves, then drains in-flight requests. The
    /// sweeper (expiry and saga recovery), the outbox relay and the health
    /// probe run beside the server and stop with it.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let served = svc_kit::grpc::serve_with_health(
            self.listener,
            Routes::new(CallServiceServer::new(self.api)),
            self.verifier,
            svc_kit::metrics::rpc::RpcMetrics::server(),
            &[SERVICE_NAME],
            self.health_interval,
            svc_kit::db::probe(&self.pool),
            shutdown,
        );
        tokio::select! {
            served = served => served,
            () = sweep::run(self.calls, self.sweep_interval) => anyhow::bail!("sweeper stopped"),
            () = self.relay.run() => anyhow::bail!("outbox relay stopped"),
        }
    }
}
