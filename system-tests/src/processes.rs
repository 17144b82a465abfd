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

struct Running {
    name: &'static str,
    child: Child,
}

impl Processes {
    /// Starts dispatch-svc, payment-svc, call-svc, query-svc and the gateway
    /// on `system`'s stores, each with `env` added to its environment, and
    /// waits until each reports SERVING. A port taken between choosing it
    /// and binding it (by another test) means starting again on new ones.
    pub async fn start(system: &System, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::try_start(system, env).await {
                Err(error) if attempts < 3 && format!("{error:#}").contains("Address already in use") => {}
                started => return started,
            }
        }
    }

    async fn try_start(system: &System, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let logs = std::env::temp_dir().join(format!("taxi-processes-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&logs)?;
        let mut processes = Self {
            gateway_config: crate::gateway::test_config(),
            gateway: Channel::from_static("http://127.0.0.1:1").connect_lazy(),
            running: Vec::new(),
            logs,
        };

        let dispatch = free_addr();
        let payment = free_addr();
        let call = free_addr();
        let query = free_addr();
        let gateway = free_addr();

        let mut config = system.dispatch_config();
        config.listen_addr.clone_from(&dispatch);
        processes.spawn("dispatch-svc", "DISPATCH_", &config, env)?;

        let mut config = system.payment_config();
        config.listen_addr.clone_from(&payment);
        processes.spawn("payment-svc", "PAYMENT_", &config, env)?;

        let mut config = system.call_config_for(&format!("http://{dispatch}"), &format!("http://{payment}"));
        config.listen_addr.clone_from(&call);
        processes.spawn("call-svc", "CALL_", &config, env)?;

        let mut config = system.query_config();
        config.listen_addr.clone_from(&query);
        processes.spawn("query-svc", "QUERY_", &config, env)?;

        let config = &mut processes.gateway_config;
        config.listen_addr.clone_from(&gateway);
        config.backends.call = gateway_grpc_web::config::upstream(&format!("http://{call}"));
        config.backends.dispatch = gateway_grpc_web::config::upstream(&format!("http://{dispatch}"));
        config.backends.payment = gateway_grpc_web::config::upstream(&format!("http://{payment}"));
        config.backends.query = gateway_grpc_web::config::upstream(&format!("http://{query}"));
        let config = config.clone();
        processes.spawn("gateway-grpc-web", "GATEWAY_", &config, env)?;

        for (name, addr) in [
            ("dispatch-svc", &dispatch),
            ("payment-svc", &payment),
            ("call-svc", &call),
            ("query-svc", &query),
            ("gateway-grpc-web", &gateway),
        ] {
            processes.wait_serving(name, addr).await?;
        }
        processes.gateway = Channel::from_shared(format!("http://{gateway}"))?.connect_lazy();
        Ok(processes)
    }

    fn spawn(
        &mut self,
        name: &'static str,
        prefix: &str,
        config: &impl Serialize,
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let binary = binary(name)?;
        let log = std::fs::File::create(self.logs.join(format!("{name}.log")))?;
        let child = Command::new(&binary)
            .envs(env_of(prefix, config)?)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        self.running.push(Running { name, child });
        Ok(())
    }

    /// Waits (up to 20 s) until the service at `addr` answers its health
    /// check with SERVING.
    async fn wait_serving(&mut self, name: &str, addr: &str) -> anyhow::Result<()> {
        let channel = Channel::from_shared(format!("http://{addr}"))?.connect_lazy();
        let mut health = HealthClient::new(channel);
        for _ in 0..200 {
            if let Some(running) = self.running.iter_mut().find(|running| running.name == name)
                && let Some(exit) = running.child.try_wait()?
            {
                anyhow::bail!("{name} exited at start-up ({exit}):\n{}", self.log_of(name));
            }
            let check = health.check(HealthCheckRequest::default()).await;
            if check.is_ok_and(|answer| answer.into_inner().status() == ServingStatus::Serving) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "{name} was not SERVING on {addr} within 20 s:\n{}",
            self.log_of(name)
        )
    }

    /// What `name` logged so far.
    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for running in &mut self.running {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
        if std::thread::panicking() {
            for running in &self.running {
                eprintln!("---- {} log\n{}", running.name, self.log_of(running.name));
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
