//! SettleBalance through the gateway: the customer whose final charge was
//! declined pays what is owed with another card, with their own token.

use system_tests::trip;
use taxi_proto::call::v1::SettleBalanceRequest;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_customer_pays_a_declined_balance_with_another_card_through_the_gateway() {
    // Arrange: a card that takes no single charge above 20,000 KRW, and a
    // 100 km trip whose final charge it declines.
    let app = spawn_app().await;
    let customer = app.customer();
    let driver = app.online_driver().await;
    let call = trip::request_call(
        &app.call_client(),
        &customer,
        system_tests::call_request("tok_limit_20000"),
    )
    .await;
    app.backends.wait_for_offer(&call.call_id, driver.id).await;
    app.accept(&driver, &call.call_id).await.expect("accept");
    app.start_trip(&driver, &call.call_id).await.expect("start");
    let completed = trip::complete_trip(&app.call_client(), &driver, &call.call_id, 100_000)
        .await
        .expect("complete");
    let settle = SettleBalanceRequest {
        call_id: call.call_id.clone(),
        payment_method: "tok_visa".into(),
    };

    // Act
    let by_driver = app
        .call_client()
        .settle_balance(bearer(&driver, settle.clone()))
        .await
        .expect_err("drivers do not pay");
    let paid = app
        .call_client()
        .settle_balance(bearer(&customer, settle))
        .await
        .expect("paid")
        .into_inner()
        .call
        .expect("call");

    // Assert
    assert!(completed.owed_krw > 0, "{completed:?}");
    assert_eq!(by_driver.code(), Code::PermissionDenied, "{by_driver:?}");
    assert_eq!(
        (paid.paid_krw, paid.refunded_krw, paid.owed_krw),
        (completed.final_fare_krw, 0, 0)
    );
    assert_eq!(
        app.backends.ledger(&call.call_id).await.net_paid_krw,
        completed.final_fare_krw
    );
}
