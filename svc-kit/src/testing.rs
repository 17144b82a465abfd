//! Support for integration tests: each test gets its own database.

use anyhow::Context as _;
use uuid::Uuid;

/// Prefix of every database a test creates; the test script drops them.
pub const TEST_DATABASE_PREFIX: &str = "taxi_test_";

/// The server tests create their databases on: `TEST_DATABASE_URL`, or the
/// local PostgreSQL as user `postgres`.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database and returns its URL.
#[cfg(feature = "postgres")]
pub async fn fresh_database() -> anyhow::Result<crate::secret::SecretUrl> {
    use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};

    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {admin}"))?;
    let name = format!("{TEST_DATABASE_PREFIX}{}", Uuid::new_v4().simple());
    // `name` is generated above from a UUID, never input.
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    Ok(format!("{base}/{name}").into())
}

/// A client configuration for calls between services in tests: the
/// production deadlines (2 s) are meant for a quiet server, while a test
/// machine runs hundreds of services at once.
pub fn patient_client(url: impl Into<String>) -> crate::grpc::ClientConfig {
    crate::grpc::ClientConfig {
        connect_timeout_ms: 2_000,
        request_timeout_ms: 10_000,
        ..crate::grpc::ClientConfig::new(url)
    }
}

/// A loopback port that is free now, for a server a test stops and starts
/// again on the same address.
///
/// The port lies below the kernel's ephemeral range (32768 and up by
/// default). A port from that range can be taken while the server is down:
/// most often by a client of the test itself, whose reconnect to
/// `127.0.0.1:port` may be given `port` as its own source port and so connects
/// to itself, holding the port against the restart.
pub fn restartable_port() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let below = ephemeral_from.clamp(10_000, 32_768);
    let range = (below - 8_000)..below;
    loop {
        let offset = Uuid::new_v4().as_u128() % u128::from(range.end - range.start);
        let port = range.start + u16::try_from(offset).expect("offset fits the range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A server process of a test's own (nats-server, redis-server) on a
/// [`restartable_port`], that the test can stop, as an outage would, and
/// start again on the same port. Its log goes to a file of its own, quoted
/// when the server exits at start-up. Killed, and its log removed, on drop.
pub struct ServerProcess {
    program: &'static str,
    args: Vec<std::ffi::OsString>,
    port: u16,
    log: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl ServerProcess {
    /// Starts `program` with the arguments `args(port, log file)` gives and
    /// waits until it accepts connections on that port.
    pub async fn start(
        program: &'static str,
        args: impl FnOnce(u16, &std::path::Path) -> Vec<std::ffi::OsString>,
    ) -> anyhow::Result<Self> {
        let port = restartable_port();
        let log = std::env::temp_dir().join(format!("taxi-{program}-{}.log", Uuid::new_v4().simple()));
        let mut server = Self {
            program,
            args: args(port, &log),
            port,
            log,
            child: None,
        };
        server.resume().await?;
        Ok(server)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server; [`Self::resume`] starts it again.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on its port and waits (up to 10 s) until it
    /// accepts connections.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let mut child = std::process::Command::new(self.program)
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {} (apt-get install {0})", self.program))?;
        for _ in 0..200 {
            if let Some(exit) = child.try_wait()? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                anyhow::bail!("{} on port {} exited ({exit}):\n{log}", self.program, self.port);
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                self.child = Some(child);
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("{} did not start on port {} within 10 s", self.program, self.port)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Routes `tracing` output to the test harness when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_test_writer()
            .try_init();
    }
}

/// A service started by a test on its own task; stopped gracefully with
/// [`RunningService::stop`], abruptly with [`RunningService::kill`], or when
/// dropped (graceful, without waiting).
pub struct RunningService {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The shutdown signal a [`RunningService`] hands to `run_until_stopped`.
pub type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl RunningService {
    /// Spawns `run(shutdown)`, typically `|stop| app.run_until_stopped(stop)`
    /// for an app already bound to `addr`.
    pub fn start<F>(addr: std::net::SocketAddr, run: impl FnOnce(Shutdown) -> F) -> Self
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(run(Box::pin(async move {
            let _ = stopped.await;
        })));
        Self {
            addr,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// `http://addr`, for a client or another service's configuration.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A lazily connecting channel to the service.
    pub fn channel(&self) -> tonic::transport::Channel {
        // The URL is built from a socket address, so it always parses.
        tonic::transport::Endpoint::from_shared(self.url())
            .expect("a socket address makes a valid URL")
            .connect_lazy()
    }

    /// Stops taking requests, drains, and waits (at most 10 s) for the end.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let handle = self
            .handle
            .take()
            .ok_or_else(|| anyhow::anyhow!("already stopped"))?;
        tokio::time::timeout(std::time::Duration::from_secs(10), handle).await???;
        Ok(())
    }

    /// Ends the service at once, as a crash would.
    pub fn kill(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A TCP link to a server that a test can cut, as a network partition or a
/// crashed server would: while cut, open connections are closed and new ones
/// refused at once. Point the service under test at [`CuttableLink::addr`].
pub struct CuttableLink {
    addr: std::net::SocketAddr,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableLink {
    /// A link on a free loopback port to `target`.
    pub async fn to(target: std::net::SocketAddr) -> anyhow::Result<Self> {
        use std::sync::atomic::Ordering;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0_u64);
        let (link_open, link_cut) = (open.clone(), cut.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !link_open.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let mut cuts = link_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            open,
            cut,
            task,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Closes every open connection and refuses new ones until [`Self::mend`].
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Lets connections through again.
    pub fn mend(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CuttableLink {
    fn drop(&mut self) {
        self.task.abort();
        self.cut.send_modify(|n| *n += 1);
    }
}

/// `url` (`scheme://user@host:port/path`) with its host and port replaced by
/// `addr`, to send a client through a [`CuttableLink`].
pub fn through(url: &crate::secret::SecretUrl, addr: std::net::SocketAddr) -> crate::secret::SecretUrl {
    let url = url.expose();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (user, rest) = rest
        .rsplit_once('@')
        .map_or(("", rest), |(user, rest)| (user, rest));
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("{scheme}://{user}{addr}{path}").into()
}

/// The socket address of the server in `url` (`scheme://user@host:port/...`).
pub async fn server_of(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    tokio::net::lookup_host(authority)
        .await?
        .next()
        .with_context(|| format!("{authority} does not resolve"))
}

/// The test deployment's trust: the fixture keys in `svc-kit/test-keys/`
/// (made for tests only; never deployed). The gateway's key vouches for
/// people, call-svc's for the `service` role.
pub fn trust() -> crate::identity::TrustConfig {
    crate::identity::TrustConfig {
        gateway_public_key_file: concat!(env!("CARGO_MANIFEST_DIR"), "/test-keys/gateway.pub.pem").into(),
        service_public_key_files: vec![
            concat!(env!("CARGO_MANIFEST_DIR"), "/test-keys/call-svc.pub.pem").into(),
        ],
    }
}

/// The fixture signing key of the gateway.
pub fn gateway_signer() -> crate::identity::SignerConfig {
    crate::identity::SignerConfig {
        signing_key_file: concat!(env!("CARGO_MANIFEST_DIR"), "/test-keys/gateway.key.pem").into(),
    }
}

/// The fixture signing key of call-svc.
pub fn service_signer() -> crate::identity::SignerConfig {
    crate::identity::SignerConfig {
        signing_key_file: concat!(env!("CARGO_MANIFEST_DIR"), "/test-keys/call-svc.key.pem").into(),
    }
}

/// `message` sent directly to a backend on behalf of `caller`, with the token
/// the gateway (for people) or call-svc (for the `service` role) would sign.
pub fn as_caller<T>(caller: &crate::identity::Caller, message: T) -> tonic::Request<T> {
    use std::sync::OnceLock;

    use crate::identity::{Caller, Signer};

    static GATEWAY: OnceLock<Signer> = OnceLock::new();
    static SERVICE: OnceLock<Signer> = OnceLock::new();
    // The fixtures are part of this crate, so they are always there.
    let signer = match caller {
        Caller::Service(_) => SERVICE.get_or_init(|| {
            Signer::from_config("call-svc", &service_signer()).expect("the fixture key of call-svc")
        }),
        _ => GATEWAY.get_or_init(|| {
            Signer::from_config("gateway-grpc-web", &gateway_signer())
                .expect("the fixture key of the gateway")
        }),
    };
    signer.request(caller, message)
}
