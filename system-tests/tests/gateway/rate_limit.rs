//! Each subject has its own token bucket: a burst, then RESOURCE_EXHAUSTED
//! until it refills, while everyone else goes on. Beyond the gateway's
//! capacity, requests are shed at once with UNAVAILABLE.

use std::time::{Duration, Instant};

use taxi_proto::query::v1::{GetCallViewRequest, ListMyCallsRequest, WatchCallRequest};
use tonic::Code;

use crate::helpers::*;

/// `user`'s attempt to list their calls, as its status code.
async fn list(app: &TestApp, user: &User) -> Code {
    match app
        .query_client()
        .list_my_calls(bearer(user, ListMyCallsRequest::default()))
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn a_subject_beyond_its_burst_is_told_to_slow_down_while_others_pass() {
    // Arrange: a burst of 3, refilled at one request every five seconds.
    let app = spawn_app_with(|config| {
        config.limits.rate_per_second = 0.2;
        config.limits.burst = std::num::NonZeroU32::new(3).expect("not zero");
    })
    .await;
    let eager = app.customer();
    let other = app.customer();

    // Act
    let mut eager_codes = Vec::new();
    for _ in 0..4 {
        eager_codes.push(list(&app, &eager).await);
    }
    let other_code = list(&app, &other).await;
    let over_grpc_web = app
        .grpc_web()
        .unary::<taxi_proto::query::v1::ListMyCallsResponse>(
            "/taxi.query.v1.QueryService/ListMyCalls",
            Some(&eager.token),
            &ListMyCallsRequest::default(),
        )
        .await
        .map(|_| Code::Ok)
        .unwrap_or_else(|status| status.code());
    let refill_deadline = Instant::now() + Duration::from_secs(20);
    let mut after_refill = list(&app, &eager).await;
    while after_refill != Code::Ok && Instant::now() < refill_deadline {
        // A refused request takes no token, so asking again does not delay the refill.
        tokio::time::sleep(Duration::from_millis(250)).await;
        after_refill = list(&app, &eager).await;
    }

    // Assert
    assert_eq!(
        eager_codes,
        [Code::Ok, Code::Ok, Code::Ok, Code::ResourceExhausted]
    );
    assert_eq!(other_code, Code::Ok, "another subject has a bucket of its own");
    assert_eq!(
        over_grpc_web,
        Code::ResourceExhausted,
        "the same subject over gRPC-web"
    );
    assert_eq!(after_refill, Code::Ok, "the bucket refills");
}

#[tokio::test]
async fn requests_beyond_the_gateways_capacity_are_shed_at_once_as_unavailable() {
    // Arrange: room for one request in flight; query-svc holds a read of an
    // unreached version for 5 s.
    let query = QuerySettings {
        read_your_writes_timeout_ms: 5_000,
        ..Default::default()
    };
    let app = spawn_app_with_query(query, |config| config.limits.max_concurrent_requests = 1).await;
    app.online_driver().await;
    let patient = app.customer();
    let call = app.request_call(&patient).await;
    let other = app.customer();

    // Act
    let slow = GetCallViewRequest {
        call_id: call.call_id.clone(),
        min_version: 99,
    };
    let mut client = app.query_client();
    let request = bearer(&patient, slow);
    let in_flight = tokio::spawn(async move { client.get_call_view(request).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let shed = app
        .query_client()
        .list_my_calls(bearer(&other, ListMyCallsRequest::default()))
        .await
        .expect_err("the gateway is full");
    let shed_in = asked.elapsed();
    let slow = in_flight.await.expect("the slow read ran");
    let afterwards = list(&app, &other).await;

    // Assert
    assert_eq!(shed.code(), Code::Unavailable, "{shed:?}");
    assert!(shed.message().contains("capacity"), "{shed:?}");
    assert!(
        shed_in < Duration::from_millis(1_000),
        "shed at once, not after {shed_in:?}"
    );
    assert_eq!(slow.expect_err("never reached").code(), Code::DeadlineExceeded);
    assert_eq!(afterwards, Code::Ok, "room again once the slow read is over");
}

#[tokio::test]
async fn a_subject_holds_a_bounded_number_of_open_streams() {
    // Arrange: two open streams per subject.
    let app = spawn_app_with(|config| config.limits.max_streams_per_subject = 2).await;
    app.online_driver().await;
    let customer = app.customer();
    let call = app.request_call(&customer).await;
    let other = app.customer();
    let other_call = app.request_call(&other).await;
    let watch = |user: &User, call_id: &str| {
        let request = bearer(
            user,
            WatchCallRequest {
                call_id: call_id.into(),
                from_version: 0,
            },
        );
        let mut client = app.query_client();
        async move { client.watch_call(request).await.map(tonic::Response::into_inner) }
    };

    // Act
    let first = watch(&customer, &call.call_id).await.expect("first stream");
    let _second = watch(&customer, &call.call_id).await.expect("second stream");
    let third = watch(&customer, &call.call_id).await;
    let others = watch(&other, &other_call.call_id).await;
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after_closing_one = watch(&customer, &call.call_id).await;
    while after_closing_one.is_err() && Instant::now() < deadline {
        // The gateway learns of the closed stream shortly after.
        tokio::time::sleep(Duration::from_millis(100)).await;
        after_closing_one = watch(&customer, &call.call_id).await;
    }

    // Assert
    let third = third.expect_err("a third stream is refused");
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    assert!(others.is_ok(), "another subject has places of their own");
    assert!(
        after_closing_one.is_ok(),
        "a closed stream frees its place: {after_closing_one:?}"
    );
}
