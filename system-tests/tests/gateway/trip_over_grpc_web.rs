//! The same trip as a browser makes it: gRPC-web over HTTP/1.1, with the
//! customer watching the call on a server stream.

use std::time::Duration;

use taxi_proto::{
    call::v1::{
        AcceptCallRequest, AcceptCallResponse, CallStatus, CompleteTripRequest, CompleteTripResponse,
        RequestCallResponse, StartTripRequest, StartTripResponse,
    },
    common::v1::TaxiType,
    dispatch::v1::{
        RegisterDriverRequest, RegisterDriverResponse, SetOnlineRequest, SetOnlineResponse,
        UpdateLocationRequest, UpdateLocationResponse,
    },
    query::v1::{GetCallViewRequest, GetCallViewResponse, WatchCallRequest, WatchCallResponse},
};

use crate::{grpc_web::GrpcWebStream, helpers::*};

const CALL: &str = "/taxi.call.v1.CallService";
const DISPATCH: &str = "/taxi.dispatch.v1.DispatchService";
const QUERY: &str = "/taxi.query.v1.QueryService";

/// The next view on a watch, within 10 s.
async fn next_view(watch: &mut GrpcWebStream) -> Option<(CallStatus, i64)> {
    let message = tokio::time::timeout(Duration::from_secs(10), watch.message::<WatchCallResponse>())
        .await
        .expect("a change within 10 s")
        .expect("the watch goes on or ends with OK");
    message.map(|m| {
        let view = m.view.expect("view");
        (view.status(), view.version)
    })
}

#[tokio::test]
async fn a_browser_completes_a_trip_over_grpc_web_and_watches_every_change() {
    // Arrange: a driver comes online over gRPC-web.
    let app = spawn_app().await;
    let web = app.grpc_web();
    let customer = app.customer();
    let driver = app.driver();
    let register = RegisterDriverRequest {
        name: "Kim Gisa".into(),
        license_plate: "12가3456".into(),
        taxi_type: TaxiType::Normal.into(),
    };
    web.unary::<RegisterDriverResponse>(
        &format!("{DISPATCH}/RegisterDriver"),
        Some(&driver.token),
        &register,
    )
    .await
    .expect("register");
    web.unary::<SetOnlineResponse>(
        &format!("{DISPATCH}/SetOnline"),
        Some(&driver.token),
        &SetOnlineRequest {},
    )
    .await
    .expect("online");
    let location = UpdateLocationRequest {
        location: Some(PICKUP),
    };
    web.unary::<UpdateLocationResponse>(
        &format!("{DISPATCH}/UpdateLocation"),
        Some(&driver.token),
        &location,
    )
    .await
    .expect("location");

    // Act: the customer calls and watches; the driver runs the trip.
    let call = web
        .unary::<RequestCallResponse>(
            &format!("{CALL}/RequestCall"),
            Some(&customer.token),
            &call_request(),
        )
        .await
        .expect("request call")
        .call
        .expect("call");
    let watch = WatchCallRequest {
        call_id: call.call_id.clone(),
        from_version: 0,
    };
    let mut watch = web
        .server_stream(&format!("{QUERY}/WatchCall"), Some(&customer.token), &watch)
        .await
        .expect("watch");
    // Read while the stream stays open: the view arrives before the trip goes on.
    let mut seen = vec![next_view(&mut watch).await.expect("the current view")];
    let by_id = AcceptCallRequest {
        call_id: call.call_id.clone(),
    };
    // The driver takes the offer once it is made (their app sees it on WatchOffers).
    app.backends.wait_for_offer(&call.call_id, driver.id).await;
    let accepted = web
        .unary::<AcceptCallResponse>(&format!("{CALL}/AcceptCall"), Some(&driver.token), &by_id)
        .await
        .expect("accept")
        .call
        .expect("call");
    let start = StartTripRequest {
        call_id: call.call_id.clone(),
    };
    web.unary::<StartTripResponse>(&format!("{CALL}/StartTrip"), Some(&driver.token), &start)
        .await
        .expect("start");
    let complete = CompleteTripRequest {
        call_id: call.call_id.clone(),
        distance_m: 7_000,
    };
    let completed = web
        .unary::<CompleteTripResponse>(&format!("{CALL}/CompleteTrip"), Some(&driver.token), &complete)
        .await
        .expect("complete")
        .call
        .expect("call");
    while let Some(view) = next_view(&mut watch).await {
        seen.push(view);
    }
    let view = GetCallViewRequest {
        call_id: call.call_id.clone(),
        min_version: 4,
    };
    let view = web
        .unary::<GetCallViewResponse>(&format!("{QUERY}/GetCallView"), Some(&customer.token), &view)
        .await
        .expect("the customer's view")
        .view
        .expect("view");

    // Assert
    assert_eq!(call.customer_id, customer.id.to_string());
    assert_eq!(accepted.driver_id, driver.id.to_string());
    assert_eq!(completed.status(), CallStatus::Completed);
    assert_eq!(
        seen,
        [
            (CallStatus::Requested, 1),
            (CallStatus::Accepted, 2),
            (CallStatus::InTrip, 3),
            (CallStatus::Completed, 4)
        ],
        "every change, in order, then the stream ends with OK"
    );
    // At 4, or already at 5 once the settlement recorded what was paid.
    assert_eq!(view.status(), CallStatus::Completed);
    assert!((4..=5).contains(&view.version), "{view:?}");
    assert_eq!(view.final_fare_krw, completed.final_fare_krw);
}
