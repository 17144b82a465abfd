//! dispatch-svc configuration: defaults for a developer machine, overridden by
//! `DISPATCH_*` environment variables (for example `DISPATCH_DATABASE__URL`,
//! `DISPATCH_AVAILABILITY_RADIUS_M`, `DISPATCH_OFFERS_CONSUMER__RETRY_DELAY_MS`).

use chrono::TimeDelta;
use eventbus::{NatsConfig, consumer::ConsumerConfig};
use outbox::RelayConfig;
use serde::{Deserialize, Serialize};
use svc_kit::identity::TrustConfig;
use svc_kit::{db::DatabaseConfig, telemetry::LogConfig};

use crate::domain::{OfferPolicy, area::MAX_RADIUS_M};

/// The most drivers one call is offered to.
const MAX_OFFER_FANOUT: u32 = 100;
/// The longest an offer may stay open: one hour.
const MAX_OFFER_TTL_MS: u64 = 3_600_000;

/// Everything dispatch-svc needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free one.
    pub listen_addr: String,
    /// Plain HTTP for operators: `GET /metrics` in Prometheus's text format
    /// (`DISPATCH_ADMIN_ADDR`); port 0 picks a free one.
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
    /// CheckAvailability's radius when the request leaves it at 0.
    pub availability_radius_m: u32,
    /// Drivers whose last location is older than this are not counted as available.
    pub location_max_age_ms: u64,
    /// A requested call's first round of offers goes to drivers within this
    /// distance of the pickup; round `n` searches `n` times as far ...
    pub offer_radius_m: u32,
    /// ... but never farther than this.
    pub offer_max_radius_m: u32,
    /// ... and to at most this many of them, the nearest first.
    pub offer_fanout: u32,
    /// How long an offer stays open when its call event does not say when its
    /// round ends (call-svc's `CALL_SAGA__OFFER_ROUND_MS` decides that).
    pub offer_ttl_ms: u64,
    /// How call events are consumed to make and withdraw offers.
    pub offers_consumer: ConsumerConfig,
    /// How often a WatchOffers stream checks what it shows against the
    /// database, in case a notification was lost.
    pub offer_resync_ms: u64,
    /// How often expired offers are deleted.
    pub offer_cleanup_interval_ms: u64,
    /// How long a call's round of offers is remembered; a CallRequested older
    /// than this is ignored as stale.
    pub offer_round_retention_hours: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:50052".into(),
            admin_addr: "127.0.0.1:9102".into(),
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            trust: TrustConfig::default(),
            nats: NatsConfig::default(),
            relay: RelayConfig::default(),
            health_interval_ms: 2_000,
            availability_radius_m: 3_000,
            location_max_age_ms: 600_000,
            offer_radius_m: 3_000,
            offer_max_radius_m: 10_000,
            offer_fanout: 5,
            offer_ttl_ms: 30_000,
            offers_consumer: ConsumerConfig::default(),
            offer_resync_ms: 10_000,
            offer_cleanup_interval_ms: 60_000,
            offer_round_retention_hours: 7 * 24,
        }
    }
}

impl Config {
    /// Loads the configuration from the environment and checks it.
    pub fn load() -> anyhow::Result<Self> {
        let config: Self = svc_kit::config::load("DISPATCH_")?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects settings that cannot work, before anything is bound.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=MAX_RADIUS_M).contains(&self.availability_radius_m),
            "DISPATCH_AVAILABILITY_RADIUS_M must be within 1..={MAX_RADIUS_M}"
        );
        anyhow::ensure!(
            self.location_max_age_ms > 0,
            "DISPATCH_LOCATION_MAX_AGE_MS must be positive"
        );
        anyhow::ensure!(
            self.health_interval_ms > 0,
            "DISPATCH_HEALTH_INTERVAL_MS must be positive"
        );
        anyhow::ensure!(
            (1..=MAX_RADIUS_M).contains(&self.offer_radius_m),
            "DISPATCH_OFFER_RADIUS_M must be within 1..={MAX_RADIUS_M}"
        );
        anyhow::ensure!(
            (self.offer_radius_m..=MAX_RADIUS_M).contains(&self.offer_max_radius_m),
            "DISPATCH_OFFER_MAX_RADIUS_M must be within DISPATCH_OFFER_RADIUS_M..={MAX_RADIUS_M}"
        );
        anyhow::ensure!(
            (1..=MAX_OFFER_FANOUT).contains(&self.offer_fanout),
            "DISPATCH_OFFER_FANOUT must be within 1..={MAX_OFFER_FANOUT}"
        );
        anyhow::ensure!(
            (1..=MAX_OFFER_TTL_MS).contains(&self.offer_ttl_ms),
            "DISPATCH_OFFER_TTL_MS must be within 1..={MAX_OFFER_TTL_MS}"
        );
        anyhow::ensure!(
            self.offer_resync_ms > 0 && self.offer_cleanup_interval_ms > 0,
            "DISPATCH_OFFER_RESYNC_MS and DISPATCH_OFFER_CLEANUP_INTERVAL_MS must be positive"
        );
        anyhow::ensure!(
            (1..=24 * 365).contains(&self.offer_round_retention_hours),
            "DISPATCH_OFFER_ROUND_RETENTION_HOURS must be within 1..=8760"
        );
        self.offers_consumer.validate("DISPATCH_OFFERS_CONSUMER__")
    }

    /// How requested calls are offered.
    pub fn offer_policy(&self) -> OfferPolicy {
        OfferPolicy {
            radius_m: self.offer_radius_m,
            max_radius_m: self.offer_max_radius_m,
            fanout: self.offer_fanout,
            // Validated to at most an hour, so it fits.
            ttl: TimeDelta::milliseconds(i64::try_from(self.offer_ttl_ms).unwrap_or(i64::MAX)),
        }
    }

    /// How long a round of offers is remembered.
    pub fn offer_round_retention(&self) -> TimeDelta {
        TimeDelta::hours(i64::try_from(self.offer_round_retention_hours).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn a_radius_beyond_the_search_limit_is_rejected() {
        let config = Config {
            availability_radius_m: MAX_RADIUS_M + 1,
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn offers_go_to_at_least_one_driver_for_a_positive_time() {
        for config in [
            Config {
                offer_fanout: 0,
                ..Config::default()
            },
            Config {
                offer_ttl_ms: 0,
                ..Config::default()
            },
            Config {
                offer_radius_m: 0,
                ..Config::default()
            },
        ] {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }

    #[test]
    fn the_default_offer_policy_is_five_drivers_within_three_km_for_thirty_seconds() {
        let policy = Config::default().offer_policy();
        assert_eq!(
            (policy.radius_m, policy.fanout, policy.ttl),
            (3_000, 5, TimeDelta::seconds(30))
        );
    }
}
