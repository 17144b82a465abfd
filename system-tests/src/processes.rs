//! The platform as an operator runs it: each service's own binary in a
//! process of its own, configured by environment variables alone, for what
//! only separate processes show, such as each one's telemetry (its name in
//! the traces it exports, its own global subscriber).
//!
//! The settings are the in-process tests' ([`System`]'s and
//! [`crate::gateway::test_config`]), on fresh loopback ports, turned into the
//! `CALL_…`, `DISPATCH_…` variables the services read. The binaries are the
//! ones beside the test binary (`target/debug/`), which `scripts/test.sh`
//! builds before the tests (`cargo build --bins`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use serde::Serialize;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::system::System;

/// The five services running as processes; killed when dropped (their logs
/// removed, unless the test failed, when they are printed).
pub struct Processes {
    /// The gateway's configuration (its secret mints the tokens).
    pub gateway_config: gateway_grpc_web::Config,
    /// A channel to the gateway's public port.
    pub gateway: Channel,
    running: Vec<Running>,
    logs: PathBuf,
}

/// How many processes of each backend to run (one gateway in front).
#[derive(Debug, Clone, Copy)]
pub struct Replicas {
    pub call: usize,
    pub dispatch: usize,
    pub payment: usize,
    pub query: usize,
}

impl Replicas {
    /// One process per service.
    pub const ONE: Self = Self::all(1);

    /// `n` processes of every backend.
    pub const fn all(n: usize) -> Self {
        Self {
            call: n,
            dispatch: n,
            payment: n,
            query: n,
        }
    }
}

/// One process: what it runs with, so that it can be started again.
struct Running {
    name: &'static str,
    replica: usize,
    addr: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Processes {
    /// Starts dispatch-svc, payment-svc, call-svc, query-svc (as many of
    /// each as `replicas` says) and the gateway on `system`'s stores, each
    /// with `env` added to its environment, and waits until each reports
    /// SERVING. Every client is given every replica of its backend. A port
    /// taken between choosing it and binding it (by another test) means
    /// starting again on new ones.
    pub async fn start(system: &System, replicas: Replicas, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::try_start(system, replicas, env).await {
                Err(error) if attempts < 3 && format!("{error:#}").contains("Address already in use") => {}
                started => return started,
            }
        }
    }

    async fn try_start(system: &System, replicas: Replicas, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let logs = std::env::temp_dir().join(format!("taxi-processes-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&logs)?;
        let mut processes = Self {
            gateway_config: crate::gateway::test_config(),
            gateway: Channel::from_static("http://127.0.0.1:1").connect_lazy(),
            running: Vec::new(),
            logs,
        };
        let addrs = |n: usize| (0..n).map(|_| free_addr()).collect::<Vec<_>>();
        let (dispatch, payment, call, query) = (
            addrs(replicas.dispatch),
            addrs(replicas.payment),
            addrs(replicas.call),
            addrs(replicas.query),
        );
        // Every replica of a backend, as its clients are configured.
        let urls = |addrs: &[String]| {
            addrs
                .iter()
                .map(|addr| format!("http://{addr}"))
                .collect::<Vec<_>>()
                .join(",")
        };

        for addr in &dispatch {
            let mut config = system.dispatch_app_config();
            config.listen_addr.clone_from(addr);
            processes.spawn("dispatch-svc", addr, env_of("DISPATCH_", &config)?, env)?;
        }
        for addr in &payment {
            let mut config = system.payment_app_config();
            config.listen_addr.clone_from(addr);
            processes.spawn("payment-svc", addr, env_of("PAYMENT_", &config)?, env)?;
        }
        for addr in &call {
            let mut config = system.call_app_config(&urls(&dispatch), &urls(&payment));
            config.listen_addr.clone_from(addr);
            processes.spawn("call-svc", addr, env_of("CALL_", &config)?, env)?;
        }
        for addr in &query {
            let mut config = system.query_app_config();
            config.listen_addr.clone_from(addr);
            processes.spawn("query-svc", addr, env_of("QUERY_", &config)?, env)?;
        }
        let gateway = free_addr();
        let config = &mut processes.gateway_config;
        config.listen_addr.clone_from(&gateway);
        config.backends.call = gateway_grpc_web::config::upstream(&urls(&call));
        config.backends.dispatch = gateway_grpc_web::config::upstream(&urls(&dispatch));
        config.backends.payment = gateway_grpc_web::config::upstream(&urls(&payment));
        config.backends.query = gateway_grpc_web::config::upstream(&urls(&query));
        let variables = env_of("GATEWAY_", &*config)?;
        processes.spawn("gateway-grpc-web", &gateway, variables, env)?;

        for index in 0..processes.running.len() {
            processes.wait_serving(index).await?;
        }
        processes.gateway = Channel::from_shared(format!("http://{gateway}"))?.connect_lazy();
        Ok(processes)
    }

    fn spawn(
        &mut self,
        name: &'static str,
        addr: &str,
        config: Vec<(String, String)>,
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let replica = self.running.iter().filter(|running| running.name == name).count();
        let mut variables = config;
        variables.extend(
            env.iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone())),
        );
        self.running.push(Running {
            name,
            replica,
            addr: addr.to_owned(),
            env: variables,
            child: None,
        });
        self.launch(self.running.len() - 1)
    }

    /// Starts process `index` as it was configured (again, after a stop).
    fn launch(&mut self, index: usize) -> anyhow::Result<()> {
        let log = self.log_path(index);
        let running = &mut self.running[index];
        let binary = binary(running.name)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new(&binary)
            .envs(running.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        running.child = Some(child);
        Ok(())
    }

    /// Waits (up to 20 s) until process `index` answers its health check
    /// with SERVING.
    async fn wait_serving(&mut self, index: usize) -> anyhow::Result<()> {
        let addr = self.running[index].addr.clone();
        let channel = Channel::from_shared(format!("http://{addr}"))?.connect_lazy();
        let mut health = HealthClient::new(channel);
        for _ in 0..200 {
            if let Some(child) = self.running[index].child.as_mut()
                && let Some(exit) = child.try_wait()?
            {
                anyhow::bail!(
                    "{} exited at start-up ({exit}):\n{}",
                    self.label(index),
                    self.log(index)
                );
            }
            let check = health.check(HealthCheckRequest::default()).await;
            if check.is_ok_and(|answer| answer.into_inner().status() == ServingStatus::Serving) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "{} was not SERVING on {addr} within 20 s:\n{}",
            self.label(index),
            self.log(index)
        )
    }

    fn find(&self, name: &str, replica: usize) -> usize {
        self.running
            .iter()
            .position(|running| running.name == name && running.replica == replica)
            .unwrap_or_else(|| panic!("no replica {replica} of {name}"))
    }

    /// Kills replica `replica` of `name` at once (SIGKILL), as a crash or a
    /// lost node would.
    pub fn kill(&mut self, name: &str, replica: usize) {
        let index = self.find(name, replica);
        if let Some(mut child) = self.running[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops replica `replica` of `name` as a deploy does (SIGTERM), and
    /// waits until it has drained and exited.
    pub async fn terminate(&mut self, name: &str, replica: usize) -> anyhow::Result<()> {
        let index = self.find(name, replica);
        let Some(mut child) = self.running[index].child.take() else {
            return Ok(());
        };
        let signalled = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        anyhow::ensure!(signalled.success(), "cannot signal {}", self.label(index));
        for _ in 0..300 {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("{} did not exit within 15 s of SIGTERM", self.label(index))
    }

    /// Starts replica `replica` of `name` again, on its address, and waits
    /// until it is SERVING.
    pub async fn restart(&mut self, name: &str, replica: usize) -> anyhow::Result<()> {
        let index = self.find(name, replica);
        anyhow::ensure!(
            self.running[index].child.is_none(),
            "{} is running",
            self.label(index)
        );
        self.launch(index)?;
        self.wait_serving(index).await
    }

    fn label(&self, index: usize) -> String {
        let running = &self.running[index];
        format!("{} #{}", running.name, running.replica)
    }

    fn log_path(&self, index: usize) -> PathBuf {
        let running = &self.running[index];
        self.logs
            .join(format!("{}-{}.log", running.name, running.replica))
    }

    fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.log_path(index)).unwrap_or_default()
    }

    /// What the first replica of `name` logged so far.
    pub fn log_of(&self, name: &str) -> String {
        self.log(self.find(name, 0))
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for running in &mut self.running {
            if let Some(mut child) = running.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            for index in 0..self.running.len() {
                eprintln!("---- {} log\n{}", self.label(index), self.log(index));
            }
        }
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

/// A loopback address nothing listens on now.
fn free_addr() -> String {
    format!("127.0.0.1:{}", svc_kit::testing::restartable_port())
}

/// The service binary `name`, built beside the running test binary.
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test binary> → target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test binary's directory")?;
    let binary = profile_dir.join(name);
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing: build the services first (`cargo build --bins`, as scripts/test.sh does)",
        binary.display()
    );
    Ok(binary)
}

/// `config` as the environment variables its service reads (`prefix`, then
/// the field path joined by `__`, upper case), leaving unset what is `null`.
fn env_of(prefix: &str, config: &impl Serialize) -> anyhow::Result<Vec<(String, String)>> {
    fn flatten(name: String, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
        use serde_json::Value;
        match value {
            Value::Null => {}
            Value::Object(fields) => {
                for (field, value) in fields {
                    let sep = if name.ends_with('_') { "" } else { "__" };
                    flatten(format!("{name}{sep}{}", field.to_uppercase()), value, out);
                }
            }
            Value::String(text) => out.push((name, text.clone())),
            Value::Array(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push((name, format!("[{}]", items.join(","))));
            }
            scalar => out.push((name, scalar.to_string())),
        }
    }
    let mut out = Vec::new();
    flatten(prefix.to_owned(), &serde_json::to_value(config)?, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_becomes_the_variables_its_service_reads() {
        let config = serde_json::json!({
            "listen_addr": "127.0.0.1:1",
            "database": { "url": "postgres://x/y", "max_connections": 10 },
            "trust": { "keys": ["/a.pem", "/b.pem"] },
            "dev_tokens": true,
            "nothing": null,
        });

        let mut env = env_of("CALL_", &config).expect("flattened");
        env.sort();

        assert_eq!(
            env,
            [
                ("CALL_DATABASE__MAX_CONNECTIONS", "10"),
                ("CALL_DATABASE__URL", "postgres://x/y"),
                ("CALL_DEV_TOKENS", "true"),
                ("CALL_LISTEN_ADDR", "127.0.0.1:1"),
                ("CALL_TRUST__KEYS", "[/a.pem,/b.pem]"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
        );
    }
}
