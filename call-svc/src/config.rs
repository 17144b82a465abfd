//! call-svc configuration: defaults for a developer machine, overridden by
//! `CALL_*` environment variables (for example `CALL_DATABASE__URL`,
//! `CALL_SAGA__EXPIRE_AFTER_MS`).

use chrono::TimeDelta;
use eventbus::NatsConfig;
use outbox::RelayConfig;
use serde::{Deserialize, Serialize};
use svc_kit::identity::{SignerConfig, TrustConfig};
use svc_kit::{db::DatabaseConfig, grpc::ClientConfig, telemetry::LogConfig};

use crate::domain::{SearchPolicy, fare::FareTable};

/// Everything call-svc needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free one.
    pub listen_addr: String,
    /// Plain HTTP for operators: `GET /metrics` in Prometheus's text format
    /// (`CALL_ADMIN_ADDR`); port 0 picks a free one.
    pub admin_addr: String,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    /// Whose identity tokens to believe: the gateway's for people, the
    /// services' for the `service` role.
    pub trust: TrustConfig,
    /// The key call-svc signs its own identity with when calling dispatch-svc
    /// and payment-svc.
    pub identity: SignerConfig,
    /// Where domain events go.
    pub nats: NatsConfig,
    /// How the outbox is published.
    pub relay: RelayConfig,
    pub dispatch: ClientConfig,
    pub payment: ClientConfig,
    pub fares: FareTable,
    pub saga: SagaConfig,
    /// How often the database is probed for the health service.
    pub health_interval_ms: u64,
}

/// Timing and policy of the trip saga.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SagaConfig {
    /// A REQUESTED call nobody accepts within this time is canceled (EXPIRED).
    pub expire_after_ms: u64,
    /// How long each round of offers lasts: a round that ends unaccepted
    /// sends the call to the next nearest drivers (dispatch's offers expire
    /// with the round).
    pub offer_round_ms: u64,
    /// How often the sweeper looks for expired calls and unfinished sagas.
    pub sweep_interval_ms: u64,
    /// A saga step older than this is taken over by the sweeper (it is assumed
    /// to belong to a crashed process); keep it above the backends' deadlines.
    /// It is also how long a sweeper's lease on a call's owed effects lasts.
    pub stale_after_ms: u64,
    /// The sweeper first retries failed effects (settle the payment, release
    /// the driver) this long after the failure, then doubles the delay with
    /// each further failure, less up to a quarter of jitter.
    pub effect_retry_base_ms: u64,
    /// The longest delay between two retries of failed effects; they are
    /// retried at this pace for as long as they keep failing.
    pub effect_retry_max_ms: u64,
    /// Kept from the advance when the customer cancels an ACCEPTED call.
    pub cancel_fee_krw: i64,
    /// Consecutive dispatch failures that open its circuit.
    pub dispatch_failure_threshold: u32,
    /// How long the dispatch circuit stays open before a probe.
    pub dispatch_open_ms: u64,
}

impl Default for SagaConfig {
    fn default() -> Self {
        Self {
            expire_after_ms: 5 * 60 * 1000,
            offer_round_ms: 30_000,
            sweep_interval_ms: 2_000,
            stale_after_ms: 15_000,
            effect_retry_base_ms: 1_000,
            effect_retry_max_ms: 60_000,
            cancel_fee_krw: 0,
            dispatch_failure_threshold: 3,
            dispatch_open_ms: 10_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:50051".into(),
            admin_addr: "127.0.0.1:9101".into(),
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            trust: TrustConfig::default(),
            identity: SignerConfig::development("call-svc"),
            nats: NatsConfig::default(),
            relay: RelayConfig::default(),
            dispatch: ClientConfig::new("http://127.0.0.1:50052"),
            payment: ClientConfig::new("http://127.0.0.1:50053"),
            fares: FareTable::default(),
            saga: SagaConfig::default(),
            health_interval_ms: 2_000,
        }
    }
}

impl Config {
    /// Loads the configuration from the environment and checks it.
    pub fn load() -> anyhow::Result<Self> {
        let config: Self = svc_kit::config::load("CALL_")?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects settings that cannot work, before anything is bound.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.saga.cancel_fee_krw >= 0,
            "CALL_SAGA__CANCEL_FEE_KRW must not be negative"
        );
        anyhow::ensure!(
            self.saga.offer_round_ms > 0 && self.saga.expire_after_ms > 0,
            "CALL_SAGA__OFFER_ROUND_MS and CALL_SAGA__EXPIRE_AFTER_MS must be positive"
        );
        anyhow::ensure!(
            self.saga.sweep_interval_ms > 0,
            "CALL_SAGA__SWEEP_INTERVAL_MS must be positive"
        );
        anyhow::ensure!(
            self.saga.effect_retry_max_ms >= self.saga.effect_retry_base_ms,
            "CALL_SAGA__EFFECT_RETRY_MAX_MS must not be below CALL_SAGA__EFFECT_RETRY_BASE_MS"
        );
        self.fares.validate()
    }
}

impl SagaConfig {
    /// How long the search for a driver lasts, round by round.
    pub fn search(&self) -> SearchPolicy {
        let ms = |ms: u64| TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX));
        SearchPolicy {
            round: ms(self.offer_round_ms),
            expire_after: ms(self.expire_after_ms),
        }
    }
}
