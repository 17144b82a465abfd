//! The gateway's own health, each backend's health under its service name,
//! and reflection of the public API only.

use std::time::Duration;

use prost::Message as _;
use tokio_stream::StreamExt as _;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::helpers::*;

async fn status(app: &TestApp, service: &str) -> Result<ServingStatus, tonic::Status> {
    let request = HealthCheckRequest {
        service: service.into(),
    };
    let response = HealthClient::new(app.channel.clone()).check(request).await?;
    Ok(response.into_inner().status())
}

/// Polls until `service` reports `wanted` (within 15 s), returning what it reported last.
async fn wait_for(
    app: &TestApp,
    service: &str,
    wanted: ServingStatus,
) -> Result<ServingStatus, tonic::Status> {
    let reported = |last: &Result<ServingStatus, tonic::Status>| matches!(last, Ok(s) if *s == wanted);
    system_tests::poll(Duration::from_secs(15), || status(app, service), reported).await
}

/// One reflection exchange.
async fn reflect(app: &TestApp, request: MessageRequest) -> MessageResponse {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    responses
        .next()
        .await
        .expect("an answer")
        .expect("a good answer")
        .message_response
        .expect("a message")
}

#[tokio::test]
async fn the_gateway_and_each_backend_report_serving() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let gateway = status(&app, "").await;
    let mut backends = Vec::new();
    for service in [
        "taxi.call.v1.CallService",
        "taxi.dispatch.v1.DispatchService",
        "taxi.payment.v1.PaymentService",
        "taxi.query.v1.QueryService",
    ] {
        backends.push((
            service,
            wait_for(&app, service, ServingStatus::Serving).await.ok(),
        ));
    }

    // Assert
    assert_eq!(gateway.ok(), Some(ServingStatus::Serving));
    for (service, status) in backends {
        assert_eq!(status, Some(ServingStatus::Serving), "{service}");
    }
}

#[tokio::test]
async fn a_stopped_backend_is_reported_not_serving_while_the_gateway_serves() {
    // Arrange
    let mut app = spawn_app().await;
    wait_for(&app, "taxi.query.v1.QueryService", ServingStatus::Serving)
        .await
        .expect("serving at first");

    // Act
    app.backends.stop_query().await;
    let query = wait_for(&app, "taxi.query.v1.QueryService", ServingStatus::NotServing).await;
    let call = wait_for(&app, "taxi.call.v1.CallService", ServingStatus::Serving).await;
    let gateway = status(&app, "").await;

    // Assert
    assert_eq!(query.ok(), Some(ServingStatus::NotServing));
    assert_eq!(call.ok(), Some(ServingStatus::Serving));
    assert_eq!(gateway.ok(), Some(ServingStatus::Serving));
}

#[tokio::test]
async fn reflection_lists_the_public_services_without_their_internal_methods() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let MessageResponse::ListServicesResponse(listed) =
        reflect(&app, MessageRequest::ListServices(String::new())).await
    else {
        panic!("not a list of services");
    };
    let symbol = MessageRequest::FileContainingSymbol("taxi.payment.v1.PaymentService".into());
    let MessageResponse::FileDescriptorResponse(files) = reflect(&app, symbol).await else {
        panic!("not a file");
    };

    // Assert
    let mut services: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    services.sort();
    for public in [
        "grpc.health.v1.Health",
        "taxi.call.v1.CallService",
        "taxi.dispatch.v1.DispatchService",
        "taxi.payment.v1.PaymentService",
        "taxi.query.v1.QueryService",
    ] {
        assert!(
            services.iter().any(|s| s == public),
            "{public} is not in {services:?}"
        );
    }
    let methods: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("a file descriptor"))
        .flat_map(|file| file.service)
        .filter(|service| service.name() == "PaymentService")
        .flat_map(|service| service.method)
        .map(|method| method.name().to_owned())
        .collect();
    assert_eq!(
        methods,
        ["ListPayments"],
        "only the public method of PaymentService"
    );
}
