//! A balanced client spreads calls over every replica of a backend, and a
//! replica that is gone (never there, stopped mid-load, or one of the
//! addresses a host name resolves to) costs no failed call.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use svc_kit::grpc::{BalanceSettings, Balanced};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A backend replica answering health checks, counting what it served. It
/// runs on a runtime of its own, so that stopping it ends its connections
/// too, as a process that dies would.
struct Replica {
    port: u16,
    served: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    /// Stops at once: the listener and every connection go.
    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn replica() -> Replica {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("addr").port();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        let (_reporter, health) = tonic_health::server::health_reporter();
        let _ = tonic::transport::Server::builder()
            .layer(tower::util::MapRequestLayer::new(move |request| {
                counter.fetch_add(1, Ordering::Relaxed);
                request
            }))
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    Replica {
        port,
        served,
        runtime: Some(runtime),
    }
}

fn client(url: String) -> HealthClient<Balanced> {
    let balanced = Balanced::new(BalanceSettings {
        url,
        connect_timeout: Duration::from_millis(500),
        request_timeout: Some(Duration::from_secs(2)),
        resolve_interval: Duration::from_millis(200),
    })
    .expect("a client");
    HealthClient::new(balanced)
}

/// A loopback port nothing listens on.
async fn dead_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

async fn check(client: &HealthClient<Balanced>) -> Result<(), tonic::Status> {
    client
        .clone()
        .check(HealthCheckRequest::default())
        .await
        .map(drop)
}

#[tokio::test]
async fn calls_spread_over_every_replica() {
    // Arrange
    let (a, b) = (replica().await, replica().await);
    let client = client(format!("http://127.0.0.1:{},http://127.0.0.1:{}", a.port, b.port));

    // Act
    for _ in 0..100 {
        check(&client).await.expect("answered");
    }

    // Assert
    let (a_served, b_served) = (a.served.load(Ordering::Relaxed), b.served.load(Ordering::Relaxed));
    assert_eq!(a_served + b_served, 100);
    assert!(a_served >= 20 && b_served >= 20, "a {a_served}, b {b_served}");
}

#[tokio::test]
async fn a_replica_that_is_not_there_costs_no_failed_call() {
    // Arrange
    let live = replica().await;
    let dead = dead_port().await;
    let client = client(format!("http://127.0.0.1:{dead},http://127.0.0.1:{}", live.port));

    // Act
    let mut failed = 0;
    for _ in 0..50 {
        failed += usize::from(check(&client).await.is_err());
    }

    // Assert
    assert_eq!(failed, 0);
    assert_eq!(live.served.load(Ordering::Relaxed), 50);
}

#[tokio::test]
async fn a_replica_stopped_under_load_costs_no_failed_call() {
    // Arrange: four callers keep both replicas busy.
    let (a, b) = (replica().await, replica().await);
    let client = client(format!("http://127.0.0.1:{},http://127.0.0.1:{}", a.port, b.port));
    let running = Arc::new(AtomicBool::new(true));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (client, running, failures) = (client.clone(), running.clone(), failures.clone());
        callers.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                if let Err(status) = check(&client).await {
                    eprintln!("failed: {status:?}");
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: replica a goes away at once, connections and all.
    let mut a = a;
    a.kill();
    // (its worker threads stop in the background, a request in hand at most)
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (a_before, b_before) = (a.served.load(Ordering::Relaxed), b.served.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_millis(600)).await;
    running.store(false, Ordering::Relaxed);
    for caller in callers {
        caller.await.expect("caller");
    }

    // Assert
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(a_before > 0, "replica a served before it went");
    assert_eq!(a.served.load(Ordering::Relaxed), a_before, "replica a is gone");
    assert!(
        b.served.load(Ordering::Relaxed) > b_before + 10,
        "replica b took over the calls"
    );
}

#[tokio::test]
async fn a_host_name_stands_for_every_address_it_resolves_to() {
    // Arrange: `localhost` may resolve to ::1 as well, where nothing listens.
    let live = replica().await;
    let client = client(format!("http://localhost:{}", live.port));

    // Act
    let mut failed = 0;
    for _ in 0..20 {
        failed += usize::from(check(&client).await.is_err());
    }

    // Assert
    assert_eq!(failed, 0);
    assert_eq!(live.served.load(Ordering::Relaxed), 20);
}
