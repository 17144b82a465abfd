//! The gateway in front of a [`System`]'s four services, started through its
//! `App::build` on a random port and pointed at them.

use std::net::SocketAddr;

use svc_kit::testing::RunningService;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::system::System;

/// The browser origin the test gateway allows.
pub const APP_ORIGIN: &str = "https://app.taxi.example";

/// Gateway settings for tests: a secret of its own to mint tokens with, an
/// allowed origin of our own, a quick health follower, and the default
/// limits (generous enough for one test) but for a read deadline that allows
/// for a busy test machine; tests of deadlines set their own.
pub fn test_config() -> gateway_grpc_web::Config {
    let mut config = gateway_grpc_web::Config {
        listen_addr: "127.0.0.1:0".into(),
        identity: svc_kit::testing::gateway_signer(),
        http_addr: "127.0.0.1:0".into(),
        health_interval_ms: 100,
        ..Default::default()
    };
    config.auth.hs256_secret = format!("test-secret-{}", Uuid::new_v4()).into();
    config.cors.allowed_origins = APP_ORIGIN.into();
    config.limits.read_deadline_ms = 10_000;
    config
}

/// A running gateway; it stops when dropped.
pub struct Gateway {
    /// Where the gateway listens (gRPC and gRPC-web).
    pub addr: SocketAddr,
    /// The gateway's configuration (its secret mints the tokens).
    pub config: gateway_grpc_web::Config,
    /// A channel to the gateway.
    pub channel: Channel,
    _running: RunningService,
}

impl Gateway {
    /// Starts the gateway as `config` says, its backends being `system`'s
    /// services; query-svc may stop and start again behind it, on the same
    /// address.
    pub async fn start(system: &System, mut config: gateway_grpc_web::Config) -> Self {
        let url = |running: &Option<RunningService>| running.as_ref().expect("service is running").url();
        config.backends.call = gateway_grpc_web::config::upstream(&url(&system.call));
        config.backends.dispatch = gateway_grpc_web::config::upstream(&url(&system.dispatch));
        config.backends.payment = gateway_grpc_web::config::upstream(&url(&system.payment));
        config.backends.query = gateway_grpc_web::config::upstream(&system.query_url());
        let app = gateway_grpc_web::App::build(config.clone())
            .await
            .expect("build the gateway");
        let running = RunningService::start(app.local_addr(), |stop| app.run_until_stopped(stop));
        Self {
            addr: running.addr,
            config,
            channel: running.channel(),
            _running: running,
        }
    }
}
