//! The gRPC health service.

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_reports_serving_for_the_query_service_while_redis_answers() {
    // Arrange
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel());

    // Act
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health");
    let query = health
        .check(HealthCheckRequest {
            service: "taxi.query.v1.QueryService".into(),
        })
        .await
        .expect("health");

    // Assert
    assert_eq!(overall.into_inner().status(), ServingStatus::Serving);
    assert_eq!(query.into_inner().status(), ServingStatus::Serving);
    app.cleanup().await;
}
