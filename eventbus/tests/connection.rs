//! `nats_connected` says what an operator needs to know during an outage:
//! 1 while the client is connected, 0 while the server is gone, and 1 again
//! once it is back.

use std::time::Duration;

use eventbus::{stream, testing::NatsServer};
use svc_kit::metrics::{Registry, encode};

/// The `nats_connected` line once it reads `expected`, or what it read last.
async fn connected_once(registry: &Registry, expected: &str) -> String {
    let line = || {
        encode(registry)
            .lines()
            .find(|line| line.starts_with("nats_connected "))
            .unwrap_or_default()
            .to_owned()
    };
    let wanted = format!("nats_connected {expected}");
    for _ in 0..100 {
        if line() == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    line()
}

#[tokio::test]
async fn the_connection_gauge_follows_an_outage_of_the_server() {
    // Arrange
    let mut server = NatsServer::start().await.expect("a NATS server");
    let js = stream::connect(&server.config(), "connection-test")
        .await
        .expect("connect");
    let mut registry = Registry::default();
    stream::register_connection_metrics(&js, &mut registry);
    assert_eq!(connected_once(&registry, "1").await, "nats_connected 1");

    // Act: the server goes away, then comes back.
    server.stop();
    let during = connected_once(&registry, "0").await;
    server.resume().await.expect("the server is back");
    let after = connected_once(&registry, "1").await;

    // Assert
    assert_eq!(during, "nats_connected 0", "while the server is down");
    assert_eq!(after, "nats_connected 1", "once it is back");
}

#[tokio::test]
async fn a_list_of_servers_is_served_by_whichever_answers() {
    // Arrange: the first server listed is not there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let live = eventbus::testing::isolated();
    let config = eventbus::NatsConfig {
        url: format!("nats://{dead},{}", live.url.expose()).into(),
        ..live
    };

    // Act
    let js = stream::connect(&config, "servers-test").await.expect("connect");
    stream::ensure_streams(&js, &config)
        .await
        .expect("the streams, through the server that answers");

    // Assert
    let info = js.get_stream(config.subjects().stream()).await;
    assert!(info.is_ok(), "the stream exists");
}
