//! RequestCall: availability, fault isolation and idempotency.

use taxi_proto::{call::v1::CallStatus, common::v1::TaxiType};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn no_taxi_available_rejects_the_call_and_stores_only_the_rejection() {
    // Arrange: the only driver is a van, far away in Busan.
    let system = spawn_system().await;
    let busan = taxi_proto::common::v1::LatLng {
        latitude: 35.1151,
        longitude: 129.0415,
    };
    system.online_driver_at(TaxiType::Normal, busan).await;
    system.online_driver_at(TaxiType::Van, PICKUP).await;

    // Act
    let refused = system
        .call_client()
        .request_call(as_customer(Uuid::new_v4(), call_request("tok_visa")))
        .await
        .expect_err("no taxi");

    // Assert
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(system.count("SELECT count(*) FROM call.calls").await, 0);
    let events: Vec<String> = sqlx::query_scalar("SELECT event_type FROM call.outbox")
        .fetch_all(&system.db)
        .await
        .expect("outbox");
    assert_eq!(events, ["call.rejected"]);
}

#[tokio::test]
async fn retrying_a_rejected_request_with_one_idempotency_key_records_one_rejection() {
    // Arrange: no driver is online.
    let system = spawn_system().await;
    let customer = Uuid::new_v4();
    let request = call_request("tok_visa");

    // Act: a retry after the answer, then three concurrent retries.
    let mut refusals = Vec::new();
    for _ in 0..2 {
        let refused = system
            .call_client()
            .request_call(as_customer(customer, request.clone()))
            .await
            .expect_err("no taxi");
        refusals.push(refused);
    }
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (client, request) = (system.call_client(), request.clone());
        retries.spawn(async move { client.clone().request_call(as_customer(customer, request)).await });
    }
    while let Some(retry) = retries.join_next().await {
        refusals.push(retry.expect("join").expect_err("no taxi"));
    }

    // Assert
    for refused in &refusals {
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert_eq!(refused.message(), refusals[0].message());
    }
    assert_eq!(system.all_events().await, ["call.rejected"]);
    assert_eq!(system.count("SELECT count(*) FROM call.rejections").await, 1);
    assert_eq!(system.count("SELECT count(*) FROM call.calls").await, 0);
}

#[tokio::test]
async fn a_rejected_request_under_another_idempotency_key_records_another_rejection() {
    // Arrange: no driver is online.
    let system = spawn_system().await;
    let customer = Uuid::new_v4();

    // Act: the customer tries again with a new request, not a retry.
    for _ in 0..2 {
        let refused = system
            .call_client()
            .request_call(as_customer(customer, call_request("tok_visa")))
            .await
            .expect_err("no taxi");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    }

    // Assert
    assert_eq!(system.all_events().await, ["call.rejected", "call.rejected"]);
    assert_eq!(
        system
            .count("SELECT count(DISTINCT aggregate_id) FROM call.outbox")
            .await,
        2,
        "each rejection has its own id"
    );
}

#[tokio::test]
async fn a_rejected_request_retried_once_a_driver_is_online_makes_the_call() {
    // Arrange
    let system = spawn_system().await;
    let customer = Uuid::new_v4();
    let request = call_request("tok_visa");
    let refused = system
        .call_client()
        .request_call(as_customer(customer, request.clone()))
        .await
        .expect_err("no taxi yet");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    system.online_driver().await;

    // Act
    let call = system
        .call_client()
        .request_call(as_customer(customer, request.clone()))
        .await
        .expect("a taxi now")
        .into_inner()
        .call
        .expect("call");
    let retried = system
        .call_client()
        .request_call(as_customer(customer, request))
        .await
        .expect("retry of the call")
        .into_inner()
        .call
        .expect("call");

    // Assert
    assert_eq!(call.status(), CallStatus::Requested);
    assert!(!call.availability_unchecked);
    assert_eq!(retried.call_id, call.call_id);
    assert_eq!(system.count("SELECT count(*) FROM call.calls").await, 1);
    assert_eq!(system.all_events().await, ["call.rejected", "call.requested"]);
    assert_eq!(
        system.call_events(&call.call_id).await,
        ["call.requested"],
        "the call does not share the rejection's id, so its version 1 is its own"
    );
}

#[tokio::test]
async fn a_call_is_accepted_unchecked_while_dispatch_is_down() {
    // Arrange
    let mut system = spawn_system().await;
    system.stop_dispatch().await;

    // Act
    let call = system.request_call(Uuid::new_v4()).await;

    // Assert
    assert_eq!(call.status(), CallStatus::Requested);
    assert!(call.availability_unchecked);
    assert_eq!(system.call_events(&call.call_id).await, ["call.requested"]);
}

#[tokio::test]
async fn calls_keep_being_accepted_once_the_dispatch_circuit_opens() {
    // Arrange
    let mut system = spawn_system().await;
    system.stop_dispatch().await;

    // Act: more requests than the breaker's failure threshold.
    let mut unchecked = Vec::new();
    for _ in 0..5 {
        unchecked.push(system.request_call(Uuid::new_v4()).await.availability_unchecked);
    }

    // Assert
    assert_eq!(unchecked, [true; 5]);
    assert_eq!(system.count("SELECT count(*) FROM call.calls").await, 5);
}

#[tokio::test]
async fn retrying_request_call_with_one_idempotency_key_makes_one_call() {
    // Arrange
    let system = spawn_system().await;
    system.online_driver().await;
    let customer = Uuid::new_v4();
    let request = call_request("tok_visa");

    // Act: a retry after the answer, then five concurrent retries.
    let first = system
        .call_client()
        .request_call(as_customer(customer, request.clone()))
        .await
        .expect("first");
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (client, request) = (system.call_client(), request.clone());
        retries.spawn(async move { client.clone().request_call(as_customer(customer, request)).await });
    }

    // Assert
    let first = first.into_inner().call.expect("call");
    while let Some(retry) = retries.join_next().await {
        let retried = retry
            .expect("join")
            .expect("retry succeeds")
            .into_inner()
            .call
            .expect("call");
        assert_eq!(retried.call_id, first.call_id);
    }
    assert_eq!(system.count("SELECT count(*) FROM call.calls").await, 1);
    assert_eq!(system.call_events(&first.call_id).await, ["call.requested"]);
}

#[tokio::test]
async fn reusing_an_idempotency_key_for_another_trip_is_refused() {
    // Arrange
    let system = spawn_system().await;
    system.online_driver().await;
    let customer = Uuid::new_v4();
    let request = call_request("tok_visa");
    system
        .call_client()
        .request_call(as_customer(customer, request.clone()))
        .await
        .expect("first");

    // Act
    let mut other_trip = request;
    other_trip.dropoff = Some(PICKUP);
    let refused = system
        .call_client()
        .request_call(as_customer(customer, other_trip))
        .await
        .expect_err("reused key");

    // Assert
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(system.count("SELECT count(*) FROM call.calls").await, 1);
}

#[tokio::test]
async fn the_same_key_from_two_customers_makes_two_calls() {
    // Arrange
    let system = spawn_system().await;
    system.online_driver().await;
    let request = call_request("tok_visa");

    // Act
    for customer in [Uuid::new_v4(), Uuid::new_v4()] {
        system
            .call_client()
            .request_call(as_customer(customer, request.clone()))
            .await
            .expect("request");
    }

    // Assert
    assert_eq!(system.count("SELECT count(*) FROM call.calls").await, 2);
}

#[tokio::test]
async fn the_quote_before_calling_is_the_fare_the_call_is_quoted() {
    // Arrange
    let system = spawn_system().await;
    system.online_driver().await;
    let customer = Uuid::new_v4();
    let route = taxi_proto::call::v1::QuoteFareRequest {
        pickup: Some(PICKUP),
        dropoff: Some(DROPOFF),
        taxi_type: TaxiType::Normal.into(),
    };

    // Act
    let quote = system
        .call_client()
        .quote_fare(as_customer(customer, route))
        .await
        .expect("quote")
        .into_inner();
    let call = system.request_call(customer).await;

    // Assert
    assert_eq!(quote.fare_krw, call.quoted_fare_krw);
    assert_eq!(quote.estimated_distance_m, call.estimated_distance_m);
    assert_eq!(
        system.count("SELECT count(*) FROM call.outbox").await,
        1,
        "quoting writes nothing"
    );
}

#[tokio::test]
async fn a_quote_for_a_malformed_route_names_each_bad_field() {
    // Arrange
    let system = spawn_system().await;
    let route = taxi_proto::call::v1::QuoteFareRequest {
        pickup: Some(taxi_proto::common::v1::LatLng {
            latitude: 95.0,
            longitude: 127.0,
        }),
        dropoff: None,
        taxi_type: 0,
    };

    // Act
    let refused = system
        .call_client()
        .quote_fare(as_customer(Uuid::new_v4(), route))
        .await
        .expect_err("invalid");

    // Assert
    assert_eq!(bad_fields(&refused), ["pickup.latitude", "dropoff", "taxi_type"]);
}

#[tokio::test]
async fn a_quote_for_a_route_no_taxi_drives_names_the_dropoff() {
    // Arrange: Seoul Station to Tokyo.
    let system = spawn_system().await;
    let route = taxi_proto::call::v1::QuoteFareRequest {
        pickup: Some(taxi_proto::common::v1::LatLng {
            latitude: 37.5547,
            longitude: 126.9707,
        }),
        dropoff: Some(taxi_proto::common::v1::LatLng {
            latitude: 35.6762,
            longitude: 139.6503,
        }),
        taxi_type: taxi_proto::common::v1::TaxiType::Normal.into(),
    };

    // Act
    let refused = system
        .call_client()
        .quote_fare(as_customer(Uuid::new_v4(), route))
        .await
        .expect_err("too far");

    // Assert
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(bad_fields(&refused), ["dropoff"]);
}
