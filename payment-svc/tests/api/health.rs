//! grpc.health.v1: SERVING while the database answers.

use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_reports_the_payment_service_serving() {
    // Arrange
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel.clone());
    let request = || HealthCheckRequest {
        service: "taxi.payment.v1.PaymentService".into(),
    };

    // Act: the first probe runs as the server starts, so allow it a moment.
    let mut status = ServingStatus::Unknown;
    for _ in 0..50 {
        if let Ok(response) = health.check(request()).await {
            status = response.into_inner().status();
            if status == ServingStatus::Serving {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Assert
    assert_eq!(status, ServingStatus::Serving);
}
