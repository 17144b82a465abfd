//! Support for tests: isolated prefixes on the shared NATS server, and a NATS
//! server of the test's own that can be stopped and started again.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use svc_kit::{secret::SecretUrl, testing::ServerProcess};
use uuid::Uuid;

use crate::NatsConfig;

/// Prefix of every stream and subject a test creates; the test script purges them.
pub const TEST_PREFIX: &str = "test_";

/// A configuration with a prefix of its own on `TEST_NATS_URL` (default the
/// local server), so tests never see each other's events.
pub fn isolated() -> NatsConfig {
    NatsConfig {
        url: std::env::var("TEST_NATS_URL").map_or_else(|_| NatsConfig::default().url, SecretUrl::from),
        prefix: format!("{TEST_PREFIX}{}", Uuid::new_v4().simple()),
        ..NatsConfig::default()
    }
}

/// A `nats-server -js` process owned by one test, on a free loopback port,
/// with its own store directory. Killed (and its store removed) on drop.
pub struct NatsServer {
    server: ServerProcess,
    store: PathBuf,
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let store = std::env::temp_dir().join(format!("taxi-nats-{}", Uuid::new_v4().simple()));
        let args = |port: u16, log: &Path| {
            let port = port.to_string();
            let mut args: Vec<OsString> = ["-js", "-a", "127.0.0.1", "-p", &port, "-sd"]
                .map(OsString::from)
                .into();
            args.extend([store.clone().into(), "-l".into(), log.into()]);
            args
        };
        let server = ServerProcess::start("nats-server", args).await?;
        Ok(Self { server, store })
    }

    /// `nats://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.server.port())
    }

    /// An isolated configuration pointing at this server.
    pub fn config(&self) -> NatsConfig {
        NatsConfig {
            url: self.url().into(),
            ..isolated()
        }
    }

    /// Kills the server (as an outage would); its store stays for [`Self::resume`].
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts the server again on the same port and store.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        self.server.resume().await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.server.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
