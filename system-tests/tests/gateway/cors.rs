//! Browsers on an allowed origin may call the gateway with gRPC-web; others
//! get no CORS permission.

use http_body_util::Full;
use taxi_proto::query::v1::{ListMyCallsRequest, ListMyCallsResponse};

use crate::{grpc_web::GrpcWebStream, helpers::*};

const PATH: &str = "/taxi.query.v1.QueryService/ListMyCalls";

fn preflight(app: &TestApp, origin: &str) -> http::Request<Full<bytes::Bytes>> {
    http::Request::builder()
        .method(http::Method::OPTIONS)
        .uri(app.grpc_web().uri(PATH))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,authorization",
        )
        .body(Full::default())
        .expect("a valid request")
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_granted() {
    // Arrange
    let app = spawn_app().await;
    let web = app.grpc_web();

    // Act
    let response = web.send(preflight(&app, APP_ORIGIN)).await;

    // Assert
    assert_eq!(response.status(), http::StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], APP_ORIGIN);
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(methods.contains("post"), "{methods}");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    for header in ["content-type", "x-grpc-web", "authorization"] {
        assert!(allowed.contains(header), "{header} is not in {allowed}");
    }
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_permission() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.grpc_web().send(preflight(&app, "https://evil.example")).await;

    // Assert
    assert!(
        response.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        response.headers()
    );
}

#[tokio::test]
async fn a_grpc_web_answer_to_an_allowed_origin_lets_the_browser_read_its_status() {
    // Arrange
    let app = spawn_app().await;
    let web = app.grpc_web();
    let customer = app.customer();
    let mut allowed = web.request(PATH, Some(&customer.token), &ListMyCallsRequest::default());
    allowed
        .headers_mut()
        .insert("origin", APP_ORIGIN.parse().expect("ascii"));
    let mut refused = web.request(PATH, None, &ListMyCallsRequest::default());
    refused
        .headers_mut()
        .insert("origin", APP_ORIGIN.parse().expect("ascii"));

    // Act
    let allowed = web.send(allowed).await;
    let refused = web.send(refused).await;

    // Assert
    assert_eq!(allowed.headers()["access-control-allow-origin"], APP_ORIGIN);
    let exposed = refused.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("grpc-message"),
        "{exposed}"
    );
    assert_eq!(refused.headers()["access-control-allow-origin"], APP_ORIGIN);
    let pages = GrpcWebStream::read_all::<ListMyCallsResponse>(allowed)
        .await
        .expect("OK");
    assert_eq!(pages.len(), 1, "one page");
    let refusal = GrpcWebStream::read_all::<ListMyCallsResponse>(refused)
        .await
        .expect_err("no token");
    assert_eq!(refusal.code(), tonic::Code::Unauthenticated);
}
