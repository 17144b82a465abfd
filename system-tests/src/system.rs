//! The backends of one test, each service started in-process through its
//! `App::build` on a port of its own, all on one fresh database, under an
//! isolated NATS prefix and a Redis key prefix of their own, trusting the
//! test keys of `svc_kit::testing`.
//!
//! [`System::builder`] says which services start and how; the [`System`]
//! then lets a test stop one, start it again, kill it, or run a second
//! call-svc replica beside the first.

use sqlx::PgPool;
use svc_kit::{db::DatabaseConfig, secret::SecretUrl, testing::RunningService};
use taxi_proto::{
    call::v1::{Call, GetCallRequest, call_service_client::CallServiceClient},
    dispatch::v1::dispatch_service_client::DispatchServiceClient,
    payment::v1::{ListPaymentsRequest, ListPaymentsResponse, payment_service_client::PaymentServiceClient},
    query::v1::query_service_client::QueryServiceClient,
};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::identity::as_service;

/// The backends of one test. A service that is not running is `None`; the
/// `start_*` methods start it (again) where the settings say.
pub struct System {
    pub db_url: SecretUrl,
    /// A pool on the test database, for checks of what was stored.
    pub db: PgPool,
    /// The deployment's event prefix, shared by its services.
    pub nats: eventbus::NatsConfig,
    /// query-svc's Redis keys live under this prefix.
    pub redis_prefix: String,
    /// How call-svc starts; after a start, pointed at the dispatch-svc and
    /// payment-svc it was given.
    pub call_config: call_svc::Config,
    /// How dispatch-svc starts (its ports, trust, database and NATS are
    /// filled in then).
    pub dispatch_config: dispatch_svc::Config,
    /// Where payment-svc listens (each start on a new port unless fixed).
    pub payment_listen_addr: String,
    /// How query-svc starts.
    pub query_settings: QuerySettings,
    pub call: Option<RunningService>,
    pub dispatch: Option<RunningService>,
    pub payment: Option<RunningService>,
    pub query: Option<RunningService>,
    /// Each service's admin port (`GET /metrics`), by name, as last started.
    pub admin: std::collections::BTreeMap<&'static str, std::net::SocketAddr>,
}

/// How query-svc is started.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    /// A fixed port lets a test restart it there.
    pub listen_addr: String,
    /// The longest wait of a read-your-writes read.
    pub read_your_writes_timeout_ms: u64,
    /// How often it checks Redis and NATS for its health report.
    pub health_interval_ms: u64,
}

impl Default for QuerySettings {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:0".into(),
            read_your_writes_timeout_ms: 8_000,
            health_interval_ms: 200,
        }
    }
}

/// call-svc settings that keep tests fast: a quick sweeper and health
/// follower. The database, NATS and the other services are filled in when
/// it starts.
pub fn test_call_config() -> call_svc::Config {
    let mut config = call_svc::Config {
        listen_addr: "127.0.0.1:0".into(),
        admin_addr: "127.0.0.1:0".into(),
        trust: svc_kit::testing::trust(),
        identity: svc_kit::testing::service_signer(),
        ..Default::default()
    };
    config.saga.sweep_interval_ms = 100;
    config.health_interval_ms = 200;
    config
}

/// A loopback address a server can be stopped and started again on.
pub fn free_local_addr() -> String {
    format!("127.0.0.1:{}", svc_kit::testing::restartable_port())
}

/// What [`System::builder`] starts: dispatch-svc, payment-svc and call-svc
/// always, query-svc when [`SystemBuilder::with_query`] asks for it (or
/// later, when the test calls [`System::start_query`]).
pub struct SystemBuilder {
    call_config: call_svc::Config,
    dispatch_config: dispatch_svc::Config,
    nats: Option<eventbus::NatsConfig>,
    payment_listen_addr: String,
    query_settings: QuerySettings,
    with_query: bool,
}

impl SystemBuilder {
    /// call-svc started with `config` (see [`test_call_config`]) instead of
    /// the test defaults.
    pub fn call_config(mut self, config: call_svc::Config) -> Self {
        self.call_config = config;
        self
    }

    /// dispatch-svc started with `config`'s policies (offers, radii) instead
    /// of the defaults.
    pub fn dispatch_config(mut self, config: dispatch_svc::Config) -> Self {
        self.dispatch_config = config;
        self
    }

    /// Events published under `nats` (for example to a NATS server of the
    /// test's own) instead of an isolated prefix on the shared server.
    pub fn nats(mut self, nats: eventbus::NatsConfig) -> Self {
        self.nats = Some(nats);
        self
    }

    /// payment-svc on a fixed address, so that a test can stop it and start
    /// it again where call-svc keeps calling it.
    pub fn restartable_payment(mut self) -> Self {
        self.payment_listen_addr = free_local_addr();
        self
    }

    /// query-svc, whenever it starts, started as `settings` say.
    pub fn query_settings(mut self, settings: QuerySettings) -> Self {
        self.query_settings = settings;
        self
    }

    /// query-svc started with the others.
    pub fn with_query(mut self) -> Self {
        self.with_query = true;
        self
    }

    /// Makes the database and starts the services: dispatch-svc and
    /// payment-svc first, so that call-svc starts pointed at them.
    pub async fn start(self) -> System {
        let with_query = self.with_query;
        let mut system = self.stores().await;
        system.start_dispatch().await;
        system.start_payment().await;
        system.start_call().await;
        if with_query {
            system.start_query().await;
        }
        system
    }

    /// The system's fresh stores (a database, a NATS prefix, a Redis key
    /// prefix) with no service running yet, for a test that starts them
    /// itself (as processes, for one: [`crate::processes::Processes`]).
    pub async fn stores(self) -> System {
        svc_kit::testing::init_logs();
        let db_url = svc_kit::testing::fresh_database().await.expect("fresh database");
        let db = PgPool::connect(db_url.expose())
            .await
            .expect("connect to the test database");
        System {
            db_url,
            db,
            nats: self.nats.unwrap_or_else(eventbus::testing::isolated),
            redis_prefix: format!("test:{}", Uuid::new_v4().simple()),
            call_config: self.call_config,
            dispatch_config: self.dispatch_config,
            payment_listen_addr: self.payment_listen_addr,
            query_settings: self.query_settings,
            call: None,
            dispatch: None,
            payment: None,
            query: None,
            admin: Default::default(),
        }
    }
}

impl System {
    /// dispatch-svc, payment-svc and call-svc with the test settings; the
    /// builder's methods change them.
    pub fn builder() -> SystemBuilder {
        SystemBuilder {
            call_config: test_call_config(),
            dispatch_config: dispatch_svc::Config::default(),
            nats: None,
            payment_listen_addr: "127.0.0.1:0".into(),
            query_settings: QuerySettings::default(),
            with_query: false,
        }
    }

    fn database(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: self.db_url.clone(),
            max_connections: 10,
            ..Default::default()
        }
    }

    /// dispatch-svc's test settings on this system's stores, on random ports.
    pub fn dispatch_app_config(&self) -> dispatch_svc::Config {
        dispatch_svc::Config {
            listen_addr: "127.0.0.1:0".into(),
            admin_addr: "127.0.0.1:0".into(),
            trust: svc_kit::testing::trust(),
            database: self.database(),
            nats: self.nats.clone(),
            ..self.dispatch_config.clone()
        }
    }

    /// payment-svc's test settings on this system's stores.
    pub fn payment_app_config(&self) -> payment_svc::Config {
        payment_svc::Config {
            listen_addr: self.payment_listen_addr.clone(),
            admin_addr: "127.0.0.1:0".into(),
            trust: svc_kit::testing::trust(),
            database: self.database(),
            nats: self.nats.clone(),
            ..Default::default()
        }
    }

    /// call-svc's settings (`call_config`) on this system's stores, calling
    /// dispatch-svc and payment-svc at these URLs.
    pub fn call_app_config(&self, dispatch_url: &str, payment_url: &str) -> call_svc::Config {
        let mut config = self.call_config.clone();
        config.database = self.database();
        config.nats = self.nats.clone();
        config.dispatch = svc_kit::testing::patient_client(dispatch_url);
        config.payment = svc_kit::testing::patient_client(payment_url);
        config
    }

    /// query-svc's settings (`query_settings`) projecting this system's events.
    pub fn query_app_config(&self) -> query_svc::Config {
        let settings = &self.query_settings;
        let mut config = query_svc::Config {
            listen_addr: settings.listen_addr.clone(),
            admin_addr: "127.0.0.1:0".into(),
            trust: svc_kit::testing::trust(),
            nats: self.nats.clone(),
            read_your_writes_timeout_ms: settings.read_your_writes_timeout_ms,
            health_interval_ms: settings.health_interval_ms,
            ..Default::default()
        };
        config.redis.key_prefix = self.redis_prefix.clone();
        config.consumer.retry_delay_ms = 100;
        config
    }

    pub async fn start_dispatch(&mut self) {
        let config = self.dispatch_app_config();
        let app = dispatch_svc::App::build(config)
            .await
            .expect("build dispatch-svc");
        self.admin.insert("dispatch-svc", app.admin_addr());
        self.dispatch = Some(RunningService::start(app.local_addr(), |stop| {
            app.run_until_stopped(stop)
        }));
    }

    pub async fn start_payment(&mut self) {
        let config = self.payment_app_config();
        let app = payment_svc::App::build(config).await.expect("build payment-svc");
        self.admin.insert("payment-svc", app.admin_addr());
        self.payment = Some(RunningService::start(app.local_addr(), |stop| {
            app.run_until_stopped(stop)
        }));
    }

    /// Stops dispatch-svc gracefully, as a deploy or an outage would.
    pub async fn stop_dispatch(&mut self) {
        stop(&mut self.dispatch, "dispatch-svc").await;
    }

    /// Stops payment-svc gracefully, as a deploy or an outage would.
    pub async fn stop_payment(&mut self) {
        stop(&mut self.payment, "payment-svc").await;
    }

    /// Stops call-svc gracefully (a test starts it again with
    /// [`System::start_call`], for example to reach a restarted dependency).
    pub async fn stop_call(&mut self) {
        stop(&mut self.call, "call-svc").await;
    }

    /// Ends call-svc at once, as a crash would, whatever it was doing.
    pub fn kill_call(&mut self) {
        self.call.take().expect("call-svc is running").kill();
    }

    /// Starts call-svc pointed at the running dispatch and payment services
    /// (or at the address they had, if one is stopped).
    pub async fn start_call(&mut self) {
        let url_of = |running: &Option<RunningService>, before: &svc_kit::grpc::ClientConfig| {
            running
                .as_ref()
                .map_or_else(|| before.url.clone(), RunningService::url)
        };
        let config = self.call_app_config(
            &url_of(&self.dispatch, &self.call_config.dispatch),
            &url_of(&self.payment, &self.call_config.payment),
        );
        self.call_config = config.clone();
        let app = call_svc::App::build(config).await.expect("build call-svc");
        self.admin.insert("call-svc", app.admin_addr());
        self.call = Some(RunningService::start(app.local_addr(), |stop| {
            app.run_until_stopped(stop)
        }));
    }

    /// Starts query-svc as `query_settings` say, projecting this system's
    /// events; once started, always on the same port, so that whoever calls
    /// it finds it again after a restart.
    pub async fn start_query(&mut self) {
        let config = self.query_app_config();
        let app = query_svc::App::build(config).await.expect("build query-svc");
        self.admin.insert("query-svc", app.admin_addr());
        self.query_settings.listen_addr = app.local_addr().to_string();
        self.query = Some(RunningService::start(app.local_addr(), |stop| {
            app.run_until_stopped(stop)
        }));
    }

    /// Stops query-svc gracefully, as a deploy or an outage would.
    pub async fn stop_query(&mut self) {
        stop(&mut self.query, "query-svc").await;
    }

    /// `http://` and where query-svc listens, running or not.
    pub fn query_url(&self) -> String {
        format!("http://{}", self.query_settings.listen_addr)
    }

    /// call-svc's use cases on this system's database and backends, as
    /// another replica of call-svc would run them (to drive its sweeper).
    pub async fn call_replica(&self) -> call_svc::service::Calls {
        let config = &self.call_config;
        let pool = svc_kit::db::connect(
            &config.database,
            call_svc::store::SCHEMA,
            &call_svc::store::MIGRATOR,
        )
        .await
        .expect("connect call-svc's schema");
        // A replica's own client metrics, which no test reads.
        let metrics = svc_kit::metrics::rpc::RpcMetrics::client();
        let dispatch = DispatchServiceClient::new(svc_kit::grpc::upstream(
            config.dispatch.channel().expect("dispatch channel"),
            &metrics,
        ));
        let payment = PaymentServiceClient::new(svc_kit::grpc::upstream(
            config.payment.channel().expect("payment channel"),
            &metrics,
        ));
        let signer =
            svc_kit::identity::Signer::from_config("call-svc", &config.identity).expect("the signing key");
        let store = call_svc::store::Store::new(pool);
        call_svc::service::Calls::new(store, dispatch, payment, signer, config)
    }

    /// A channel to one of the services, which must be running.
    pub fn channel(running: &Option<RunningService>) -> Channel {
        running.as_ref().expect("service is running").channel()
    }

    /// A client of call-svc itself (not through a gateway).
    pub fn call_client(&self) -> CallServiceClient<Channel> {
        CallServiceClient::new(Self::channel(&self.call))
    }

    /// A client of dispatch-svc itself.
    pub fn dispatch_client(&self) -> DispatchServiceClient<Channel> {
        DispatchServiceClient::new(Self::channel(&self.dispatch))
    }

    /// A client of payment-svc itself.
    pub fn payment_client(&self) -> PaymentServiceClient<Channel> {
        PaymentServiceClient::new(Self::channel(&self.payment))
    }

    /// A client of query-svc itself.
    pub fn query_client(&self) -> QueryServiceClient<Channel> {
        QueryServiceClient::new(Self::channel(&self.query))
    }

    /// The call as call-svc knows it, asked directly as a service.
    pub async fn get_call(&self, call_id: &str) -> Call {
        let request = GetCallRequest {
            call_id: call_id.into(),
        };
        self.call_client()
            .get_call(as_service(request))
            .await
            .expect("get call from call-svc")
            .into_inner()
            .call
            .expect("call")
    }

    /// The call's ledger as payment-svc knows it, asked directly.
    pub async fn ledger(&self, call_id: &str) -> ListPaymentsResponse {
        let request = ListPaymentsRequest {
            call_id: call_id.into(),
        };
        self.payment_client()
            .list_payments(as_service(request))
            .await
            .expect("list payments from payment-svc")
            .into_inner()
    }

    /// Waits until the driver holds a live offer of the call, which
    /// dispatch-svc makes once the request's event reaches it, for up to 30 s.
    pub async fn wait_for_offer(&self, call_id: &str, driver: Uuid) {
        let offered = || async {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM dispatch.offers WHERE call_id = $1::uuid AND driver_id = $2
                     AND withdrawn_at IS NULL AND expires_at > now())",
            )
            .bind(call_id)
            .bind(driver)
            .fetch_one(&self.db)
            .await
            .expect("read dispatch's offers")
        };
        let made = crate::poll::poll(crate::poll::PATIENCE, offered, |made| *made).await;
        assert!(made, "call {call_id} was never offered to driver {driver}");
    }

    /// The one number `sql` counts in the test database.
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.expect("count")
    }
}

/// Stops the service in `slot` gracefully and waits until it has drained.
async fn stop(slot: &mut Option<RunningService>, name: &str) {
    let running = slot.take().unwrap_or_else(|| panic!("{name} is running"));
    running
        .stop()
        .await
        .unwrap_or_else(|err| panic!("{name} drains: {err:#}"));
}
