//! A whole trip, from the call to the final settlement.

use taxi_proto::{
    call::v1::{CallStatus, CompleteTripRequest, StartTripRequest},
    dispatch::v1::DriverStatus,
    payment::v1::EntryKind,
};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_whole_trip_settles_the_ledger_to_the_final_fare() {
    // Arrange
    let system = spawn_system().await;
    let customer = Uuid::new_v4();
    let driver = system.online_driver().await;
    let calls = system.call_client();

    // Act
    let requested = system.request_call(customer).await;
    let accepted = accept(&calls, driver, &requested.call_id).await.expect("accept");
    let started = start(&calls, driver, &requested.call_id).await.expect("start");
    let completed = complete(&calls, driver, &requested.call_id, 12_000)
        .await
        .expect("complete");

    // Assert
    let versions: Vec<_> = [&requested, &accepted, &started, &completed]
        .iter()
        .map(|c| (c.status(), c.version))
        .collect();
    assert_eq!(
        versions,
        [
            (CallStatus::Requested, 1),
            (CallStatus::Accepted, 2),
            (CallStatus::InTrip, 3),
            (CallStatus::Completed, 4)
        ]
    );
    assert!(requested.quoted_fare_krw > 0 && !requested.availability_unchecked);
    assert_eq!(accepted.advance_krw, requested.quoted_fare_krw);
    assert_eq!(accepted.driver_id, driver.to_string());
    // Normal tariff: 4,800 for 1.6 km, then 100 per started 131 m.
    assert_eq!(
        completed.final_fare_krw,
        4_800 + (12_000 - 1_600 + 130) / 131 * 100
    );

    let ledger = system.ledger(&requested.call_id).await;
    let net: i64 = ledger.entries.iter().map(signed_amount).sum();
    assert_eq!(net, completed.final_fare_krw, "advance + final - refunds = fare");
    assert_eq!(ledger.net_paid_krw, completed.final_fare_krw);
    assert_eq!(ledger.entries[0].kind(), EntryKind::Advance);

    assert_eq!(
        system.driver(driver).await.status(),
        DriverStatus::Available,
        "driver released"
    );
    assert_eq!(
        system.call_events(&requested.call_id).await,
        [
            "call.requested",
            "call.accepted",
            "call.trip_started",
            "call.trip_completed",
            "call.settled"
        ]
    );
    let owed = system
        .count("SELECT count(*) FROM call.calls WHERE effect_settle_krw IS NOT NULL OR effect_release_driver IS NOT NULL")
        .await;
    assert_eq!(owed, 0, "no effects left owed");
}

#[tokio::test]
async fn a_trip_shorter_than_quoted_refunds_the_excess() {
    // Arrange
    let system = spawn_system().await;
    let (call, driver) = system.accepted_call(Uuid::new_v4()).await;
    let calls = system.call_client();
    calls
        .clone()
        .start_trip(as_driver(
            driver,
            StartTripRequest {
                call_id: call.call_id.clone(),
            },
        ))
        .await
        .expect("start");

    // Act
    let complete = CompleteTripRequest {
        call_id: call.call_id.clone(),
        distance_m: 500,
    };
    let completed = calls
        .clone()
        .complete_trip(as_driver(driver, complete))
        .await
        .expect("complete")
        .into_inner()
        .call
        .expect("call");

    // Assert
    assert_eq!(completed.final_fare_krw, 4_800, "base fare only");
    let ledger = system.ledger(&call.call_id).await;
    assert_eq!(ledger.net_paid_krw, 4_800);
    let refund = ledger
        .entries
        .iter()
        .find(|e| e.kind() == EntryKind::Refund)
        .expect("a refund entry");
    assert_eq!(refund.amount_krw, call.quoted_fare_krw - 4_800);
}

#[tokio::test]
async fn start_and_complete_are_idempotent_for_the_assigned_driver() {
    // Arrange
    let system = spawn_system().await;
    let (call, driver) = system.accepted_call(Uuid::new_v4()).await;
    let calls = system.call_client();
    let start = || StartTripRequest {
        call_id: call.call_id.clone(),
    };
    let complete = || CompleteTripRequest {
        call_id: call.call_id.clone(),
        distance_m: 3_000,
    };

    // Act
    let first = calls
        .clone()
        .start_trip(as_driver(driver, start()))
        .await
        .expect("start");
    let again = calls
        .clone()
        .start_trip(as_driver(driver, start()))
        .await
        .expect("start again");
    calls
        .clone()
        .complete_trip(as_driver(driver, complete()))
        .await
        .expect("complete");
    let repeated = calls
        .clone()
        .complete_trip(as_driver(driver, complete()))
        .await
        .expect("complete again");

    // Assert
    assert_eq!(first.into_inner().call, again.into_inner().call);
    // The call as it is: completed (4), then settled (5).
    assert_eq!(repeated.into_inner().call.expect("call").version, 5);
    assert_eq!(
        system.ledger(&call.call_id).await.entries.len(),
        2,
        "advance + one final charge"
    );
}

#[tokio::test]
async fn completing_a_trip_that_has_not_started_is_refused() {
    // Arrange
    let system = spawn_system().await;
    let (call, driver) = system.accepted_call(Uuid::new_v4()).await;

    // Act
    let complete = CompleteTripRequest {
        call_id: call.call_id.clone(),
        distance_m: 3_000,
    };
    let refused = system
        .call_client()
        .complete_trip(as_driver(driver, complete))
        .await
        .expect_err("not in trip");

    // Assert
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        system.get_call(&call.call_id).await.status(),
        CallStatus::Accepted
    );
}

#[tokio::test]
async fn an_unknown_call_is_not_found() {
    // Arrange
    let system = spawn_system().await;

    // Act
    let missing = accept(&system.call_client(), Uuid::new_v4(), &Uuid::new_v4().to_string())
        .await
        .expect_err("no such call");

    // Assert
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn health_reports_serving_while_the_database_answers() {
    // Arrange
    let system = spawn_system().await;
    let addr = system.call.as_ref().expect("call-svc").addr;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);

    // Act
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "taxi.call.v1.CallService".into(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status();

    // Assert
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}
