//! Spawns dispatch-svc on a fresh database and builds requests that carry an
//! identity.

use std::{future::Future, str::FromStr as _, time::Duration};

use async_nats::jetstream;
use dispatch_svc::{App, Config};
use prost::Message as _;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use svc_kit::testing::RunningService;
use svc_kit::{db::DatabaseConfig, identity::Caller};
use taxi_proto::{
    call::v1::{Call, CallStatus, CancelReason},
    common::v1::{LatLng, TaxiType},
    dispatch::v1::{
        AssignDriverRequest, AssignDriverResponse, CheckAvailabilityRequest, Driver, Offer,
        RegisterDriverRequest, SetOnlineRequest, UpdateLocationRequest, WatchOffersRequest,
        WatchOffersResponse, dispatch_service_client::DispatchServiceClient, watch_offers_response::Event,
    },
    events::v1::{CallAccepted, CallCanceled, CallRequested, event_envelope::Payload},
};
use tokio::sync::OnceCell;
use tonic::{Request, Response, Status, Streaming, transport::Channel};
use tonic_types::StatusExt as _;
use uuid::Uuid;

/// Seoul Station.
pub(crate) const SEOUL_STATION: (f64, f64) = (37.5547, 126.9707);
/// About 8 km south-east of Seoul Station.
pub(crate) const GANGNAM: (f64, f64) = (37.4979, 127.0276);
/// One kilometre of latitude, in degrees.
pub(crate) const KM_OF_LATITUDE: f64 = 1.0 / 111.2;

/// The point `km` kilometres north of `from`.
pub(crate) fn north_of((lat, lng): (f64, f64), km: f64) -> (f64, f64) {
    (lat + km * KM_OF_LATITUDE, lng)
}

pub(crate) struct TestApp {
    pub(crate) channel: Channel,
    pub(crate) client: DispatchServiceClient<Channel>,
    pub(crate) db: PgPool,
    /// The running service's configuration: its database and NATS prefix.
    pub(crate) config: Config,
    /// The test's own JetStream connection, to publish call events.
    pub(crate) js: jetstream::Context,
    /// Set once the test made sure the event streams exist.
    streams: OnceCell<()>,
    service: Option<RunningService>,
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns dispatch-svc with the test configuration changed by `adjust`.
pub(crate) async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    svc_kit::testing::init_logs();
    let url = svc_kit::testing::fresh_database()
        .await
        .expect("a fresh test database");
    let mut config = Config {
        listen_addr: "127.0.0.1:0".into(),
        admin_addr: "127.0.0.1:0".into(),
        trust: svc_kit::testing::trust(),
        nats: eventbus::testing::isolated(),
        database: DatabaseConfig {
            url: url.clone(),
            ..DatabaseConfig::default()
        },
        health_interval_ms: 200,
        ..Config::default()
    };
    adjust(&mut config);
    let (service, channel) = start(&config).await;
    let options = PgConnectOptions::from_str(url.expose())
        .expect("a valid database URL")
        .options([("search_path", dispatch_svc::store::SCHEMA)]);
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .expect("the test database accepts connections");
    let js = eventbus::stream::connect(&config.nats, "dispatch-svc-test")
        .await
        .expect("NATS connects");
    TestApp {
        client: DispatchServiceClient::new(channel.clone()),
        channel,
        db,
        config,
        js,
        streams: OnceCell::new(),
        service: Some(service),
    }
}

async fn start(config: &Config) -> (RunningService, Channel) {
    let app = App::build(config.clone()).await.expect("dispatch-svc builds");
    let service = RunningService::start(app.local_addr(), |stop| app.run_until_stopped(stop));
    let channel = Channel::from_shared(service.url())
        .expect("a valid URI")
        .connect()
        .await
        .expect("the server accepts connections");
    (service, channel)
}

pub(crate) fn as_driver<T>(driver_id: Uuid, message: T) -> Request<T> {
    as_caller(&Caller::Driver(driver_id), message)
}

pub(crate) fn as_service<T>(message: T) -> Request<T> {
    svc_kit::testing::as_caller(&Caller::Service("call-svc".into()), message)
}

pub(crate) fn as_customer<T>(message: T) -> Request<T> {
    as_caller(&Caller::Customer(Uuid::new_v4()), message)
}

fn as_caller<T>(caller: &Caller, message: T) -> Request<T> {
    svc_kit::testing::as_caller(caller, message)
}

pub(crate) fn assign_request(
    call_id: Uuid,
    driver_id: Uuid,
    taxi_type: TaxiType,
) -> Request<AssignDriverRequest> {
    as_service(AssignDriverRequest {
        call_id: call_id.to_string(),
        driver_id: driver_id.to_string(),
        taxi_type: taxi_type.into(),
    })
}

pub(crate) fn lat_lng((latitude, longitude): (f64, f64)) -> Option<LatLng> {
    Some(LatLng { latitude, longitude })
}

/// The fields named in an INVALID_ARGUMENT's BadRequest details.
pub(crate) fn bad_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect()
}

impl TestApp {
    /// Stops the service gracefully, as a rolling update would.
    pub(crate) async fn stop(&mut self) {
        self.service
            .take()
            .expect("the service is running")
            .stop()
            .await
            .expect("the service stops cleanly");
    }

    /// Starts a new instance on the same database and NATS prefix.
    pub(crate) async fn restart(&mut self) {
        assert!(self.service.is_none(), "stop the service first");
        let (service, channel) = start(&self.config).await;
        self.client = DispatchServiceClient::new(channel.clone());
        self.channel = channel;
        self.service = Some(service);
    }

    /// Registers a new driver of `taxi_type`; they start offline.
    pub(crate) async fn register(&self, taxi_type: TaxiType) -> Uuid {
        let driver_id = Uuid::new_v4();
        let request = RegisterDriverRequest {
            name: "Kim Minsu".into(),
            license_plate: "12가3456".into(),
            taxi_type: taxi_type.into(),
        };
        self.client
            .clone()
            .register_driver(as_driver(driver_id, request))
            .await
            .expect("registration succeeds");
        driver_id
    }

    pub(crate) async fn set_online(&self, driver_id: Uuid) -> Driver {
        self.client
            .clone()
            .set_online(as_driver(driver_id, SetOnlineRequest {}))
            .await
            .expect("going online succeeds")
            .into_inner()
            .driver
            .expect("a driver")
    }

    pub(crate) async fn move_to(&self, driver_id: Uuid, at: (f64, f64)) {
        let request = UpdateLocationRequest {
            location: lat_lng(at),
        };
        self.client
            .clone()
            .update_location(as_driver(driver_id, request))
            .await
            .expect("location update succeeds");
    }

    /// A registered, online driver of `taxi_type` standing at `at`.
    pub(crate) async fn available_driver(&self, taxi_type: TaxiType, at: (f64, f64)) -> Uuid {
        let driver_id = self.register(taxi_type).await;
        self.set_online(driver_id).await;
        self.move_to(driver_id, at).await;
        driver_id
    }

    pub(crate) async fn available_count(
        &self,
        taxi_type: TaxiType,
        pickup: (f64, f64),
        radius_m: i32,
    ) -> i32 {
        let request = CheckAvailabilityRequest {
            taxi_type: taxi_type.into(),
            pickup: lat_lng(pickup),
            radius_m,
        };
        self.client
            .clone()
            .check_availability(as_service(request))
            .await
            .expect("availability check succeeds")
            .into_inner()
            .available_drivers
    }

    /// Gives the driver a live offer of the call, written straight into the
    /// store, for tests of AssignDriver that are not about offers (only a
    /// driver holding one may be assigned).
    pub(crate) async fn offer(&self, call_id: Uuid, driver_id: Uuid) {
        sqlx::query(
            "INSERT INTO offers (call_id, driver_id, taxi_type, pickup_lat, pickup_lng, quoted_fare_krw,
                 distance_to_pickup_m, offered_at, expires_at, notified_at)
             VALUES ($1, $2, 'TAXI_TYPE_NORMAL', $3, $4, 12800, 0, now(), now() + interval '1 hour', now())
             ON CONFLICT DO NOTHING",
        )
        .bind(call_id)
        .bind(driver_id)
        .bind(SEOUL_STATION.0)
        .bind(SEOUL_STATION.1)
        .execute(&self.db)
        .await
        .expect("the offer is stored");
    }

    /// AssignDriver, by a driver who holds a live offer of the call.
    pub(crate) async fn assign(
        &self,
        call_id: Uuid,
        driver_id: Uuid,
        taxi_type: TaxiType,
    ) -> Result<Response<AssignDriverResponse>, Status> {
        self.offer(call_id, driver_id).await;
        self.client
            .clone()
            .assign_driver(assign_request(call_id, driver_id, taxi_type))
            .await
    }

    /// How many outbox rows have `event_type` (such as `driver.assigned`).
    pub(crate) async fn events(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.db)
            .await
            .expect("outbox is readable")
    }

    /// Rows in drivers, assignments and outbox, to show nothing was written.
    pub(crate) async fn row_counts(&self) -> (i64, i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM drivers), (SELECT count(*) FROM assignments),
                    (SELECT count(*) FROM outbox)",
        )
        .fetch_one(&self.db)
        .await
        .expect("tables are readable")
    }

    pub(crate) async fn stored_status(&self, driver_id: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM drivers WHERE driver_id = $1")
            .bind(driver_id)
            .fetch_one(&self.db)
            .await
            .expect("the driver is stored")
    }
}

/// How long a test waits for something that should happen at once.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// A call's state as call-svc's events carry it.
pub(crate) fn call_snapshot(call_id: Uuid, taxi_type: TaxiType, pickup: (f64, f64)) -> Call {
    Call {
        call_id: call_id.to_string(),
        customer_id: Uuid::new_v4().to_string(),
        taxi_type: taxi_type.into(),
        status: CallStatus::Requested.into(),
        pickup: lat_lng(pickup),
        dropoff: lat_lng(GANGNAM),
        quoted_fare_krw: 12_800,
        version: 1,
        ..Call::default()
    }
}

pub(crate) fn call_requested(call_id: Uuid, taxi_type: TaxiType, pickup: (f64, f64)) -> Payload {
    Payload::CallRequested(CallRequested {
        call: Some(call_snapshot(call_id, taxi_type, pickup)),
    })
}

pub(crate) fn call_accepted(call_id: Uuid, driver_id: Uuid) -> Payload {
    let mut call = call_snapshot(call_id, TaxiType::Normal, SEOUL_STATION);
    call.status = CallStatus::Accepted.into();
    call.driver_id = driver_id.to_string();
    call.version = 2;
    Payload::CallAccepted(CallAccepted { call: Some(call) })
}

pub(crate) fn call_canceled(call_id: Uuid) -> Payload {
    let mut call = call_snapshot(call_id, TaxiType::Normal, SEOUL_STATION);
    call.status = CallStatus::Canceled.into();
    call.cancel_reason = CancelReason::Customer.into();
    call.version = 2;
    Payload::CallCanceled(CallCanceled { call: Some(call) })
}

/// The offer a stream shows.
pub(crate) fn offer_of(event: &Event) -> &Offer {
    match event {
        Event::Offer(offer) => offer,
        other => panic!("expected an offer, got {other:?}"),
    }
}

/// The withdrawal of `call_id`.
pub(crate) fn withdrawal(call_id: Uuid) -> Event {
    Event::WithdrawnCallId(call_id.to_string())
}

/// Waits for the stream's next event.
pub(crate) async fn next_event(stream: &mut Streaming<WatchOffersResponse>) -> Event {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an event in time")
        .expect("a healthy stream")
        .expect("an open stream")
        .event
        .expect("an event")
}

/// Fails if the stream shows anything within `quiet`.
pub(crate) async fn assert_quiet(stream: &mut Streaming<WatchOffersResponse>, quiet: Duration) {
    if let Ok(message) = tokio::time::timeout(quiet, stream.message()).await {
        panic!("expected nothing, got {message:?}");
    }
}

/// Polls `check` until it holds.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Publishes a call event to JetStream as call-svc's relay would (but
    /// without a message id, so publishing it twice delivers it twice).
    pub(crate) async fn publish_call_event(&self, call_id: Uuid, version: i64, payload: Payload) {
        let subject = self
            .config
            .nats
            .subjects()
            .event(payload.event_type(), &call_id.to_string());
        let envelope = outbox::envelope(call_id, version, svc_kit::clock::now(), payload);
        self.publish_raw(subject, envelope.encode_to_vec()).await;
    }

    /// Publishes `payload` as is on `subject`.
    pub(crate) async fn publish_raw(&self, subject: String, payload: Vec<u8>) {
        // The service creates the streams too, but perhaps not yet.
        self.streams
            .get_or_init(|| async {
                eventbus::stream::ensure_streams(&self.js, &self.config.nats)
                    .await
                    .expect("the event streams exist");
            })
            .await;
        self.js
            .publish(subject, payload.into())
            .await
            .expect("published")
            .await
            .expect("acknowledged by JetStream");
    }

    /// The driver's WatchOffers stream, once the server has subscribed it.
    pub(crate) async fn watch(&self, driver_id: Uuid) -> Streaming<WatchOffersResponse> {
        self.client
            .clone()
            .watch_offers(as_driver(driver_id, WatchOffersRequest {}))
            .await
            .expect("the stream opens")
            .into_inner()
    }

    /// The drivers the call is offered to, as stored.
    pub(crate) async fn offered_drivers(&self, call_id: Uuid) -> Vec<Uuid> {
        sqlx::query_scalar("SELECT driver_id FROM offers WHERE call_id = $1 ORDER BY distance_to_pickup_m")
            .bind(call_id)
            .fetch_all(&self.db)
            .await
            .expect("offers are readable")
    }
}
