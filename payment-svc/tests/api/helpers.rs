//! Spawns payment-svc on a free port with its own database, and gives tests a
//! client, a pool for assertions, request builders and test providers.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use payment_svc::{
    App, Config,
    provider::{PaymentProvider, ProviderError, ProviderFuture, SimulatedProvider},
    store,
};
use sqlx::PgPool;
use svc_kit::testing::RunningService;
use svc_kit::{db::DatabaseConfig, identity::Caller};
use taxi_proto::payment::v1::{
    ChargeAdvanceRequest, LedgerEntry, RefundRequest, SettleFinalRequest, SettleFinalResponse,
    payment_service_client::PaymentServiceClient,
};
use tonic::{
    Request, Status,
    transport::{Channel, Endpoint},
};
use uuid::Uuid;

pub(crate) const CARD: &str = "tok_visa";

pub(crate) struct TestApp {
    pub(crate) channel: Channel,
    pub(crate) client: PaymentServiceClient<Channel>,
    pub(crate) db: PgPool,
    _service: RunningService,
}

/// payment-svc with the simulated provider.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(Arc::new(SimulatedProvider)).await
}

/// payment-svc charging through `provider`.
pub(crate) async fn spawn_app_with(provider: Arc<dyn PaymentProvider>) -> TestApp {
    spawn_app_configured(provider, |_| {}).await
}

/// payment-svc charging through `provider`, with the test configuration
/// changed by `adjust`.
pub(crate) async fn spawn_app_configured(
    provider: Arc<dyn PaymentProvider>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    svc_kit::testing::init_logs();
    let url = svc_kit::testing::fresh_database()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 accepts user postgres");
    let mut config = Config {
        listen_addr: "127.0.0.1:0".into(),
        admin_addr: "127.0.0.1:0".into(),
        trust: svc_kit::testing::trust(),
        nats: eventbus::testing::isolated(),
        database: DatabaseConfig {
            url,
            ..DatabaseConfig::default()
        },
        health_interval_ms: 100,
        ..Config::default()
    };
    adjust(&mut config);
    let app = App::build_with_provider(config.clone(), provider)
        .await
        .expect("app builds");
    let service = RunningService::start(app.local_addr(), |stop| app.run_until_stopped(stop));
    let addr = service.addr;
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid url")
        .connect()
        .await
        .expect("server accepts connections");
    let assertions = DatabaseConfig {
        max_connections: 2,
        ..config.database.clone()
    };
    let db = svc_kit::db::connect(&assertions, store::SCHEMA, &store::MIGRATOR)
        .await
        .expect("assertion pool connects");
    TestApp {
        client: PaymentServiceClient::new(channel.clone()),
        channel,
        db,
        _service: service,
    }
}

/// `message` sent by `caller`.
pub(crate) fn as_caller<T>(caller: &Caller, message: T) -> Request<T> {
    svc_kit::testing::as_caller(caller, message)
}

/// `message` sent by call-svc.
pub(crate) fn as_service<T>(message: T) -> Request<T> {
    as_caller(&Caller::Service("call-svc".into()), message)
}

pub(crate) fn advance(
    call_id: Uuid,
    customer_id: Uuid,
    amount_krw: i64,
    card: &str,
    key: &str,
) -> ChargeAdvanceRequest {
    ChargeAdvanceRequest {
        call_id: call_id.to_string(),
        customer_id: customer_id.to_string(),
        amount_krw,
        payment_method: card.into(),
        idempotency_key: key.into(),
    }
}

pub(crate) fn settle(call_id: Uuid, final_amount_krw: i64, key: &str) -> SettleFinalRequest {
    SettleFinalRequest {
        call_id: call_id.to_string(),
        final_amount_krw,
        idempotency_key: key.into(),
        payment_method: String::new(),
    }
}

pub(crate) fn refund(call_id: Uuid, amount_krw: i64, key: &str) -> RefundRequest {
    RefundRequest {
        call_id: call_id.to_string(),
        amount_krw,
        idempotency_key: key.into(),
        reason: "customer complaint".into(),
    }
}

/// A call with an approved advance, for arranging later steps.
pub(crate) struct PaidCall {
    pub(crate) call_id: Uuid,
    pub(crate) customer_id: Uuid,
    pub(crate) advance: LedgerEntry,
}

impl TestApp {
    pub(crate) async fn charge_advance(&self, message: ChargeAdvanceRequest) -> Result<LedgerEntry, Status> {
        let response = self.client.clone().charge_advance(as_service(message)).await?;
        Ok(response
            .into_inner()
            .entry
            .expect("an advance always has an entry"))
    }

    pub(crate) async fn settle_final(
        &self,
        message: SettleFinalRequest,
    ) -> Result<SettleFinalResponse, Status> {
        Ok(self
            .client
            .clone()
            .settle_final(as_service(message))
            .await?
            .into_inner())
    }

    /// A new call whose advance of `amount_krw` was approved.
    pub(crate) async fn paid_call(&self, amount_krw: i64) -> PaidCall {
        let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
        let advance = self
            .charge_advance(advance(
                call_id,
                customer_id,
                amount_krw,
                CARD,
                &format!("adv-{call_id}"),
            ))
            .await
            .expect("advance approved");
        PaidCall {
            call_id,
            customer_id,
            advance,
        }
    }

    /// The call's entries as (kind, status, amount), oldest first.
    pub(crate) async fn entries(&self, call_id: Uuid) -> Vec<(String, String, i64)> {
        sqlx::query_as("SELECT kind, status, amount_krw FROM entries WHERE call_id = $1 ORDER BY seq")
            .bind(call_id)
            .fetch_all(&self.db)
            .await
            .expect("entries readable")
    }

    /// The call's outbox events as (event_type, aggregate_version), in order.
    pub(crate) async fn events(&self, call_id: Uuid) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT event_type, aggregate_version FROM outbox
             WHERE aggregate_id = $1 AND aggregate_type = 'payment' ORDER BY seq",
        )
        .bind(call_id)
        .fetch_all(&self.db)
        .await
        .expect("outbox readable")
    }

    /// Rows in every table a command can write.
    pub(crate) async fn rows_written(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM entries) + (SELECT count(*) FROM settlements)
                  + (SELECT count(*) FROM outbox)",
        )
        .fetch_one(&self.db)
        .await
        .expect("counts readable")
    }
}

/// Event types as they appear in the outbox.
pub(crate) fn event_types(events: &[(String, i64)]) -> Vec<&str> {
    events.iter().map(|(t, _)| t.as_str()).collect()
}

/// A provider that is unreachable for its first `outages` operations, then
/// behaves like the simulated one; it counts the operations it receives.
pub(crate) struct FlakyProvider {
    inner: SimulatedProvider,
    outages: AtomicUsize,
    pub(crate) calls: AtomicUsize,
}

impl FlakyProvider {
    pub(crate) fn new(outages: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: SimulatedProvider,
            outages: AtomicUsize::new(outages),
            calls: AtomicUsize::new(0),
        })
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn outage(&self) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.outages
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl PaymentProvider for FlakyProvider {
    fn charge<'a>(&'a self, token: &'a str, amount_krw: i64, idempotency_key: &'a str) -> ProviderFuture<'a> {
        if self.outage() {
            return Box::pin(async { Err(ProviderError("test outage".into())) });
        }
        self.inner.charge(token, amount_krw, idempotency_key)
    }

    fn refund<'a>(&'a self, call_id: Uuid, amount_krw: i64, idempotency_key: &'a str) -> ProviderFuture<'a> {
        if self.outage() {
            return Box::pin(async { Err(ProviderError("test outage".into())) });
        }
        self.inner.refund(call_id, amount_krw, idempotency_key)
    }
}
