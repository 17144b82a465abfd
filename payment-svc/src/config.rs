//! payment-svc configuration: defaults for a developer machine, overridden by
//! `PAYMENT_*` environment variables (for example `PAYMENT_DATABASE__URL`,
//! `PAYMENT_MAX_AMOUNT_KRW`).

use eventbus::NatsConfig;
use outbox::RelayConfig;
use serde::{Deserialize, Serialize};
use svc_kit::identity::TrustConfig;
use svc_kit::{db::DatabaseConfig, telemetry::LogConfig};

/// Everything payment-svc needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free one.
    pub listen_addr: String,
    /// Plain HTTP for operators: `GET /metrics` in Prometheus's text format
    /// (`PAYMENT_ADMIN_ADDR`); port 0 picks a free one.
    pub admin_addr: String,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    /// Whose identity tokens to believe: the gateway's for people, the
    /// services' for the `service` role.
    pub trust: TrustConfig,
    /// Where domain events go.
    pub nats: NatsConfig,
    /// How the outbox is published.
    pub relay: RelayConfig,
    /// How often the database is probed for the health service.
    pub health_interval_ms: u64,
    /// The largest single charge, refund or final amount accepted.
    pub max_amount_krw: i64,
    /// Deadline for one provider operation; past it the entry stays PENDING
    /// and the caller gets UNAVAILABLE.
    pub provider_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:50053".into(),
            admin_addr: "127.0.0.1:9103".into(),
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            trust: TrustConfig::default(),
            nats: NatsConfig::default(),
            relay: RelayConfig::default(),
            health_interval_ms: 2_000,
            max_amount_krw: 10_000_000,
            provider_timeout_ms: 5_000,
        }
    }
}

impl Config {
    /// Loads the configuration from the environment and checks it.
    pub fn load() -> anyhow::Result<Self> {
        let config: Self = svc_kit::config::load("PAYMENT_")?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects settings that cannot work, before anything is bound.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_amount_krw > 0, "PAYMENT_MAX_AMOUNT_KRW must be positive");
        anyhow::ensure!(
            self.health_interval_ms > 0,
            "PAYMENT_HEALTH_INTERVAL_MS must be positive"
        );
        anyhow::ensure!(
            self.provider_timeout_ms > 0,
            "PAYMENT_PROVIDER_TIMEOUT_MS must be positive"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn a_non_positive_maximum_is_rejected() {
        let config = Config {
            max_amount_krw: 0,
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }
}
