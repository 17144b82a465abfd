//! query-svc configuration: defaults for a developer machine, overridden by
//! `QUERY_*` environment variables (for example `QUERY_REDIS__URL`,
//! `QUERY_NATS__PREFIX`, `QUERY_CONSUMER__MAX_RETRY_DELAY_MS`).

use eventbus::{NatsConfig, consumer::ConsumerConfig};
use serde::{Deserialize, Serialize};
use svc_kit::{identity::TrustConfig, secret::SecretUrl, telemetry::LogConfig};

/// Everything query-svc needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free one.
    pub listen_addr: String,
    /// Plain HTTP for operators: `GET /metrics` in Prometheus's text format
    /// (`QUERY_ADMIN_ADDR`); port 0 picks a free one.
    pub admin_addr: String,
    pub redis: RedisConfig,
    pub nats: NatsConfig,
    /// Tuning of the projector's durable consumer.
    pub consumer: ConsumerConfig,
    pub log: LogConfig,
    /// Whose identity tokens to believe: the gateway's for people, the
    /// services' for the `service` role.
    pub trust: TrustConfig,
    /// How often Redis is probed for the health service.
    pub health_interval_ms: u64,
    /// Longest wait of `GetCallView(min_version)` (and of `WatchCall` for a
    /// call whose first event is still on its way).
    pub read_your_writes_timeout_ms: u64,
}

/// Where the read models live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`.
    pub url: SecretUrl,
    /// First segment of every key and of the notification channel; tests use
    /// their own so they never see each other's data.
    pub key_prefix: String,
    /// Deadline for (re)connecting.
    pub connect_timeout_ms: u64,
    /// Deadline for every command.
    pub response_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "taxi".into(),
            connect_timeout_ms: 2_000,
            response_timeout_ms: 2_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:50054".into(),
            admin_addr: "127.0.0.1:9104".into(),
            redis: RedisConfig::default(),
            nats: NatsConfig::default(),
            consumer: ConsumerConfig::default(),
            log: LogConfig::default(),
            trust: TrustConfig::default(),
            health_interval_ms: 2_000,
            read_your_writes_timeout_ms: 2_000,
        }
    }
}

impl Config {
    /// Loads the configuration from the environment and checks it.
    pub fn load() -> anyhow::Result<Self> {
        let config: Self = svc_kit::config::load("QUERY_")?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects settings that cannot work, before anything is bound.
    pub fn validate(&self) -> anyhow::Result<()> {
        let prefix = &self.redis.key_prefix;
        anyhow::ensure!(!prefix.is_empty(), "QUERY_REDIS__KEY_PREFIX must not be empty");
        // The prefix is used in SCAN MATCH patterns, so glob characters would
        // make a rebuild delete keys that are not its own.
        anyhow::ensure!(
            !prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '?' | '[' | ']' | '\\')),
            "QUERY_REDIS__KEY_PREFIX must not contain whitespace or any of * ? [ ] \\"
        );
        redis::Client::open(self.redis.url.expose())
            .map_err(|e| anyhow::anyhow!("QUERY_REDIS__URL is not a valid Redis URL: {e}"))?;
        anyhow::ensure!(
            self.redis.connect_timeout_ms > 0 && self.redis.response_timeout_ms > 0,
            "QUERY_REDIS__*_TIMEOUT_MS must be positive"
        );
        anyhow::ensure!(
            self.health_interval_ms > 0,
            "QUERY_HEALTH_INTERVAL_MS must be positive"
        );
        anyhow::ensure!(
            (1..=60_000).contains(&self.read_your_writes_timeout_ms),
            "QUERY_READ_YOUR_WRITES_TIMEOUT_MS must be within 1..=60000"
        );
        self.consumer.validate("QUERY_CONSUMER__")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        Config::default().validate().expect("defaults work");
    }

    #[test]
    fn a_key_prefix_with_glob_characters_is_rejected() {
        let mut config = Config::default();
        config.redis.key_prefix = "taxi*".into();
        assert!(config.validate().is_err());
        config.redis.key_prefix = String::new();
        assert!(config.validate().is_err());
    }
}
