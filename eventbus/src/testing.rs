//! Support for tests: isolated prefixes on the shared NATS server, and a NATS
//! server of the test's own that can be stopped and started again.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use uuid::Uuid;

use crate::NatsConfig;

/// Prefix of every stream and subject a test creates; the test script purges them.
pub const TEST_PREFIX: &str = "test_";

/// A configuration with a prefix of its own on `TEST_NATS_URL` (default the
/// local server), so tests never see each other's events.
pub fn isolated() -> NatsConfig {
    NatsConfig {
        url: std::env::var("TEST_NATS_URL").unwrap_or_else(|_| NatsConfig::default().url),
        prefix: format!("{TEST_PREFIX}{}", Uuid::new_v4().simple()),
        ..NatsConfig::default()
    }
}

/// A `nats-server -js` process owned by one test, on a free loopback port,
/// with its own store directory. Killed (and its store removed) on drop.
pub struct NatsServer {
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let port = svc_kit::testing::restartable_port();
        let store = std::env::temp_dir().join(format!("taxi-nats-{}", Uuid::new_v4().simple()));
        let mut server = Self {
            port,
            store,
            child: None,
        };
        server.resume().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// An isolated configuration pointing at this server.
    pub fn config(&self) -> NatsConfig {
        NatsConfig {
            url: self.url(),
            ..isolated()
        }
    }

    /// Kills the server (as an outage would); its store stays for [`Self::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let log = self.store.with_extension("log");
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nats-server (apt-get install nats-server)")?;
        for _ in 0..200 {
            if let Some(exit) = child.try_wait()? {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                anyhow::bail!("nats-server on port {} exited ({exit}):\n{log}", self.port);
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                self.child = Some(child);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("nats-server did not start on port {} within 10 s", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
        let _ = std::fs::remove_file(self.store.with_extension("log"));
    }
}
