//! Every malformed input gets INVALID_ARGUMENT naming the field, and nothing
//! is written.

use taxi_proto::call::v1::{
    AcceptCallRequest, CancelCallRequest, CompleteTripRequest, GetCallRequest, RequestCallRequest,
};
use taxi_proto::common::v1::LatLng;
use uuid::Uuid;

use crate::helpers::*;

fn with(change: impl FnOnce(&mut RequestCallRequest)) -> RequestCallRequest {
    let mut request = call_request("tok_visa");
    change(&mut request);
    request
}

#[tokio::test]
async fn every_malformed_request_call_names_its_field_and_writes_nothing() {
    // Arrange
    let system = spawn_system().await;
    system.online_driver().await;
    let at = |latitude, longitude| Some(LatLng { latitude, longitude });
    let cases: Vec<(RequestCallRequest, Vec<&str>)> = vec![
        (with(|r| r.pickup = at(90.5, 127.0)), vec!["pickup.latitude"]),
        (with(|r| r.pickup = at(37.5, 180.5)), vec!["pickup.longitude"]),
        (
            with(|r| r.dropoff = at(-91.0, -181.0)),
            vec!["dropoff.latitude", "dropoff.longitude"],
        ),
        (
            with(|r| r.dropoff = at(f64::NAN, 127.0)),
            vec!["dropoff.latitude"],
        ),
        (with(|r| r.pickup = None), vec!["pickup"]),
        // Seoul to New York: no taxi trip, and no fare payment would take.
        (with(|r| r.dropoff = at(40.7128, -74.006)), vec!["dropoff"]),
        (with(|r| r.taxi_type = 0), vec!["taxi_type"]),
        (with(|r| r.taxi_type = 42), vec!["taxi_type"]),
        (
            with(|r| r.idempotency_key = String::new()),
            vec!["idempotency_key"],
        ),
        (
            with(|r| r.idempotency_key = "k".repeat(129)),
            vec!["idempotency_key"],
        ),
        (
            with(|r| r.idempotency_key = "tab\tkey".into()),
            vec!["idempotency_key"],
        ),
        (with(|r| r.payment_method = "  ".into()), vec!["payment_method"]),
        (
            with(|r| r.payment_method = "t".repeat(65)),
            vec!["payment_method"],
        ),
        (
            with(|r| {
                r.pickup = None;
                r.taxi_type = 0;
                r.idempotency_key = String::new();
            }),
            vec!["pickup", "taxi_type", "idempotency_key"],
        ),
    ];

    for (request, fields) in cases {
        // Act
        let refused = system
            .call_client()
            .request_call(as_customer(Uuid::new_v4(), request))
            .await
            .expect_err("invalid");

        // Assert
        assert_eq!(bad_fields(&refused), fields);
    }
    assert_eq!(system.count("SELECT count(*) FROM call.calls").await, 0);
    assert_eq!(system.count("SELECT count(*) FROM call.outbox").await, 0);
}

#[tokio::test]
async fn malformed_call_ids_distances_and_versions_name_their_field() {
    // Arrange
    let system = spawn_system().await;
    let customer = Uuid::new_v4();
    let (call, driver) = system.accepted_call(customer).await;
    let client = system.call_client();
    let events_before = system.count("SELECT count(*) FROM call.outbox").await;

    // Act
    let empty_id = client
        .clone()
        .accept_call(as_driver(
            driver,
            AcceptCallRequest {
                call_id: String::new(),
            },
        ))
        .await
        .expect_err("empty");
    let not_uuid = client
        .clone()
        .get_call(as_customer(
            customer,
            GetCallRequest {
                call_id: "call-1".into(),
            },
        ))
        .await
        .expect_err("not a uuid");
    let negative = client
        .clone()
        .complete_trip(as_driver(
            driver,
            CompleteTripRequest {
                call_id: call.call_id.clone(),
                distance_m: -1,
            },
        ))
        .await
        .expect_err("negative distance");
    let too_far = client
        .clone()
        .complete_trip(as_driver(
            driver,
            CompleteTripRequest {
                call_id: call.call_id.clone(),
                distance_m: 1_000_001,
            },
        ))
        .await
        .expect_err("too far");
    let bad_version = client
        .clone()
        .cancel_call(as_customer(
            customer,
            CancelCallRequest {
                call_id: call.call_id.clone(),
                expected_version: -3,
            },
        ))
        .await
        .expect_err("negative version");

    // Assert
    assert_eq!(bad_fields(&empty_id), ["call_id"]);
    assert_eq!(bad_fields(&not_uuid), ["call_id"]);
    assert_eq!(bad_fields(&negative), ["distance_m"]);
    assert_eq!(bad_fields(&too_far), ["distance_m"]);
    assert_eq!(bad_fields(&bad_version), ["expected_version"]);
    assert_eq!(
        system.count("SELECT count(*) FROM call.outbox").await,
        events_before
    );
    assert_eq!(system.get_call(&call.call_id).await.version, 2);
}
