//! gRPC health: SERVING while the database answers.

use std::time::Duration;

use taxi_proto::dispatch::v1::dispatch_service_server::SERVICE_NAME;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_check_reports_serving_while_the_database_answers() {
    // Arrange
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel.clone());

    // Act
    let mut status = ServingStatus::Unknown;
    // The reporter publishes its first probe shortly after start-up.
    for _ in 0..50 {
        let response = health
            .check(HealthCheckRequest {
                service: SERVICE_NAME.into(),
            })
            .await;
        if let Ok(response) = response {
            status = response.into_inner().status();
            if status == ServingStatus::Serving {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Assert
    assert_eq!(status, ServingStatus::Serving);
}
