//! Starting query-svc for one test, publishing events to its stream and
//! building the events of a trip.

use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, TimeZone as _, Utc};
use futures::StreamExt as _;
use prost::Message as _;
use query_svc::{Config, RedisConfig};
use svc_kit::{identity::Caller, testing::RunningService};
use taxi_proto::{
    call::v1::{Call, CallStatus, CancelReason},
    common::v1::{LatLng, TaxiType},
    events::v1::{
        CallAccepted, CallCanceled, CallRejected, CallRequested, EventEnvelope, TripCompleted, TripStarted,
        event_envelope::Payload,
    },
    query::v1::{
        Bucket, CallView, GetCallViewRequest, GetDashboardRequest, GetDashboardResponse, ListMyCallsRequest,
        WatchCallRequest, WatchCallResponse, query_service_client::QueryServiceClient,
    },
};
use tonic::{Request, Status, transport::Channel};
use uuid::Uuid;

/// query-svc under a fresh Redis key prefix and NATS prefix.
pub struct TestApp {
    pub config: Config,
    pub service: Option<RunningService>,
    pub js: jetstream::Context,
    pub redis: redis::aio::MultiplexedConnection,
    cleaned: bool,
}

/// Settings that keep tests fast and isolated.
pub fn test_config() -> Config {
    let id = Uuid::new_v4();
    let mut config = Config {
        listen_addr: "127.0.0.1:0".into(),
        admin_addr: "127.0.0.1:0".into(),
        trust: svc_kit::testing::trust(),
        redis: RedisConfig {
            key_prefix: format!("test:{id}"),
            ..Default::default()
        },
        health_interval_ms: 200,
        // Long enough for a busy test machine; the test of the deadline sets its own.
        read_your_writes_timeout_ms: 10_000,
        ..Default::default()
    };
    config.nats.prefix = format!("test_{}", id.simple());
    config.consumer.retry_delay_ms = 100;
    config.consumer.max_retry_delay_ms = 1_000;
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config()).await
}

pub async fn spawn_app_with(config: Config) -> TestApp {
    svc_kit::testing::init_logs();
    let js = eventbus::stream::connect(&config.nats, "query-svc-test")
        .await
        .expect("connect to NATS");
    eventbus::stream::ensure_streams(&js, &config.nats)
        .await
        .expect("create streams");
    let redis = redis::Client::open(config.redis.url.expose())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let mut app = TestApp {
        config,
        service: None,
        js,
        redis,
        cleaned: false,
    };
    app.start().await;
    app
}

impl TestApp {
    pub async fn start(&mut self) {
        let app = query_svc::App::build(self.config.clone())
            .await
            .expect("build query-svc");
        self.service = Some(RunningService::start(app.local_addr(), |stop| {
            app.run_until_stopped(stop)
        }));
    }

    pub fn channel(&self) -> Channel {
        self.service.as_ref().expect("service is running").channel()
    }

    pub fn client(&self) -> QueryServiceClient<Channel> {
        QueryServiceClient::new(self.channel())
    }

    /// Publishes `event` on its subject, as the outbox relay would (but with
    /// no message id, so a republished event really is delivered twice).
    pub async fn publish(&self, event: &EventEnvelope) {
        let payload = event.payload.as_ref().expect("event has a payload");
        let subject = self
            .config
            .nats
            .subjects()
            .event(payload.event_type(), &event.aggregate_id);
        self.publish_raw(subject, event.encode_to_vec()).await;
    }

    pub async fn publish_all<'a>(&self, events: impl IntoIterator<Item = &'a EventEnvelope>) {
        for event in events {
            self.publish(event).await;
        }
    }

    pub async fn publish_raw(&self, subject: String, payload: Vec<u8>) {
        self.js
            .publish(subject, payload.into())
            .await
            .expect("publish")
            .await
            .expect("PubAck");
    }

    /// Waits until the projector has handled every message in the stream.
    pub async fn caught_up(&self) {
        let subjects = self.config.nats.subjects();
        let wait = async {
            loop {
                let mut stream = self.js.get_stream(subjects.stream()).await.expect("stream");
                let last = stream.info().await.expect("stream info").state.last_sequence;
                let done = stream
                    .consumer_info(query_svc::PROJECTOR_DURABLE)
                    .await
                    .is_ok_and(|info| {
                        info.delivered.stream_sequence >= last
                            && info.num_pending == 0
                            && info.num_ack_pending == 0
                    });
                if done {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .expect("the projector catches up within 20 s");
    }

    /// Messages in the dead-letter stream.
    pub async fn dead_letters(&self) -> u64 {
        let mut stream = self
            .js
            .get_stream(self.config.nats.subjects().dead_letter_stream())
            .await
            .expect("dead-letter stream");
        stream.info().await.expect("stream info").state.messages
    }

    /// Every Redis key under this test's prefix.
    pub async fn keys(&self, pattern_suffix: &str) -> Vec<String> {
        let mut conn = self.redis.clone();
        let pattern = format!("{}:{pattern_suffix}", self.config.redis.key_prefix);
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1_000)
                .query_async(&mut conn)
                .await
                .expect("scan");
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    /// Deletes this test's keys (never anything else), as if Redis were emptied.
    pub async fn delete_keys(&self) {
        delete_prefix(&mut self.redis.clone(), &self.config.redis.key_prefix).await;
    }

    /// Stops the service and removes this test's keys and streams. A test
    /// that panics before calling it is cleaned up on drop instead.
    pub async fn cleanup(mut self) {
        if let Some(service) = self.service.take() {
            service.stop().await.expect("graceful stop");
        }
        remove_test_data(&self.config, &self.js, &mut self.redis.clone()).await;
        self.cleaned = true;
    }

    pub async fn view(&self, who: &Caller, call_id: &str, min_version: i64) -> Result<CallView, Status> {
        let request = GetCallViewRequest {
            call_id: call_id.to_owned(),
            min_version,
        };
        Ok(self
            .client()
            .get_call_view(as_caller(who, request))
            .await?
            .into_inner()
            .view
            .expect("a view"))
    }

    /// Every page of the customer's calls, in order.
    pub async fn all_my_calls(&self, customer: Uuid, page_size: i32) -> Vec<Vec<CallView>> {
        let mut pages = Vec::new();
        let mut token = String::new();
        loop {
            let request = ListMyCallsRequest {
                page_size,
                page_token: token,
            };
            let page = self
                .client()
                .list_my_calls(as_caller(&Caller::Customer(customer), request))
                .await
                .expect("list my calls")
                .into_inner();
            pages.push(page.calls);
            if page.next_page_token.is_empty() {
                return pages;
            }
            token = page.next_page_token;
        }
    }

    pub async fn dashboard(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> GetDashboardResponse {
        let request = GetDashboardRequest {
            from: Some(svc_kit::clock::to_proto(from)),
            to: Some(svc_kit::clock::to_proto(to)),
            bucket: bucket.into(),
        };
        self.client()
            .get_dashboard(as_caller(&analyst(), request))
            .await
            .expect("dashboard")
            .into_inner()
    }

    /// Opens a watch and collects what it sends until it ends (at most 10 s).
    pub async fn watch_until_end(&self, who: &Caller, call_id: &str, from_version: i64) -> Vec<CallView> {
        let stream = self.watch(who, call_id, from_version).await.expect("watch");
        collect_watch(stream).await
    }

    pub async fn watch(
        &self,
        who: &Caller,
        call_id: &str,
        from_version: i64,
    ) -> Result<tonic::Streaming<WatchCallResponse>, Status> {
        let request = WatchCallRequest {
            call_id: call_id.to_owned(),
            from_version,
        };
        Ok(self
            .client()
            .watch_call(as_caller(who, request))
            .await?
            .into_inner())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        if let Some(service) = self.service.take() {
            service.kill();
        }
        // The test's runtime cannot be blocked on from here: clean up on a
        // thread of our own with its own runtime and connections.
        let config = self.config.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async {
                let Ok(client) = redis::Client::open(config.redis.url.expose()) else {
                    return;
                };
                let Ok(mut redis) = client.get_multiplexed_async_connection().await else {
                    return;
                };
                let Ok(js) = eventbus::stream::connect(&config.nats, "query-svc-test-cleanup").await else {
                    return;
                };
                remove_test_data(&config, &js, &mut redis).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Deletes the test's keys and streams.
async fn remove_test_data(
    config: &Config,
    js: &jetstream::Context,
    redis: &mut redis::aio::MultiplexedConnection,
) {
    delete_prefix(redis, &config.redis.key_prefix).await;
    let subjects = config.nats.subjects();
    let _ = js.delete_stream(subjects.stream()).await;
    let _ = js.delete_stream(subjects.dead_letter_stream()).await;
}

async fn delete_prefix(redis: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    let pattern = format!("{prefix}:*");
    let mut cursor = 0u64;
    loop {
        let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(redis)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _ = redis::cmd("UNLINK").arg(&keys).query_async::<u64>(redis).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

pub async fn collect_watch(mut stream: tonic::Streaming<WatchCallResponse>) -> Vec<CallView> {
    let collect = async {
        let mut views = Vec::new();
        while let Some(message) = stream.next().await {
            views.push(message.expect("watch message").view.expect("a view"));
        }
        views
    };
    tokio::time::timeout(Duration::from_secs(10), collect)
        .await
        .expect("the watch ends within 10 s")
}

pub fn analyst() -> Caller {
    Caller::Analyst(Uuid::new_v4())
}

pub fn as_caller<T>(who: &Caller, message: T) -> Request<T> {
    svc_kit::testing::as_caller(who, message)
}

/// A fixed instant, so bucket boundaries are known.
pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid time")
}

/// A call rejected for lack of taxis.
pub fn rejected(customer: Uuid, taxi_type: TaxiType, at: DateTime<Utc>) -> EventEnvelope {
    let id = Uuid::new_v4();
    let payload = Payload::CallRejected(CallRejected {
        call_id: id.to_string(),
        customer_id: customer.to_string(),
        taxi_type: taxi_type.into(),
        pickup: Some(PICKUP),
        dropoff: Some(DROPOFF),
        quoted_fare_krw: 15_000,
    });
    outbox::envelope(id, 1, at, payload)
}

pub const PICKUP: LatLng = LatLng {
    latitude: 37.5547,
    longitude: 126.9707,
};
pub const DROPOFF: LatLng = LatLng {
    latitude: 37.4979,
    longitude: 127.0276,
};

/// A call's life as the events call-svc would emit, one transition at a time.
#[derive(Debug, Clone)]
pub struct Trip {
    pub call: Call,
    pub events: Vec<EventEnvelope>,
}

impl Trip {
    pub fn request(customer: Uuid, taxi_type: TaxiType, at: DateTime<Utc>) -> Self {
        let id = Uuid::new_v4();
        let call = Call {
            call_id: id.to_string(),
            customer_id: customer.to_string(),
            taxi_type: taxi_type.into(),
            status: CallStatus::Requested.into(),
            pickup: Some(PICKUP),
            dropoff: Some(DROPOFF),
            quoted_fare_krw: 15_000,
            version: 1,
            requested_at: Some(svc_kit::clock::to_proto(at)),
            ..Default::default()
        };
        let mut trip = Self {
            call,
            events: Vec::new(),
        };
        trip.emit(at, |c| Payload::CallRequested(CallRequested { call: Some(c) }));
        trip
    }

    /// A trip requested at `at` that runs to completion within the hour.
    pub fn completed_at(customer: Uuid, at: DateTime<Utc>) -> Self {
        let minute = chrono::Duration::minutes(1);
        let mut trip = Self::request(customer, TaxiType::Normal, at);
        trip.accept(at + minute * 2);
        trip.start(at + minute * 5);
        trip.complete(at + minute * 25, 17_000);
        trip
    }

    pub fn id(&self) -> &str {
        &self.call.call_id
    }

    fn emit(&mut self, at: DateTime<Utc>, payload: impl FnOnce(Call) -> Payload) {
        let id = Uuid::parse_str(&self.call.call_id).expect("uuid");
        let event = outbox::envelope(id, self.call.version, at, payload(self.call.clone()));
        self.events.push(event);
    }

    fn next(&mut self, status: CallStatus) {
        self.call.version += 1;
        self.call.status = status.into();
    }

    pub fn accept(&mut self, at: DateTime<Utc>) -> &mut Self {
        self.next(CallStatus::Accepted);
        self.call.driver_id = Uuid::new_v4().to_string();
        self.call.advance_krw = self.call.quoted_fare_krw;
        self.call.accepted_at = Some(svc_kit::clock::to_proto(at));
        self.emit(at, |c| Payload::CallAccepted(CallAccepted { call: Some(c) }));
        self
    }

    pub fn start(&mut self, at: DateTime<Utc>) -> &mut Self {
        self.next(CallStatus::InTrip);
        self.call.started_at = Some(svc_kit::clock::to_proto(at));
        self.emit(at, |c| Payload::TripStarted(TripStarted { call: Some(c) }));
        self
    }

    pub fn complete(&mut self, at: DateTime<Utc>, final_fare_krw: i64) -> &mut Self {
        self.next(CallStatus::Completed);
        self.call.distance_m = 8_000;
        self.call.final_fare_krw = final_fare_krw;
        self.call.completed_at = Some(svc_kit::clock::to_proto(at));
        self.emit(at, |c| Payload::TripCompleted(TripCompleted { call: Some(c) }));
        self
    }

    pub fn cancel(&mut self, at: DateTime<Utc>, reason: CancelReason, fee_krw: i64) -> &mut Self {
        self.next(CallStatus::Canceled);
        self.call.cancel_reason = reason.into();
        self.call.cancel_fee_krw = fee_krw;
        self.call.canceled_at = Some(svc_kit::clock::to_proto(at));
        self.emit(at, |c| Payload::CallCanceled(CallCanceled { call: Some(c) }));
        self
    }
}

/// Everything the read side shows about some trips: views, customers' call
/// lists and the dashboard over `[from, to)` by hour.
#[derive(Debug, PartialEq)]
pub struct ReadModel {
    pub views: Vec<CallView>,
    pub lists: Vec<Vec<Vec<CallView>>>,
    pub dashboard: GetDashboardResponse,
}

impl TestApp {
    pub async fn read_model(&self, trips: &[Trip], from: DateTime<Utc>, to: DateTime<Utc>) -> ReadModel {
        let mut views = Vec::new();
        let mut customers = Vec::new();
        for trip in trips {
            views.push(self.view(&analyst(), trip.id(), 0).await.expect("view"));
            let customer = Uuid::parse_str(&trip.call.customer_id).expect("uuid");
            if !customers.contains(&customer) {
                customers.push(customer);
            }
        }
        let mut lists = Vec::new();
        for customer in customers {
            lists.push(self.all_my_calls(customer, 2).await);
        }
        ReadModel {
            views,
            lists,
            dashboard: self.dashboard(from, to, Bucket::Hour).await,
        }
    }
}

/// A mixed day: completed trips, an expiry, a cancellation with a fee, a
/// payment decline and a rejection, for three customers.
pub fn mixed_day(customers: [Uuid; 3]) -> (Vec<Trip>, Vec<EventEnvelope>) {
    let [a, b, c] = customers;
    let minute = chrono::Duration::minutes(1);
    let day = |h, m| utc(2031, 3, 4, h, m);
    let t1 = Trip::completed_at(a, day(9, 5));
    let mut t2 = Trip::request(a, TaxiType::Premium, day(9, 20));
    t2.accept(day(9, 24))
        .start(day(9, 30))
        .complete(day(10, 10), 30_000);
    let mut t3 = Trip::request(b, TaxiType::Normal, day(10, 0));
    t3.cancel(day(10, 5), CancelReason::Expired, 0);
    let mut t4 = Trip::request(b, TaxiType::Van, day(10, 30));
    t4.accept(day(10, 30) + minute * 6)
        .cancel(day(10, 40), CancelReason::Customer, 1_000);
    let mut t5 = Trip::request(c, TaxiType::Normal, day(11, 0));
    t5.cancel(day(11, 1), CancelReason::PaymentDeclined, 0);
    let t6 = Trip::request(a, TaxiType::Normal, utc(2031, 3, 5, 8, 0));
    let trips = vec![t1, t2, t3, t4, t5, t6];
    let mut events: Vec<EventEnvelope> = trips.iter().flat_map(|t| t.events.clone()).collect();
    events.push(rejected(c, TaxiType::Van, day(9, 50)));
    (trips, events)
}
