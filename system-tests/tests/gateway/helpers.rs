//! Starting the whole platform for one test: dispatch-svc, payment-svc,
//! call-svc and query-svc in-process on one fresh database, an isolated NATS
//! prefix and a Redis key prefix of their own, and the gateway in front of
//! them. Clients talk to the gateway only, with tokens the test mints; checks
//! that must bypass the gateway go to a backend directly as a service.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use gateway_grpc_web::auth::Claims;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sqlx::AssertSqlSafe;
use svc_kit::{db::DatabaseConfig, secret::SecretUrl, testing::RunningService};
use taxi_proto::{
    call::v1::{
        AcceptCallRequest, Call, CompleteTripRequest, GetCallRequest, RequestCallRequest, StartTripRequest,
        call_service_client::CallServiceClient,
    },
    common::v1::{LatLng, TaxiType},
    dispatch::v1::{
        Driver, GetDriverRequest, RegisterDriverRequest, SetOnlineRequest, UpdateLocationRequest,
        dispatch_service_client::DispatchServiceClient,
    },
    payment::v1::{ListPaymentsRequest, ListPaymentsResponse, payment_service_client::PaymentServiceClient},
    query::v1::{CallView, GetCallViewRequest, query_service_client::QueryServiceClient},
};
use tonic::{Request, Status, metadata::MetadataValue, transport::Channel};
use uuid::Uuid;

use crate::grpc_web::GrpcWebClient;

/// Seoul Station: where customers are picked up.
pub const PICKUP: LatLng = LatLng {
    latitude: 37.5547,
    longitude: 126.9707,
};
/// Gangnam Station: where they go.
pub const DROPOFF: LatLng = LatLng {
    latitude: 37.4979,
    longitude: 127.0276,
};

/// The browser origin the test gateway allows.
pub const APP_ORIGIN: &str = "https://app.taxi.example";

/// Someone holding a token: a customer, a driver or an analyst.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

/// The platform of one test, reached through its gateway.
pub struct TestApp {
    /// Where the gateway listens (gRPC and gRPC-web).
    pub addr: SocketAddr,
    /// The gateway's configuration (its secret mints the tokens).
    pub config: gateway_grpc_web::Config,
    /// A channel to the gateway.
    pub channel: Channel,
    pub backends: Backends,
    /// Kept so the gateway runs as long as the test.
    _gateway: RunningService,
}

/// The four services behind the gateway.
pub struct Backends {
    pub db_url: SecretUrl,
    pub nats: eventbus::NatsConfig,
    pub redis_prefix: String,
    pub query_settings: QuerySettings,
    pub call: RunningService,
    pub dispatch: RunningService,
    pub payment: RunningService,
    pub query: Option<RunningService>,
}

/// Gateway settings for tests: an allowed origin of our own, a quick health
/// follower, and the default limits (generous enough for one test) but for a
/// read deadline that allows for a busy test machine; tests of deadlines set
/// their own.
pub fn test_gateway_config() -> gateway_grpc_web::Config {
    let mut config = gateway_grpc_web::Config {
        listen_addr: "127.0.0.1:0".into(),
        identity: svc_kit::testing::gateway_signer(),
        http_addr: "127.0.0.1:0".into(),
        health_interval_ms: 100,
        ..Default::default()
    };
    config.auth.hs256_secret = format!("test-secret-{}", Uuid::new_v4()).into();
    config.cors.allowed_origins = APP_ORIGIN.into();
    config.limits.read_deadline_ms = 10_000;
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The platform with the gateway's configuration adjusted by `customize`.
pub async fn spawn_app_with(customize: impl FnOnce(&mut gateway_grpc_web::Config)) -> TestApp {
    spawn_app_with_query_on("127.0.0.1:0".into(), customize).await
}

/// The platform with query-svc listening on `query_listen_addr`.
pub async fn spawn_app_with_query_on(
    query_listen_addr: String,
    customize: impl FnOnce(&mut gateway_grpc_web::Config),
) -> TestApp {
    let query = QuerySettings {
        listen_addr: query_listen_addr,
        ..Default::default()
    };
    spawn_app_with_query(query, customize).await
}

/// How query-svc is started.
pub struct QuerySettings {
    /// A fixed port lets a test restart it there.
    pub listen_addr: String,
    /// The longest wait of a read-your-writes read.
    pub read_your_writes_timeout_ms: u64,
}

impl Default for QuerySettings {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:0".into(),
            read_your_writes_timeout_ms: 8_000,
        }
    }
}

/// The platform with query-svc started as `query` says.
pub async fn spawn_app_with_query(
    query: QuerySettings,
    customize: impl FnOnce(&mut gateway_grpc_web::Config),
) -> TestApp {
    svc_kit::testing::init_logs();
    let backends = Backends::start(query).await;
    let mut config = test_gateway_config();
    customize(&mut config);
    config.backends.call = gateway_grpc_web::config::upstream(&backends.call.url());
    config.backends.dispatch = gateway_grpc_web::config::upstream(&backends.dispatch.url());
    config.backends.payment = gateway_grpc_web::config::upstream(&backends.payment.url());
    config.backends.query = gateway_grpc_web::config::upstream(&format!("http://{}", backends.query_addr()));
    let app = gateway_grpc_web::App::build(config.clone())
        .await
        .expect("build the gateway");
    let gateway = RunningService::start(app.local_addr(), |stop| app.run_until_stopped(stop));
    TestApp {
        addr: gateway.addr,
        config,
        channel: gateway.channel(),
        backends,
        _gateway: gateway,
    }
}

/// A loopback address a server can be stopped and started again on.
pub fn free_local_addr() -> String {
    format!("127.0.0.1:{}", svc_kit::testing::restartable_port())
}

impl Backends {
    async fn start(query_settings: QuerySettings) -> Self {
        let db_url = svc_kit::testing::fresh_database().await.expect("fresh database");
        let nats = eventbus::testing::isolated();
        let database = DatabaseConfig {
            url: db_url.clone(),
            max_connections: 10,
            ..Default::default()
        };

        let dispatch = dispatch_svc::Config {
            listen_addr: "127.0.0.1:0".into(),
            trust: svc_kit::testing::trust(),
            database: database.clone(),
            nats: nats.clone(),
            ..Default::default()
        };
        let dispatch = dispatch_svc::App::build(dispatch)
            .await
            .expect("build dispatch-svc");
        let dispatch = RunningService::start(dispatch.local_addr(), |stop| dispatch.run_until_stopped(stop));

        let payment = payment_svc::Config {
            listen_addr: "127.0.0.1:0".into(),
            trust: svc_kit::testing::trust(),
            database: database.clone(),
            nats: nats.clone(),
            ..Default::default()
        };
        let payment = payment_svc::App::build(payment).await.expect("build payment-svc");
        let payment = RunningService::start(payment.local_addr(), |stop| payment.run_until_stopped(stop));

        let mut call = call_svc::Config {
            listen_addr: "127.0.0.1:0".into(),
            trust: svc_kit::testing::trust(),
            identity: svc_kit::testing::service_signer(),
            database,
            nats: nats.clone(),
            dispatch: svc_kit::testing::patient_client(dispatch.url()),
            payment: svc_kit::testing::patient_client(payment.url()),
            ..Default::default()
        };
        call.saga.sweep_interval_ms = 100;
        call.health_interval_ms = 200;
        let call = call_svc::App::build(call).await.expect("build call-svc");
        let call = RunningService::start(call.local_addr(), |stop| call.run_until_stopped(stop));

        let mut backends = Self {
            db_url,
            nats,
            redis_prefix: format!("test:{}", Uuid::new_v4().simple()),
            query_settings,
            call,
            dispatch,
            payment,
            query: None,
        };
        backends.start_query().await;
        backends
    }

    /// Starts query-svc as `query_settings` say, projecting this platform's
    /// events; once started, always on the same port.
    pub async fn start_query(&mut self) {
        let mut config = query_svc::Config {
            listen_addr: self.query_settings.listen_addr.clone(),
            trust: svc_kit::testing::trust(),
            nats: self.nats.clone(),
            read_your_writes_timeout_ms: self.query_settings.read_your_writes_timeout_ms,
            health_interval_ms: 200,
            ..Default::default()
        };
        config.redis.key_prefix = self.redis_prefix.clone();
        config.consumer.retry_delay_ms = 100;
        let app = query_svc::App::build(config).await.expect("build query-svc");
        self.query_settings.listen_addr = app.local_addr().to_string();
        self.query = Some(RunningService::start(app.local_addr(), |stop| {
            app.run_until_stopped(stop)
        }));
    }

    /// Stops query-svc gracefully, as a deploy or an outage would.
    pub async fn stop_query(&mut self) {
        self.query
            .take()
            .expect("query-svc is running")
            .stop()
            .await
            .expect("query-svc stops");
    }

    fn query_addr(&self) -> &str {
        &self.query_settings.listen_addr
    }

    /// The call as call-svc knows it, asked directly (not through the gateway).
    pub async fn call(&self, call_id: &str) -> Call {
        let request = GetCallRequest {
            call_id: call_id.into(),
        };
        CallServiceClient::new(self.call.channel())
            .get_call(svc_kit::testing::as_caller(
                &svc_kit::identity::Caller::Service("test".into()),
                request,
            ))
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
        PaymentServiceClient::new(self.payment.channel())
            .list_payments(svc_kit::testing::as_caller(
                &svc_kit::identity::Caller::Service("test".into()),
                request,
            ))
            .await
            .expect("list payments from payment-svc")
            .into_inner()
    }
}

impl TestApp {
    /// A token signed with the gateway's secret, valid for an hour.
    pub fn token(&self, role: &str, subject: Uuid) -> String {
        gateway_grpc_web::auth::mint(&self.config.auth, role, subject, Duration::from_secs(3_600))
            .expect("mint a token")
    }

    pub fn user(&self, role: &str) -> User {
        let id = Uuid::new_v4();
        User {
            id,
            token: self.token(role, id),
        }
    }

    pub fn customer(&self) -> User {
        self.user("customer")
    }

    pub fn driver(&self) -> User {
        self.user("driver")
    }

    pub fn analyst(&self) -> User {
        self.user("analyst")
    }

    /// Claims the gateway would accept for `role` and a fresh subject; tests
    /// spoil one field, then sign them with [`sign`].
    pub fn claims(&self, role: &str) -> Claims {
        let now = now_secs();
        Claims {
            sub: Uuid::new_v4().to_string(),
            role: role.into(),
            iss: self.config.auth.issuer.clone(),
            aud: self.config.auth.audience.clone(),
            exp: now + 3_600,
            nbf: now,
            iat: now,
        }
    }

    pub fn call_client(&self) -> CallServiceClient<Channel> {
        CallServiceClient::new(self.channel.clone())
    }

    pub fn dispatch_client(&self) -> DispatchServiceClient<Channel> {
        DispatchServiceClient::new(self.channel.clone())
    }

    pub fn payment_client(&self) -> PaymentServiceClient<Channel> {
        PaymentServiceClient::new(self.channel.clone())
    }

    pub fn query_client(&self) -> QueryServiceClient<Channel> {
        QueryServiceClient::new(self.channel.clone())
    }

    /// A gRPC-web client of the gateway over HTTP/1.1.
    pub fn grpc_web(&self) -> GrpcWebClient {
        GrpcWebClient::new(self.addr)
    }

    /// A driver registered, online and waiting at the pickup, through the gateway.
    pub async fn online_driver(&self) -> User {
        let driver = self.driver();
        let mut dispatch = self.dispatch_client();
        let register = RegisterDriverRequest {
            name: "Kim Gisa".into(),
            license_plate: "12가3456".into(),
            taxi_type: TaxiType::Normal.into(),
        };
        dispatch
            .register_driver(bearer(&driver, register))
            .await
            .expect("register");
        dispatch
            .set_online(bearer(&driver, SetOnlineRequest {}))
            .await
            .expect("online");
        let location = UpdateLocationRequest {
            location: Some(PICKUP),
        };
        dispatch
            .update_location(bearer(&driver, location))
            .await
            .expect("location");
        driver
    }

    /// The customer's new call, through the gateway (a driver must be online).
    pub async fn request_call(&self, customer: &User) -> Call {
        self.call_client()
            .request_call(bearer(customer, call_request()))
            .await
            .expect("request call")
            .into_inner()
            .call
            .expect("call")
    }

    /// A call of `customer` accepted by a fresh driver: (call, driver).
    pub async fn accepted_call(&self, customer: &User) -> (Call, User) {
        let driver = self.online_driver().await;
        let call = self.request_call(customer).await;
        let accepted = self.accept(&driver, &call.call_id).await.expect("accept");
        (accepted, driver)
    }

    pub async fn accept(&self, driver: &User, call_id: &str) -> Result<Call, Status> {
        let request = AcceptCallRequest {
            call_id: call_id.into(),
        };
        let response = self.call_client().accept_call(bearer(driver, request)).await?;
        Ok(response.into_inner().call.expect("call"))
    }

    pub async fn start_trip(&self, driver: &User, call_id: &str) -> Result<Call, Status> {
        let request = StartTripRequest {
            call_id: call_id.into(),
        };
        let response = self.call_client().start_trip(bearer(driver, request)).await?;
        Ok(response.into_inner().call.expect("call"))
    }

    pub async fn complete_trip(&self, driver: &User, call_id: &str) -> Result<Call, Status> {
        let request = CompleteTripRequest {
            call_id: call_id.into(),
            distance_m: 7_000,
        };
        let response = self.call_client().complete_trip(bearer(driver, request)).await?;
        Ok(response.into_inner().call.expect("call"))
    }

    /// The call's view at `min_version` or newer, through the gateway.
    pub async fn call_view(&self, user: &User, call_id: &str, min_version: i64) -> Result<CallView, Status> {
        let request = GetCallViewRequest {
            call_id: call_id.into(),
            min_version,
        };
        let response = self.query_client().get_call_view(bearer(user, request)).await?;
        Ok(response.into_inner().view.expect("view"))
    }

    /// The driver's own record, through the gateway.
    pub async fn driver_record(&self, driver: &User) -> Driver {
        self.dispatch_client()
            .get_driver(bearer(driver, GetDriverRequest {}))
            .await
            .expect("get driver")
            .into_inner()
            .driver
            .expect("driver")
    }

    /// How many calls call-svc holds, whoever asked for them.
    pub async fn calls_stored(&self) -> i64 {
        let pool = sqlx::PgPool::connect(self.backends.db_url.expose())
            .await
            .expect("connect to the test database");
        let count = sqlx::query_scalar("SELECT count(*) FROM call.calls")
            .fetch_one(&pool)
            .await
            .expect("count calls");
        pool.close().await;
        count
    }

    /// Every table of the three write services, each with its row count and
    /// a digest of its rows: two equal snapshots mean nothing was written.
    pub async fn stored(&self) -> BTreeMap<String, String> {
        let pool = sqlx::PgPool::connect(self.backends.db_url.expose())
            .await
            .expect("connect to the test database");
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_schema::text, table_name::text FROM information_schema.tables \
             WHERE table_schema IN ('call', 'dispatch', 'payment') AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&pool)
        .await
        .expect("list the tables");
        let mut stored = BTreeMap::new();
        for (schema, table) in tables {
            // The names come from the catalog, not from input.
            let digest: String = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') \
                 FROM \"{schema}\".\"{table}\" t"
            )))
            .fetch_one(&pool)
            .await
            .expect("digest a table");
            stored.insert(format!("{schema}.{table}"), digest);
        }
        pool.close().await;
        assert!(
            stored.contains_key("call.outbox"),
            "the tables are there: {stored:?}"
        );
        stored
    }
}

/// A request carrying `authorization: Bearer <user's token>`.
pub fn bearer<T>(user: &User, message: T) -> Request<T> {
    with_token(&user.token, message)
}

/// A request carrying `authorization: Bearer <token>`.
pub fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("a token is ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}

pub fn call_request() -> RequestCallRequest {
    RequestCallRequest {
        pickup: Some(PICKUP),
        dropoff: Some(DROPOFF),
        taxi_type: TaxiType::Normal.into(),
        idempotency_key: Uuid::new_v4().to_string(),
        payment_method: "tok_visa".into(),
    }
}

/// Signs `claims` with HS256 and `secret`.
pub fn sign(claims: &Claims, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign a token")
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}
