//! The per-RPC metrics and the admin port against real servers on loopback
//! ports: a server from `grpc::serve_with_health` (health's Check is unary,
//! its Watch a server stream), called by a health client over a channel
//! behind the client layer, and the registry read back as OpenMetrics text.

use std::{sync::Arc, time::Duration};

use svc_kit::{
    identity::Verifier,
    metrics::{self, Registry, rpc::RpcMetrics},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};
use tonic::{
    Code,
    codegen::http::uri::PathAndQuery,
    service::Routes,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_client::HealthClient};
use tower::ServiceBuilder;

const GATEWAY_PUB: &[u8] = include_bytes!("../test-keys/gateway.pub.pem");
/// A service the server reports on, so Check knows it.
const SERVED: &str = "taxi.call.v1.CallService";

/// A running server recording into `server` metrics, stopped when dropped.
struct Served {
    url: String,
    _stop: oneshot::Sender<()>,
}

async fn serve(metrics: RpcMetrics) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let verifier = Arc::new(Verifier::from_pems(GATEWAY_PUB, []).expect("the test key"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(svc_kit::grpc::serve_with_health(
        listener,
        Routes::default(),
        verifier,
        metrics,
        &[SERVED],
        Duration::from_secs(3600),
        || async { true },
        async {
            let _ = stopped.await;
        },
    ));
    Served { url, _stop: stop }
}

async fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .expect("a URL")
        .connect()
        .await
        .expect("the server answers")
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

/// Waits until `registry`'s text holds every one of `lines`, and returns
/// it; the server side sees a client go away a moment after it has.
async fn text_with(registry: &Registry, lines: &[String]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics::encode(registry);
        let missing: Vec<_> = lines
            .iter()
            .filter(|line| !text.contains(line.as_str()))
            .collect();
        if missing.is_empty() {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing {missing:#?} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The lines of one side's families for the calls the test makes.
fn expected(side: &str, messages: &str) -> Vec<String> {
    let health = r#"grpc_service="grpc.health.v1.Health""#;
    let check = format!(r#"grpc_type="unary",{health},grpc_method="Check""#);
    let watch = format!(r#"grpc_type="server_stream",{health},grpc_method="Watch""#);
    let unknown = r#"grpc_type="unknown",grpc_service="unknown",grpc_method="unknown""#;
    vec![
        format!("grpc_{side}_started_total{{{check}}} 2\n"),
        format!(r#"grpc_{side}_handled_total{{{check},grpc_code="OK"}} 1"#),
        format!(r#"grpc_{side}_handled_total{{{check},grpc_code="NotFound"}} 1"#),
        format!("grpc_{side}_handling_seconds_count{{{check}}} 2\n"),
        // Only the OK answer carries a message.
        format!("grpc_{side}_msg_{messages}_total{{{check}}} 1\n"),
        format!("grpc_{side}_started_total{{{watch}}} 1\n"),
        format!(r#"grpc_{side}_handled_total{{{watch},grpc_code="Canceled"}} 1"#),
        format!("grpc_{side}_msg_{messages}_total{{{watch}}} 1\n"),
        format!("grpc_{side}_handling_seconds_count{{{watch}}} 1\n"),
        format!("grpc_{side}_streams_open{{{health},grpc_method=\"Watch\"}} 0\n"),
        format!("grpc_{side}_started_total{{{unknown}}} 1\n"),
        format!(r#"grpc_{side}_handled_total{{{unknown},grpc_code="Unimplemented"}} 1"#),
    ]
}

#[tokio::test]
async fn server_and_client_record_codes_streams_and_unknown_paths() {
    let mut registry = Registry::default();
    let server = RpcMetrics::server();
    server.register(&mut registry);
    let client = RpcMetrics::client();
    client.register(&mut registry);
    let registry = registry;
    let served = serve(server).await;
    let metered = ServiceBuilder::new()
        .layer(client.layer())
        .service(channel(&served.url).await);
    let mut health = HealthClient::new(metered.clone());

    let ok = health.check(check(SERVED)).await.expect("a served service");
    assert_eq!(ok.get_ref().status, 1, "SERVING");
    let not_found = health
        .check(check("taxi.nothing.v1.Nothing"))
        .await
        .expect_err("an unknown service");
    assert_eq!(not_found.code(), Code::NotFound);

    let mut watch = health.watch(check(SERVED)).await.expect("a stream").into_inner();
    watch
        .message()
        .await
        .expect("the first status")
        .expect("a message");
    let open = r#"grpc_server_streams_open{grpc_service="grpc.health.v1.Health",grpc_method="Watch"} 1"#;
    text_with(&registry, &[open.to_owned()]).await;
    drop(watch);

    let mut grpc = tonic::client::Grpc::new(metered);
    grpc.ready().await.expect("ready");
    let unimplemented = grpc
        .unary(
            tonic::Request::new(check(SERVED)),
            PathAndQuery::from_static("/taxi.nothing.v1.Nothing/Do"),
            tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default(),
        )
        .await
        .expect_err("nobody serves that path");
    assert_eq!(unimplemented.code(), Code::Unimplemented);

    let mut lines = expected("server", "sent");
    lines.extend(expected("client", "received"));
    let text = text_with(&registry, &lines).await;
    assert!(
        !text.contains("taxi.nothing"),
        "an unknown name became a label:\n{text}"
    );
}

#[tokio::test]
async fn a_client_that_cannot_connect_counts_unavailable() {
    let mut registry = Registry::default();
    let client = RpcMetrics::client();
    client.register(&mut registry);
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}", closed.local_addr().expect("its address"));
    drop(closed);
    let channel = Endpoint::from_shared(url).expect("a URL").connect_lazy();
    let mut health = HealthClient::new(ServiceBuilder::new().layer(client.layer()).service(channel));

    let refused = health.check(check(SERVED)).await.expect_err("nobody listens");

    assert_eq!(refused.code(), Code::Unavailable);
    text_with(
        &registry,
        &[
            r#"grpc_client_handled_total{grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="Unavailable"} 1"#
                .to_owned(),
        ],
    )
    .await;
}

/// Sends `request` as it is and returns the whole answer.
async fn http(address: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(address).await.expect("the admin port");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("an answer");
    answer
}

#[tokio::test]
async fn the_admin_port_serves_the_registry_at_metrics_only() {
    let mut registry = Registry::default();
    let server = RpcMetrics::server();
    server.register(&mut registry);
    let registry = Arc::new(registry);
    // One recorded call, so the text has a family to show.
    let served = serve(server).await;
    HealthClient::new(channel(&served.url).await)
        .check(check(SERVED))
        .await
        .expect("a served service");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("its address");
    let (stop, stopped) = oneshot::channel::<()>();
    let admin = tokio::spawn(metrics::admin::serve(listener, registry.clone(), async {
        let _ = stopped.await;
    }));

    let scraped = http(
        address,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let elsewhere = http(
        address,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let posted = http(
        address,
        "POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;

    assert!(scraped.starts_with("HTTP/1.1 200 OK\r\n"), "{scraped}");
    assert!(
        scraped
            .to_ascii_lowercase()
            .contains("\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"),
        "{scraped}"
    );
    assert!(
        scraped.contains(
            r#"grpc_server_handled_total{grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="OK"} 1"#
        ),
        "{scraped}"
    );
    assert!(scraped.ends_with("# EOF\n"), "{scraped}");
    assert!(elsewhere.starts_with("HTTP/1.1 404 "), "{elsewhere}");
    assert!(posted.starts_with("HTTP/1.1 404 "), "{posted}");

    stop.send(()).expect("the server runs");
    tokio::time::timeout(Duration::from_secs(5), admin)
        .await
        .expect("the admin server stops")
        .expect("it did not panic")
        .expect("it stopped cleanly");
}
