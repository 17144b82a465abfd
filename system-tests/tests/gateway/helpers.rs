//! The whole platform for one test (the four services and the gateway in
//! front of them, started by `system_tests`), and what the gateway tests do
//! with it: clients talk to the gateway only, with tokens the test mints;
//! checks that must bypass the gateway go to a backend directly as a service
//! (`app.backends`).

use std::{
    collections::BTreeMap,
    ops::Deref,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use gateway_grpc_web::auth::Claims;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sqlx::AssertSqlSafe;
pub use system_tests::{DROPOFF, PICKUP, QuerySettings, gateway::APP_ORIGIN, system::free_local_addr};
use system_tests::{Gateway, System, identity::Credentials, trip};
use taxi_proto::{
    call::v1::{Call, RequestCallRequest, call_service_client::CallServiceClient},
    common::v1::TaxiType,
    dispatch::v1::{Driver, dispatch_service_client::DispatchServiceClient},
    payment::v1::payment_service_client::PaymentServiceClient,
    query::v1::{CallView, query_service_client::QueryServiceClient},
};
use tonic::{Request, Status, metadata::MetadataValue, transport::Channel};
use uuid::Uuid;

use crate::grpc_web::GrpcWebClient;

/// Someone holding a token: a customer, a driver or an analyst.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

impl User {
    /// A fresh subject in `role`, with a token the gateway configured as
    /// `gateway` accepts for an hour.
    pub fn new(gateway: &gateway_grpc_web::Config, role: &str) -> Self {
        let id = Uuid::new_v4();
        let token = gateway_grpc_web::auth::mint(&gateway.auth, role, id, Duration::from_secs(3_600))
            .expect("mint a token");
        Self { id, token }
    }
}

/// The platform of one test, reached through its gateway (`addr`, `config`
/// and `channel` are the gateway's).
pub struct TestApp {
    gateway: Gateway,
    /// The four services behind the gateway.
    pub backends: System,
}

impl Deref for TestApp {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.gateway
    }
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

/// The platform with query-svc started as `query` says.
pub async fn spawn_app_with_query(
    query: QuerySettings,
    customize: impl FnOnce(&mut gateway_grpc_web::Config),
) -> TestApp {
    let backends = System::builder().query_settings(query).with_query().start().await;
    let mut config = system_tests::gateway::test_config();
    customize(&mut config);
    let gateway = Gateway::start(&backends, config).await;
    TestApp { gateway, backends }
}

impl TestApp {
    /// A token signed with the gateway's secret, valid for an hour.
    pub fn token(&self, role: &str, subject: Uuid) -> String {
        gateway_grpc_web::auth::mint(&self.config.auth, role, subject, Duration::from_secs(3_600))
            .expect("mint a token")
    }

    pub fn user(&self, role: &str) -> User {
        User::new(&self.config, role)
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
        trip::online_driver(&self.dispatch_client(), &driver, TaxiType::Normal, PICKUP).await;
        driver
    }

    /// The customer's new call, through the gateway (a driver must be online).
    pub async fn request_call(&self, customer: &User) -> Call {
        trip::request_call(&self.call_client(), customer, call_request()).await
    }

    /// A call of `customer` accepted by a fresh driver: (call, driver).
    pub async fn accepted_call(&self, customer: &User) -> (Call, User) {
        let driver = self.online_driver().await;
        let call = self.request_call(customer).await;
        self.backends.wait_for_offer(&call.call_id, driver.id).await;
        let accepted = self.accept(&driver, &call.call_id).await.expect("accept");
        (accepted, driver)
    }

    pub async fn accept(&self, driver: &User, call_id: &str) -> Result<Call, Status> {
        trip::accept(&self.call_client(), driver, call_id).await
    }

    pub async fn start_trip(&self, driver: &User, call_id: &str) -> Result<Call, Status> {
        trip::start_trip(&self.call_client(), driver, call_id).await
    }

    /// Completes a 7 km trip.
    pub async fn complete_trip(&self, driver: &User, call_id: &str) -> Result<Call, Status> {
        trip::complete_trip(&self.call_client(), driver, call_id, 7_000).await
    }

    /// The call's view at `min_version` or newer, through the gateway.
    pub async fn call_view(&self, user: &User, call_id: &str, min_version: i64) -> Result<CallView, Status> {
        trip::call_view(&self.query_client(), user, call_id, min_version).await
    }

    /// The driver's own record, through the gateway.
    pub async fn driver_record(&self, driver: &User) -> Driver {
        trip::driver_record(&self.dispatch_client(), driver).await
    }

    /// How many calls call-svc holds, whoever asked for them.
    pub async fn calls_stored(&self) -> i64 {
        self.backends.count("SELECT count(*) FROM call.calls").await
    }

    /// Every table of the three write services, each with its row count and
    /// a digest of its rows: two equal snapshots mean nothing was written.
    pub async fn stored(&self) -> BTreeMap<String, String> {
        let pool = &self.backends.db;
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_schema::text, table_name::text FROM information_schema.tables \
             WHERE table_schema IN ('call', 'dispatch', 'payment') AND table_type = 'BASE TABLE'",
        )
        .fetch_all(pool)
        .await
        .expect("list the tables");
        let mut stored = BTreeMap::new();
        for (schema, table) in tables {
            // The names come from the catalog, not from input.
            let digest: String = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') \
                 FROM \"{schema}\".\"{table}\" t"
            )))
            .fetch_one(pool)
            .await
            .expect("digest a table");
            stored.insert(format!("{schema}.{table}"), digest);
        }
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

/// A user proves who they are with their token, which the gateway checks.
impl Credentials for User {
    fn attach<T>(&self, message: T) -> Request<T> {
        bearer(self, message)
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("a token is ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}

/// The trip's request, paid with the test card.
pub fn call_request() -> RequestCallRequest {
    system_tests::call_request("tok_visa")
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
