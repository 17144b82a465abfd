//! What the command-path tests share beyond starting the services (which
//! `system_tests::System` does): the system with its query settings, drivers
//! and calls made directly through the services' APIs, the trip's commands,
//! and reads of call-svc's outbox.

use std::ops::{Deref, DerefMut};

use svc_kit::identity::Caller;
pub use system_tests::{
    DROPOFF, PICKUP, QuerySettings, System, as_customer, as_driver, call_request, test_call_config,
    with_identity,
};
use system_tests::{
    poll::{PATIENCE, poll},
    trip,
};
use taxi_proto::{
    call::v1::{Call, CallStatus, call_service_client::CallServiceClient},
    common::v1::{LatLng, TaxiType},
    dispatch::v1::{Driver, DriverStatus},
    payment::v1::{EntryKind, EntryStatus, LedgerEntry},
};
use tonic::{Status, transport::Channel};
use uuid::Uuid;

/// The command path of one test: dispatch-svc, payment-svc and call-svc on
/// one fresh database (query-svc once a test starts it).
pub struct TestSystem(System);

impl Deref for TestSystem {
    type Target = System;

    fn deref(&self) -> &System {
        &self.0
    }
}

impl DerefMut for TestSystem {
    fn deref_mut(&mut self) -> &mut System {
        &mut self.0
    }
}

/// How the command path's query-svc runs: read-your-writes reads wait up to
/// 5 s, and its health follower keeps query-svc's own pace.
fn query_settings() -> QuerySettings {
    QuerySettings {
        read_your_writes_timeout_ms: 5_000,
        health_interval_ms: query_svc::Config::default().health_interval_ms,
        ..QuerySettings::default()
    }
}

pub async fn spawn(builder: system_tests::SystemBuilder) -> TestSystem {
    TestSystem(builder.query_settings(query_settings()).start().await)
}

pub async fn spawn_system() -> TestSystem {
    spawn_system_with(test_call_config()).await
}

pub async fn spawn_system_with(call_config: call_svc::Config) -> TestSystem {
    spawn(System::builder().call_config(call_config)).await
}

/// The command path publishing its events under `nats` (for example to a NATS
/// server of the test's own).
pub async fn spawn_system_on(call_config: call_svc::Config, nats: eventbus::NatsConfig) -> TestSystem {
    spawn(System::builder().call_config(call_config).nats(nats)).await
}

/// The command path with payment-svc on a fixed address, so that a test can
/// stop it and start it again where call-svc keeps calling it.
pub async fn spawn_system_with_restartable_payment(call_config: call_svc::Config) -> TestSystem {
    spawn(System::builder().call_config(call_config).restartable_payment()).await
}

impl TestSystem {
    /// Registers a driver of `taxi_type`, online, standing at `at`.
    pub async fn online_driver_at(&self, taxi_type: TaxiType, at: LatLng) -> Uuid {
        let driver = Uuid::new_v4();
        trip::online_driver(&self.dispatch_client(), &Caller::Driver(driver), taxi_type, at).await;
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
        trip::request_call(&self.call_client(), &Caller::Customer(customer), request).await
    }

    /// A call accepted by a fresh driver: (call, driver).
    pub async fn accepted_call(&self, customer: Uuid) -> (Call, Uuid) {
        let driver = self.online_driver().await;
        let call = self.request_call(customer).await;
        self.wait_for_offer(&call.call_id, driver).await;
        let accepted = accept(&self.call_client(), driver, &call.call_id)
            .await
            .expect("accept");
        (accepted, driver)
    }

    pub async fn driver(&self, driver: Uuid) -> Driver {
        trip::driver_record(&self.dispatch_client(), &Caller::Driver(driver)).await
    }

    /// Polls until the call reaches `status` (the sweeper works in the
    /// background), for up to 30 s.
    pub async fn wait_for_status(&self, call_id: &str, status: CallStatus) -> Call {
        let call = poll(
            PATIENCE,
            || self.get_call(call_id),
            |call| call.status() == status,
        )
        .await;
        assert_eq!(call.status(), status, "call {call_id} never reached {status:?}");
        call
    }

    /// Polls until dispatch-svc reports the driver in `status`, for up to 30 s;
    /// returns the status seen last.
    pub async fn wait_for_driver(&self, driver: Uuid, status: DriverStatus) -> DriverStatus {
        let seen = |driver| async move { self.driver(driver).await.status() };
        poll(PATIENCE, || seen(driver), |&seen| seen == status).await
    }

    /// Event types in call-svc's outbox for one aggregate, in commit order.
    pub async fn call_events(&self, call_id: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT event_type FROM call.outbox WHERE aggregate_id = $1::uuid ORDER BY seq")
            .bind(call_id)
            .fetch_all(&self.db)
            .await
            .expect("read outbox")
    }

    /// Every event type in call-svc's outbox, in commit order.
    pub async fn all_events(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT event_type FROM call.outbox ORDER BY seq")
            .fetch_all(&self.db)
            .await
            .expect("read outbox")
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

pub async fn accept(calls: &CallServiceClient<Channel>, driver: Uuid, call_id: &str) -> Result<Call, Status> {
    trip::accept(calls, &Caller::Driver(driver), call_id).await
}

pub async fn start(calls: &CallServiceClient<Channel>, driver: Uuid, call_id: &str) -> Result<Call, Status> {
    trip::start_trip(calls, &Caller::Driver(driver), call_id).await
}

pub async fn complete(
    calls: &CallServiceClient<Channel>,
    driver: Uuid,
    call_id: &str,
    distance_m: i64,
) -> Result<Call, Status> {
    trip::complete_trip(calls, &Caller::Driver(driver), call_id, distance_m).await
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
