//! Starting the three services of the command path for one test.

use std::time::Duration;

use sqlx::PgPool;
use svc_kit::{db::DatabaseConfig, identity::Caller, secret::SecretUrl, testing::RunningService};
use taxi_proto::{
    call::v1::{Call, CallStatus, RequestCallRequest, call_service_client::CallServiceClient},
    common::v1::{LatLng, TaxiType},
    dispatch::v1::{
        Driver, DriverStatus, GetDriverRequest, RegisterDriverRequest, SetOnlineRequest,
        UpdateLocationRequest, dispatch_service_client::DispatchServiceClient,
    },
    payment::v1::{
        EntryKind, EntryStatus, LedgerEntry, ListPaymentsRequest, ListPaymentsResponse,
        payment_service_client::PaymentServiceClient,
    },
    query::v1::query_service_client::QueryServiceClient,
};
use tonic::{Request, Status, transport::Channel};
use uuid::Uuid;

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

/// The command path of one test: three services on one fresh database.
pub struct TestSystem {
    pub db_url: SecretUrl,
    /// The deployment's event prefix, shared by its services.
    pub nats: eventbus::NatsConfig,
    pub db: PgPool,
    pub call: Option<RunningService>,
    pub dispatch: Option<RunningService>,
    pub payment: Option<RunningService>,
    pub query: Option<RunningService>,
    pub call_config: call_svc::Config,
    /// Where payment-svc listens (each start on a new port unless fixed).
    pub payment_listen_addr: String,
    /// query-svc's Redis keys live under this prefix.
    pub redis_prefix: String,
}

/// Settings that keep tests fast: a quick sweeper, short deadlines.
pub fn test_call_config() -> call_svc::Config {
    let mut config = call_svc::Config {
        listen_addr: "127.0.0.1:0".into(),
        trust: svc_kit::testing::trust(),
        identity: svc_kit::testing::service_signer(),
        ..Default::default()
    };
    config.saga.sweep_interval_ms = 100;
    config.health_interval_ms = 200;
    config
}

pub async fn spawn_system() -> TestSystem {
    spawn_system_with(test_call_config()).await
}

pub async fn spawn_system_with(call_config: call_svc::Config) -> TestSystem {
    spawn_system_on(call_config, eventbus::testing::isolated()).await
}

/// The command path publishing its events under `nats` (for example to a NATS
/// server of the test's own).
pub async fn spawn_system_on(call_config: call_svc::Config, nats: eventbus::NatsConfig) -> TestSystem {
    spawn(call_config, nats, "127.0.0.1:0".into()).await
}

/// The command path with payment-svc on a fixed address, so that a test can
/// stop it and start it again where call-svc keeps calling it.
pub async fn spawn_system_with_restartable_payment(call_config: call_svc::Config) -> TestSystem {
    let payment_addr = format!("127.0.0.1:{}", svc_kit::testing::restartable_port());
    spawn(call_config, eventbus::testing::isolated(), payment_addr).await
}

async fn spawn(
    call_config: call_svc::Config,
    nats: eventbus::NatsConfig,
    payment_listen_addr: String,
) -> TestSystem {
    svc_kit::testing::init_logs();
    let db_url = svc_kit::testing::fresh_database().await.expect("fresh database");
    let db = PgPool::connect(db_url.expose())
        .await
        .expect("connect to test database");
    let mut system = TestSystem {
        db_url,
        nats,
        db,
        call: None,
        dispatch: None,
        payment: None,
        query: None,
        call_config,
        payment_listen_addr,
        redis_prefix: format!("test:{}", Uuid::new_v4().simple()),
    };
    system.start_dispatch().await;
    system.start_payment().await;
    system.start_call().await;
    system
}

impl TestSystem {
    fn database(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: self.db_url.clone(),
            max_connections: 10,
            ..Default::default()
        }
    }

    pub async fn start_dispatch(&mut self) {
        let config = dispatch_svc::Config {
            listen_addr: "127.0.0.1:0".into(),
            trust: svc_kit::testing::trust(),
            database: self.database(),
            nats: self.nats.clone(),
            ..Default::default()
        };
        let app = dispatch_svc::App::build(config)
            .await
            .expect("build dispatch-svc");
        self.dispatch = Some(RunningService::start(app.local_addr(), |stop| {
            app.run_until_stopped(stop)
        }));
    }

    pub async fn start_payment(&mut self) {
        let config = payment_svc::Config {
            listen_addr: self.payment_listen_addr.clone(),
            trust: svc_kit::testing::trust(),
            database: self.database(),
            nats: self.nats.clone(),
            ..Default::default()
        };
        let app = payment_svc::App::build(config).await.expect("build payment-svc");
        self.payment = Some(RunningService::start(app.local_addr(), |stop| {
            app.run_until_stopped(stop)
        }));
    }

    /// Stops payment-svc gracefully, as a deploy or an outage would.
    pub async fn stop_payment(&mut self) {
        self.payment
            .take()
            .expect("payment-svc is running")
            .stop()
            .await
            .expect("payment-svc drains");
    }

    /// Starts call-svc pointed at the running dispatch and payment services
    /// (or at the address they had, if one is stopped).
    pub async fn start_call(&mut self) {
        let mut config = self.call_config.clone();
        config.database = self.database();
        config.nats = self.nats.clone();
        if let Some(dispatch) = &self.dispatch {
            config.dispatch = svc_kit::testing::patient_client(dispatch.url());
        }
        if let Some(payment) = &self.payment {
            config.payment = svc_kit::testing::patient_client(payment.url());
        }
        self.call_config = config.clone();
        let app = call_svc::App::build(config).await.expect("build call-svc");
        self.call = Some(RunningService::start(app.local_addr(), |stop| {
            app.run_until_stopped(stop)
        }));
    }

    /// Starts query-svc, projecting this system's events.
    pub async fn start_query(&mut self) {
        let mut config = query_svc::Config {
            listen_addr: "127.0.0.1:0".into(),
            trust: svc_kit::testing::trust(),
            nats: self.nats.clone(),
            read_your_writes_timeout_ms: 5_000,
            ..Default::default()
        };
        config.redis.key_prefix = self.redis_prefix.clone();
        config.consumer.retry_delay_ms = 100;
        let app = query_svc::App::build(config).await.expect("build query-svc");
        self.query = Some(RunningService::start(app.local_addr(), |stop| {
            app.run_until_stopped(stop)
        }));
    }

    pub fn query_client(&self) -> QueryServiceClient<Channel> {
        QueryServiceClient::new(Self::channel(&self.query))
    }

    fn channel(running: &Option<RunningService>) -> Channel {
        running.as_ref().expect("service is running").channel()
    }

    pub fn call_client(&self) -> CallServiceClient<Channel> {
        CallServiceClient::new(Self::channel(&self.call))
    }

    pub fn dispatch_client(&self) -> DispatchServiceClient<Channel> {
        DispatchServiceClient::new(Self::channel(&self.dispatch))
    }

    pub fn payment_client(&self) -> PaymentServiceClient<Channel> {
        PaymentServiceClient::new(Self::channel(&self.payment))
    }

    /// Registers a driver of `taxi_type`, online, standing at `at`.
    pub async fn online_driver_at(&self, taxi_type: TaxiType, at: LatLng) -> Uuid {
        let driver = Uuid::new_v4();
        let mut dispatch = self.dispatch_client();
        let register = RegisterDriverRequest {
            name: "Kim Gisa".into(),
            license_plate: "12가3456".into(),
            taxi_type: taxi_type.into(),
        };
        dispatch
            .register_driver(as_driver(driver, register))
            .await
            .expect("register");
        dispatch
            .set_online(as_driver(driver, SetOnlineRequest {}))
            .await
            .expect("online");
        let location = UpdateLocationRequest { location: Some(at) };
        dispatch
            .update_location(as_driver(driver, location))
            .await
            .expect("location");
        driver
    }

    /// A normal-taxi driver waiting at the pickup.
    pub async fn online_driver(&self) -> Uuid {
        self.online_driver_at(TaxiType::Normal, PICKUP).await
    }

    pub async fn request_call(&self, customer: Uuid) -> Call {
        self.request_call_paying(customer, "tok_visa").await
    }

    pub async fn request_call_paying(&self, customer: Uuid, payment_method: &str) -> Call {
        let request = call_request(payment_method);
        self.call_client()
            .request_call(as_customer(customer, request))
            .await
            .expect("request call")
            .into_inner()
            .call
            .expect("call")
    }

    /// A call accepted by a fresh driver: (call, driver).
    pub async fn accepted_call(&self, customer: Uuid) -> (Call, Uuid) {
        let driver = self.online_driver().await;
        let call = self.request_call(customer).await;
        let accepted = accept(&self.call_client(), driver, &call.call_id)
            .await
            .expect("accept");
        (accepted, driver)
    }

    pub async fn driver(&self, driver: Uuid) -> Driver {
        self.dispatch_client()
            .get_driver(as_driver(driver, GetDriverRequest {}))
            .await
            .expect("get driver")
            .into_inner()
            .driver
            .expect("driver")
    }

    pub async fn ledger(&self, call_id: &str) -> ListPaymentsResponse {
        let request = ListPaymentsRequest {
            call_id: call_id.into(),
        };
        self.payment_client()
            .list_payments(svc_kit::testing::as_caller(
                &Caller::Service("test".into()),
                request,
            ))
            .await
            .expect("list payments")
            .into_inner()
    }

    pub async fn get_call(&self, call_id: &str) -> Call {
        let request = taxi_proto::call::v1::GetCallRequest {
            call_id: call_id.into(),
        };
        self.call_client()
            .get_call(svc_kit::testing::as_caller(
                &Caller::Service("test".into()),
                request,
            ))
            .await
            .expect("get call")
            .into_inner()
            .call
            .expect("call")
    }

    /// Polls until the call reaches `status` (the sweeper works in the
    /// background), for up to 30 s.
    pub async fn wait_for_status(&self, call_id: &str, status: CallStatus) -> Call {
        for _ in 0..300 {
            let call = self.get_call(call_id).await;
            if call.status() == status {
                return call;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("call {call_id} never reached {status:?}");
    }

    /// Polls until dispatch-svc reports the driver in `status`, for up to 30 s;
    /// returns the status seen last.
    pub async fn wait_for_driver(&self, driver: Uuid, status: DriverStatus) -> DriverStatus {
        let mut seen = self.driver(driver).await.status();
        for _ in 0..300 {
            if seen == status {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            seen = self.driver(driver).await.status();
        }
        seen
    }

    /// Event types in call-svc's outbox for one aggregate, in commit order.
    pub async fn call_events(&self, call_id: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT event_type FROM call.outbox WHERE aggregate_id = $1::uuid ORDER BY seq")
            .bind(call_id)
            .fetch_all(&self.db)
            .await
            .expect("read outbox")
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
        let dispatch = DispatchServiceClient::new(config.dispatch.channel().expect("dispatch channel"));
        let payment = PaymentServiceClient::new(config.payment.channel().expect("payment channel"));
        let signer =
            svc_kit::identity::Signer::from_config("call-svc", &config.identity).expect("the signing key");
        let store = call_svc::store::Store::new(pool);
        call_svc::service::Calls::new(store, dispatch, payment, signer, config)
    }

    /// Every event type in call-svc's outbox, in commit order.
    pub async fn all_events(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT event_type FROM call.outbox ORDER BY seq")
            .fetch_all(&self.db)
            .await
            .expect("read outbox")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.expect("count")
    }
}

/// What a ledger entry moved from the customer: a charge counts, a refund
/// counts against, a declined or pending entry not at all.
pub fn signed_amount(entry: &LedgerEntry) -> i64 {
    match (entry.kind(), entry.status()) {
        (EntryKind::Refund, EntryStatus::Approved) => -entry.amount_krw,
        (_, EntryStatus::Approved) => entry.amount_krw,
        _ => 0,
    }
}

pub fn call_request(payment_method: &str) -> RequestCallRequest {
    RequestCallRequest {
        pickup: Some(PICKUP),
        dropoff: Some(DROPOFF),
        taxi_type: TaxiType::Normal.into(),
        idempotency_key: Uuid::new_v4().to_string(),
        payment_method: payment_method.into(),
    }
}

pub fn as_customer<T>(customer: Uuid, message: T) -> Request<T> {
    with_identity(Caller::Customer(customer), message)
}

pub fn as_driver<T>(driver: Uuid, message: T) -> Request<T> {
    with_identity(Caller::Driver(driver), message)
}

pub fn with_identity<T>(caller: Caller, message: T) -> Request<T> {
    svc_kit::testing::as_caller(&caller, message)
}

pub async fn accept(
    client: &CallServiceClient<Channel>,
    driver: Uuid,
    call_id: &str,
) -> Result<Call, Status> {
    let request = taxi_proto::call::v1::AcceptCallRequest {
        call_id: call_id.into(),
    };
    let response = client.clone().accept_call(as_driver(driver, request)).await?;
    Ok(response.into_inner().call.expect("call"))
}

pub async fn start(client: &CallServiceClient<Channel>, driver: Uuid, call_id: &str) -> Result<Call, Status> {
    let request = taxi_proto::call::v1::StartTripRequest {
        call_id: call_id.into(),
    };
    let response = client.clone().start_trip(as_driver(driver, request)).await?;
    Ok(response.into_inner().call.expect("call"))
}

pub async fn complete(
    client: &CallServiceClient<Channel>,
    driver: Uuid,
    call_id: &str,
    distance_m: i64,
) -> Result<Call, Status> {
    let request = taxi_proto::call::v1::CompleteTripRequest {
        call_id: call_id.into(),
        distance_m,
    };
    let response = client.clone().complete_trip(as_driver(driver, request)).await?;
    Ok(response.into_inner().call.expect("call"))
}

/// The field names of an INVALID_ARGUMENT's BadRequest details.
pub fn bad_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}
