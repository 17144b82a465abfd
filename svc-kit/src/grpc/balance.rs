//! A client of every replica of one backend: requests spread over the
//! replicas, a replica that fails is set aside for a while, and a request it
//! failed goes to another one.
//!
//! - **Discovery.** The configured URL may list several, comma-separated;
//!   each host name in it stands for every address it resolves to, resolved
//!   again every `resolve_interval`, so a Kubernetes headless Service's pods
//!   are followed as they come and go. Connections to replicas that stay
//!   are kept.
//! - **Choice.** Of two replicas picked at random among those not set
//!   aside, the one with fewer calls in flight (the "power of two choices").
//! - **Ejection.** A replica whose connection fails (refused, reset, gone
//!   away while draining, timed out) is set aside for a back-off that
//!   doubles with each failure in a row (0.5 s up to 30 s) and ends at its
//!   first success. Only when every replica is set aside is one tried
//!   anyway (the one back soonest), so a backend is "down" for a breaker
//!   only when all of it is.
//! - **Retry on another replica.** A request whose replica failed at the
//!   connection is sent again to another one, up to two more times. The
//!   platform's calls may be repeated: every command is idempotent by its
//!   key, every read is a read. For that, the request message is buffered
//!   (each of the platform's calls sends one message, streams only answer);
//!   a client-streaming call would be buffered whole, so this client is not
//!   for those. An answer, even an error status, is never retried here.
//!
//! HTTP/2 keep-alives find a replica that vanished without closing its
//! connections (a node lost) within `KEEP_ALIVE + KEEP_ALIVE_TIMEOUT`.

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use tokio::sync::watch;
use tonic::{
    body::Body,
    codegen::{StdError, http},
    transport::{Channel, Endpoint},
};
use tower::ServiceExt as _;

use crate::backoff::Backoff;

/// How long a failed replica is set aside: 0.5 s, doubled per failure in a
/// row, at most 30 s.
const EJECTION: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
/// Attempts after the first, each on another replica.
const RETRIES: usize = 2;
/// Largest request message buffered for a retry (tonic's default limit).
const MAX_REQUEST: usize = 4 * 1024 * 1024;
const KEEP_ALIVE: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`Balanced`] client reaches its replicas.
#[derive(Debug, Clone)]
pub struct BalanceSettings {
    /// `http://host:port`, or several separated by commas.
    pub url: String,
    /// Deadline for establishing a connection to a replica.
    pub connect_timeout: Duration,
    /// Deadline for every attempt, unless `None` (deadlines set per request).
    pub request_timeout: Option<Duration>,
    /// How often host names are resolved again.
    pub resolve_interval: Duration,
}

/// A tower service sending each request to one replica of a backend; see
/// the module's documentation. Cheap to clone; the clones share replicas.
#[derive(Clone)]
pub struct Balanced {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Balanced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balanced")
            .field("url", &self.shared.settings.url)
            .finish()
    }
}

struct Shared {
    settings: BalanceSettings,
    /// The replicas as last resolved, by address.
    replicas: watch::Sender<Arc<Vec<Arc<Replica>>>>,
    /// For picking replicas: a cheap, well-spread sequence.
    picks: AtomicUsize,
}

struct Replica {
    addr: SocketAddr,
    channel: Channel,
    in_flight: AtomicUsize,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    /// Failures in a row.
    failures: u32,
    /// Set aside until then.
    ejected_until: Option<Instant>,
}

/// Where each configured URL points: its scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    scheme: String,
    host: String,
    port: u16,
}

impl Balanced {
    /// A client of the replicas `settings.url` names. It starts resolving at
    /// once, in a task on the current Tokio runtime that lives as long as
    /// the client; a request sent before the first resolution waits for it
    /// (up to the connect timeout).
    pub fn new(settings: BalanceSettings) -> anyhow::Result<Self> {
        let targets = parse_targets(&settings.url)?;
        let (replicas, _) = watch::channel(Arc::new(Vec::new()));
        let shared = Arc::new(Shared {
            settings,
            replicas,
            picks: AtomicUsize::new(0),
        });
        tokio::spawn(resolve_forever(Arc::downgrade(&shared), targets));
        Ok(Self { shared })
    }

    /// The addresses of the replicas known now.
    pub fn replicas(&self) -> Vec<SocketAddr> {
        self.shared
            .replicas
            .borrow()
            .iter()
            .map(|replica| replica.addr)
            .collect()
    }
}

impl tower::Service<http::Request<Body>> for Balanced {
    type Response = http::Response<Body>;
    type Error = StdError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each attempt waits for its replica's own readiness.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { shared.send(request).await })
    }
}

impl Shared {
    async fn send(&self, request: http::Request<Body>) -> Result<http::Response<Body>, StdError> {
        let replicas = self.current_replicas().await?;
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_REQUEST).collect().await {
            Ok(body) => body.to_bytes(),
            // What the backend would answer a message over its limit.
            Err(error) if error.is::<LengthLimitError>() => {
                let refused = tonic::Status::resource_exhausted(format!(
                    "request too large: the limit is {MAX_REQUEST} bytes"
                ));
                return Ok(refused.into_http());
            }
            Err(error) => return Err(error),
        };
        let mut tried: Vec<SocketAddr> = Vec::with_capacity(RETRIES + 1);
        loop {
            let replica = self.pick(&replicas, &tried);
            let attempt =
                http::Request::from_parts(parts.clone(), Body::new(Full::<Bytes>::new(body.clone())));
            replica.in_flight.fetch_add(1, Ordering::Relaxed);
            let outcome = replica.channel.clone().oneshot(attempt).await;
            replica.in_flight.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(response) => {
                    replica.succeeded();
                    return Ok(response);
                }
                Err(error) => {
                    replica.failed();
                    tried.push(replica.addr);
                    let others_left = replicas.iter().any(|other| !tried.contains(&other.addr));
                    if tried.len() > RETRIES || !others_left {
                        return Err(error.into());
                    }
                    tracing::debug!(replica = %replica.addr, error = %error, "replica failed; trying another");
                }
            }
        }
    }

    /// The replicas now, waiting (up to the connect timeout) for the first
    /// resolution to find some.
    async fn current_replicas(&self) -> Result<Arc<Vec<Arc<Replica>>>, StdError> {
        let mut updates = self.replicas.subscribe();
        let found = tokio::time::timeout(
            self.settings.connect_timeout,
            updates.wait_for(|replicas| !replicas.is_empty()),
        )
        .await;
        match found {
            Ok(Ok(replicas)) => Ok(replicas.clone()),
            _ => Err(format!("no replica of {} resolved", self.settings.url).into()),
        }
    }

    /// Two random replicas not yet `tried` and not set aside, the less busy
    /// of them; if all are set aside, the one back soonest.
    fn pick(&self, replicas: &[Arc<Replica>], tried: &[SocketAddr]) -> Arc<Replica> {
        let now = Instant::now();
        let untried: Vec<&Arc<Replica>> = replicas.iter().filter(|r| !tried.contains(&r.addr)).collect();
        let candidates: Vec<&Arc<Replica>> = if untried.is_empty() {
            replicas.iter().collect()
        } else {
            untried
        };
        let healthy: Vec<&Arc<Replica>> = candidates.iter().copied().filter(|r| !r.ejected(now)).collect();
        if healthy.is_empty() {
            return candidates
                .iter()
                .copied()
                .min_by_key(|r| r.back_at())
                .cloned()
                .expect("at least one replica");
        }
        let n = healthy.len();
        let seed = self.picks.fetch_add(1, Ordering::Relaxed);
        let first = healthy[spread(seed) % n];
        let second = healthy[spread(seed ^ 0x9e37_79b9) % n];
        if second.in_flight.load(Ordering::Relaxed) < first.in_flight.load(Ordering::Relaxed) {
            second.clone()
        } else {
            first.clone()
        }
    }
}

/// A well-mixed number from `seed` (a 64-bit finaliser), so consecutive
/// seeds pick unrelated replicas.
fn spread(seed: usize) -> usize {
    let mut x = seed as u64;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x as usize
}

impl Replica {
    fn new(addr: SocketAddr, target: &Target, settings: &BalanceSettings) -> anyhow::Result<Self> {
        let mut endpoint = Endpoint::from_shared(format!("{}://{addr}", target.scheme))?
            // The backend's name, not the pod's address, as the authority,
            // for what routes by it (a mesh's sidecar, a proxy).
            .origin(format!("{}://{}:{}", target.scheme, target.host, target.port).parse()?)
            .connect_timeout(settings.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        if let Some(timeout) = settings.request_timeout {
            endpoint = endpoint.timeout(timeout);
        }
        Ok(Self {
            addr,
            channel: endpoint.connect_lazy(),
            in_flight: AtomicUsize::new(0),
            health: Mutex::new(Health::default()),
        })
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        crate::sync::lock(&self.health)
    }

    fn ejected(&self, now: Instant) -> bool {
        self.health().ejected_until.is_some_and(|until| until > now)
    }

    fn back_at(&self) -> Option<Instant> {
        self.health().ejected_until
    }

    fn failed(&self) {
        let mut health = self.health();
        health.failures = health.failures.saturating_add(1);
        let pause = EJECTION.delay(health.failures - 1);
        health.ejected_until = Some(Instant::now() + pause);
        tracing::warn!(replica = %self.addr, failures = health.failures, ejected_for = ?pause, "replica set aside");
    }

    fn succeeded(&self) {
        let mut health = self.health();
        if health.failures > 0 {
            tracing::info!(replica = %self.addr, "replica back");
        }
        *health = Health::default();
    }
}

/// Parses `http://host:port[,http://host:port…]`.
fn parse_targets(url: &str) -> anyhow::Result<Vec<Target>> {
    let targets = url
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let uri: http::Uri = part
                .parse()
                .map_err(|e| anyhow::anyhow!("bad URL {part:?}: {e}"))?;
            let scheme = uri.scheme_str().unwrap_or("http").to_owned();
            let host = uri
                .host()
                .filter(|host| !host.is_empty())
                .ok_or_else(|| anyhow::anyhow!("{part:?} names no host"))?;
            let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
            Ok(Target {
                scheme,
                host: host.trim_matches(['[', ']']).to_owned(),
                port,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!targets.is_empty(), "no URL in {url:?}");
    Ok(targets)
}

/// Resolves `targets` now and then every interval, publishing the replicas
/// whenever their addresses change; ends when the client is gone.
async fn resolve_forever(shared: Weak<Shared>, targets: Vec<Target>) {
    loop {
        let Some(live) = shared.upgrade() else {
            return;
        };
        let mut found: BTreeMap<SocketAddr, &Target> = BTreeMap::new();
        let mut failed = false;
        for target in &targets {
            match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                Ok(addrs) => found.extend(addrs.map(|addr| (addr, target))),
                Err(error) => {
                    failed = true;
                    tracing::warn!(host = target.host, %error, "cannot resolve a backend's replicas");
                }
            }
        }
        // A failed lookup keeps what was known rather than forget replicas.
        if !(failed && found.is_empty()) {
            update(&live, &found);
        }
        let interval = live.settings.resolve_interval;
        drop(live);
        tokio::time::sleep(interval).await;
    }
}

/// Replaces the replica set with `found`, keeping the replicas (and their
/// connections and health) that are still there.
fn update(shared: &Shared, found: &BTreeMap<SocketAddr, &Target>) {
    let current = shared.replicas.borrow().clone();
    let unchanged = current.len() == found.len() && current.iter().all(|r| found.contains_key(&r.addr));
    if unchanged {
        return;
    }
    let mut next = Vec::with_capacity(found.len());
    for (addr, target) in found {
        if let Some(kept) = current.iter().find(|r| r.addr == *addr) {
            next.push(kept.clone());
        } else {
            match Replica::new(*addr, target, &shared.settings) {
                Ok(replica) => next.push(Arc::new(replica)),
                Err(error) => tracing::warn!(%addr, %error, "cannot make a channel to a replica"),
            }
        }
    }
    tracing::info!(url = shared.settings.url, replicas = ?found.keys().collect::<Vec<_>>(), "backend replicas");
    shared.replicas.send_replace(Arc::new(next));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_list_names_each_host_and_port() {
        let targets =
            parse_targets("http://dispatch:50052, http://10.0.0.7:50052,http://[::1]:9").expect("parsed");
        let hosts: Vec<(&str, u16)> = targets.iter().map(|t| (t.host.as_str(), t.port)).collect();
        assert_eq!(hosts, [("dispatch", 50052), ("10.0.0.7", 50052), ("::1", 9)]);
        assert!(parse_targets(" , ").is_err());
        assert!(parse_targets("http://:80").is_err());
    }

    #[test]
    fn consecutive_picks_are_spread() {
        let mut counts = [0usize; 3];
        for seed in 0..3_000 {
            counts[spread(seed) % 3] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1_200).contains(&c)), "{counts:?}");
    }
}
