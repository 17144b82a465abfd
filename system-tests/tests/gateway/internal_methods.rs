//! Methods only services may call are refused from outside whatever the
//! token, and methods the public API does not have are unimplemented.

use taxi_proto::{
    call::v1::{GetCallRequest, GetCallResponse, RequestCallResponse},
    common::v1::TaxiType,
    dispatch::v1::{AssignDriverRequest, DriverStatus},
    payment::v1::ChargeAdvanceRequest,
};
use tonic::{Code, Status, client::Grpc};
use uuid::Uuid;

use crate::helpers::*;

/// A unary call of `path` through the gateway, whatever the method.
async fn call_path(app: &TestApp, path: &'static str, user: &User) -> Status {
    let mut grpc = Grpc::new(app.channel.clone());
    grpc.ready().await.expect("the gateway is reachable");
    let codec = tonic_prost::ProstCodec::<GetCallRequest, GetCallResponse>::default();
    let request = bearer(
        user,
        GetCallRequest {
            call_id: Uuid::new_v4().to_string(),
        },
    );
    grpc.unary(request, http::uri::PathAndQuery::from_static(path), codec)
        .await
        .expect_err("not a public method")
}

#[tokio::test]
async fn internal_methods_are_permission_denied_and_neither_charge_nor_assign() {
    // Arrange
    let app = spawn_app().await;
    let customer = app.customer();
    let driver = app.online_driver().await;
    let call_id = Uuid::new_v4().to_string();
    let charge = ChargeAdvanceRequest {
        call_id: call_id.clone(),
        customer_id: customer.id.to_string(),
        amount_krw: 100_000,
        payment_method: "tok_visa".into(),
        idempotency_key: Uuid::new_v4().to_string(),
    };
    let assign = AssignDriverRequest {
        call_id: call_id.clone(),
        driver_id: driver.id.to_string(),
        taxi_type: TaxiType::Normal.into(),
    };

    // Act
    let charged = app
        .payment_client()
        .charge_advance(bearer(&customer, charge.clone()))
        .await
        .expect_err("internal");
    let charged_by_an_analyst = app
        .payment_client()
        .charge_advance(bearer(&app.analyst(), charge.clone()))
        .await
        .expect_err("internal");
    let mut posing_as_a_service = bearer(&customer, charge);
    posing_as_a_service
        .metadata_mut()
        .insert("x-taxi-role", "service".parse().expect("ascii"));
    posing_as_a_service
        .metadata_mut()
        .insert("x-taxi-subject", "call-svc".parse().expect("ascii"));
    let charged_posing = app
        .payment_client()
        .charge_advance(posing_as_a_service)
        .await
        .expect_err("internal");
    let assigned = app
        .dispatch_client()
        .assign_driver(bearer(&driver, assign))
        .await
        .expect_err("internal");

    // Assert
    for refused in [&charged, &charged_by_an_analyst, &charged_posing, &assigned] {
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
    assert!(
        app.backends.ledger(&call_id).await.entries.is_empty(),
        "nothing was charged"
    );
    let record = app.driver_record(&driver).await;
    assert_eq!(
        record.status(),
        DriverStatus::Available,
        "the driver was not assigned"
    );
    assert!(record.current_call_id.is_empty(), "{record:?}");
}

#[tokio::test]
async fn methods_outside_the_public_api_are_unimplemented() {
    // Arrange
    let app = spawn_app().await;
    let customer = app.customer();

    // Act
    let unknown_method = call_path(&app, "/taxi.call.v1.CallService/TeleportCustomer", &customer).await;
    let unknown_service = call_path(&app, "/taxi.admin.v1.AdminService/DropEverything", &customer).await;
    let over_grpc_web = app
        .grpc_web()
        .unary::<RequestCallResponse>(
            "/taxi.call.v1.CallService/TeleportCustomer",
            Some(&customer.token),
            &call_request(),
        )
        .await
        .expect_err("not a public method");

    // Assert
    assert_eq!(unknown_method.code(), Code::Unimplemented, "{unknown_method:?}");
    assert_eq!(unknown_service.code(), Code::Unimplemented, "{unknown_service:?}");
    assert_eq!(over_grpc_web.code(), Code::Unimplemented, "{over_grpc_web:?}");
}
