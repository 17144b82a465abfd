//! Gateway configuration: defaults for a developer machine, overridden by
//! `GATEWAY_*` environment variables (for example `GATEWAY_AUTH__HS256_SECRET`,
//! `GATEWAY_CORS__ALLOWED_ORIGINS`, `GATEWAY_LIMITS__RATE_PER_SECOND`,
//! `GATEWAY_HTTP_ADDR`, `GATEWAY_DEV_TOKENS`).

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};
use svc_kit::identity::SignerConfig;
use svc_kit::{grpc::ClientConfig, secret::Secret, telemetry::LogConfig};

use crate::routes::Backend;

/// The secret the dev token command and a default gateway share. Never use it
/// outside a developer machine; the gateway warns when it is in use.
pub const DEV_SECRET: &str = "dev-only-secret-change-me";

/// Everything the gateway needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// gRPC and gRPC-web on one port.
    pub listen_addr: String,
    /// Plain HTTP/1.1: the browser app's files and the dev token path. A port
    /// of its own, because the gRPC-web port answers plain HTTP with 400.
    pub http_addr: String,
    /// The built browser app (`npm run build` in `web/`), served on
    /// `http_addr`; unknown paths get its index.html.
    pub web_root: String,
    /// Development only: `POST /dev/token` on `http_addr` mints a token for
    /// any role and subject (HS256 with `auth.hs256_secret`). Off by default;
    /// never turn it on where real users are.
    pub dev_tokens: bool,
    pub backends: BackendsConfig,
    pub auth: AuthConfig,
    /// The key the gateway signs the verified identity with for the backends.
    pub identity: SignerConfig,
    pub cors: CorsConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    /// How often the backends' health is checked.
    pub health_interval_ms: u64,
    /// Longest drain after SIGTERM; open streams are closed after it.
    pub drain_grace_ms: u64,
}

/// Where the services are (`GATEWAY_BACKENDS__CALL__URL`, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendsConfig {
    pub call: ClientConfig,
    pub dispatch: ClientConfig,
    pub payment: ClientConfig,
    pub query: ClientConfig,
}

impl BackendsConfig {
    /// How to reach `backend`.
    pub fn get(&self, backend: Backend) -> &ClientConfig {
        match backend {
            Backend::Call => &self.call,
            Backend::Dispatch => &self.dispatch,
            Backend::Payment => &self.payment,
            Backend::Query => &self.query,
        }
    }

    /// How to reach `backend`, to change it.
    pub fn get_mut(&mut self, backend: Backend) -> &mut ClientConfig {
        match backend {
            Backend::Call => &mut self.call,
            Backend::Dispatch => &mut self.dispatch,
            Backend::Payment => &mut self.payment,
            Backend::Query => &mut self.query,
        }
    }
}

/// How bearer tokens are verified. Exactly one key source is used: a JWKS
/// file, else an RS256 public key file, else the HS256 secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Never printed (see `svc_kit::secret`).
    pub hs256_secret: Secret,
    /// PEM file of the RS256 public key.
    pub rs256_public_key_file: String,
    /// JSON Web Key Set file (RS256 keys, selected by `kid`).
    pub jwks_file: String,
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
}

/// Which browser origins may call the gateway with gRPC-web.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CorsConfig {
    /// Comma-separated origins, e.g. `http://localhost:5173,https://app.example`.
    pub allowed_origins: String,
}

/// Protection of the backends and of the gateway itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Requests in flight across the gateway; beyond it, UNAVAILABLE at once.
    /// A server stream counts only until it is open.
    pub max_concurrent_requests: usize,
    /// Server streams (WatchCall, WatchOffers) one subject may hold open at
    /// once; beyond it, RESOURCE_EXHAUSTED.
    pub max_streams_per_subject: usize,
    /// Sustained requests per second per subject.
    pub rate_per_second: f64,
    /// Requests a subject may send at once after a quiet spell.
    pub burst: NonZeroU32,
    /// Deadline of commands (unary writes).
    pub command_deadline_ms: u64,
    /// Deadline of reads (Get*, List*).
    pub read_deadline_ms: u64,
    /// Extra attempts of an idempotent read whose backend was unreachable.
    pub read_retries: u32,
    /// Consecutive failures that open a backend's circuit.
    pub breaker_failure_threshold: u32,
    /// How long an open circuit refuses calls before one probe.
    pub breaker_open_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:8080".into(),
            http_addr: "127.0.0.1:8081".into(),
            web_root: "web/dist".into(),
            dev_tokens: false,
            backends: BackendsConfig {
                call: upstream("http://127.0.0.1:50051"),
                dispatch: upstream("http://127.0.0.1:50052"),
                payment: upstream("http://127.0.0.1:50053"),
                query: upstream("http://127.0.0.1:50054"),
            },
            auth: AuthConfig::default(),
            identity: SignerConfig::development("gateway"),
            cors: CorsConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            health_interval_ms: 2_000,
            drain_grace_ms: 5_000,
        }
    }
}

/// A backend reached without a channel-wide deadline: each route carries its
/// own (and streams none), so a channel timeout would only cut them short.
pub fn upstream(url: &str) -> ClientConfig {
    ClientConfig {
        request_timeout_ms: 0,
        ..ClientConfig::new(url)
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            hs256_secret: DEV_SECRET.into(),
            rs256_public_key_file: String::new(),
            jwks_file: String::new(),
            issuer: "taxi-platform".into(),
            audience: "taxi-api".into(),
            leeway_secs: 30,
        }
    }
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            // The app served on `http_addr`, and Vite's dev server.
            allowed_origins:
                "http://127.0.0.1:8081,http://localhost:8081,http://localhost:5173,http://127.0.0.1:5173"
                    .into(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 1_024,
            max_streams_per_subject: 16,
            rate_per_second: 50.0,
            burst: NonZeroU32::new(100).expect("not zero"),
            command_deadline_ms: 10_000,
            read_deadline_ms: 3_000,
            read_retries: 2,
            breaker_failure_threshold: 5,
            breaker_open_ms: 5_000,
        }
    }
}

impl CorsConfig {
    /// The allowed origins, trimmed, empty entries dropped.
    pub fn origins(&self) -> Vec<String> {
        self.allowed_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Config {
    /// Loads the configuration from the environment and checks it.
    pub fn load() -> anyhow::Result<Self> {
        let config: Self = svc_kit::config::load("GATEWAY_")?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects settings that cannot work, before anything is bound.
    pub fn validate(&self) -> anyhow::Result<()> {
        let limits = &self.limits;
        anyhow::ensure!(
            limits.max_concurrent_requests > 0,
            "GATEWAY_LIMITS__MAX_CONCURRENT_REQUESTS must be positive"
        );
        anyhow::ensure!(
            limits.max_streams_per_subject > 0,
            "GATEWAY_LIMITS__MAX_STREAMS_PER_SUBJECT must be positive"
        );
        anyhow::ensure!(
            limits.rate_per_second.is_finite() && limits.rate_per_second > 0.0,
            "GATEWAY_LIMITS__RATE_PER_SECOND must be a positive number"
        );
        anyhow::ensure!(
            !self.auth.hs256_secret.is_empty()
                || !self.auth.rs256_public_key_file.is_empty()
                || !self.auth.jwks_file.is_empty(),
            "one of GATEWAY_AUTH__HS256_SECRET, __RS256_PUBLIC_KEY_FILE or __JWKS_FILE is required"
        );
        anyhow::ensure!(
            !self.dev_tokens
                || (self.auth.jwks_file.is_empty() && self.auth.rs256_public_key_file.is_empty()),
            "GATEWAY_DEV_TOKENS mints HS256 tokens, which a gateway verifying RS256 would refuse"
        );
        for origin in self.cors.origins() {
            anyhow::ensure!(
                origin.parse::<http::HeaderValue>().is_ok(),
                "GATEWAY_CORS__ALLOWED_ORIGINS has an invalid origin {origin:?}"
            );
        }
        Ok(())
    }
}
