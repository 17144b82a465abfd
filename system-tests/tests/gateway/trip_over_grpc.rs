//! A whole trip through the gateway over gRPC, each party with its own token.

use taxi_proto::call::v1::CallStatus;

use crate::helpers::*;

#[tokio::test]
async fn a_customer_and_a_driver_complete_a_trip_through_the_gateway_over_grpc() {
    // Arrange
    let app = spawn_app().await;
    let customer = app.customer();
    let driver = app.online_driver().await;

    // Act
    let call = app.request_call(&customer).await;
    let accepted = app.accept(&driver, &call.call_id).await.expect("accept");
    let started = app.start_trip(&driver, &call.call_id).await.expect("start");
    let completed = app.complete_trip(&driver, &call.call_id).await.expect("complete");
    let view = app
        .call_view(&customer, &call.call_id, completed.version)
        .await
        .expect("the customer's view");

    // Assert
    assert_eq!(
        call.customer_id,
        customer.id.to_string(),
        "the call is the token's subject's"
    );
    assert_eq!(
        accepted.driver_id,
        driver.id.to_string(),
        "the accepting driver is the token's subject"
    );
    assert_eq!(
        [accepted.status(), started.status(), completed.status()],
        [CallStatus::Accepted, CallStatus::InTrip, CallStatus::Completed]
    );
    assert_eq!(completed.version, 4);
    assert_eq!(view.status(), CallStatus::Completed);
    // At 4, or already at 5 once the settlement recorded what was paid.
    assert!((4..=5).contains(&view.version), "{view:?}");
    assert_eq!(view.final_fare_krw, completed.final_fare_krw);
    assert!(view.final_fare_krw > 0, "the trip was charged");
}
