//! The read side through the whole system: commands on call-svc, events
//! through the outbox relay and JetStream, views in query-svc.

use std::time::Duration;

use taxi_proto::{
    call::v1::CallStatus,
    query::v1::{Bucket, GetCallViewRequest, GetDashboardRequest, WatchCallRequest},
};
use uuid::Uuid;

use crate::helpers::*;

/// Reads the customer's view at `min_version` or newer (read-your-writes).
async fn view_at(system: &TestSystem, customer: Uuid, call_id: &str, min_version: i64) -> (CallStatus, i64) {
    let customer = svc_kit::identity::Caller::Customer(customer);
    let view = system_tests::trip::call_view(&system.query_client(), &customer, call_id, min_version)
        .await
        .expect("view");
    (view.status(), view.version)
}

/// Drives a whole trip, returning each command's (status, version).
async fn trip(system: &TestSystem, driver: Uuid, call_id: &str) -> Vec<(CallStatus, i64)> {
    let calls = system.call_client();
    let accepted = accept(&calls, driver, call_id).await.expect("accept");
    let started = start(&calls, driver, call_id).await.expect("start");
    let completed = complete(&calls, driver, call_id, 7_000).await.expect("complete");
    [accepted, started, completed]
        .iter()
        .map(|c| (c.status(), c.version))
        .collect()
}

#[tokio::test]
async fn a_trips_view_goes_through_every_status_and_watch_call_delivers_each_change() {
    // Arrange
    let mut system = spawn_system().await;
    system.start_query().await;
    let customer = Uuid::new_v4();
    let driver = system.online_driver().await;
    let call = system.request_call(customer).await;
    let watch = WatchCallRequest {
        call_id: call.call_id.clone(),
        from_version: 0,
    };
    // The first view arrives once the CallRequested event is projected.
    let mut stream = system
        .query_client()
        .watch_call(as_customer(customer, watch))
        .await
        .expect("watch")
        .into_inner();

    // Act
    trip(&system, driver, &call.call_id).await;
    let mut seen = Vec::new();
    while let Some(message) = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a change within 10 s")
        .expect("stream")
    {
        let view = message.view.expect("view");
        seen.push((view.status(), view.version));
    }

    // Assert
    assert_eq!(
        seen,
        [
            (CallStatus::Requested, 1),
            (CallStatus::Accepted, 2),
            (CallStatus::InTrip, 3),
            (CallStatus::Completed, 4)
        ],
        "every change, in order, then the stream ends"
    );
}

#[tokio::test]
async fn right_after_each_command_the_view_at_its_version_shows_that_state() {
    // Arrange
    let mut system = spawn_system().await;
    system.start_query().await;
    let customer = Uuid::new_v4();
    let driver = system.online_driver().await;

    let calls = system.call_client();

    // Act / Assert: each command's answer, then at once the view at its version.
    let call = system.request_call(customer).await;
    assert_eq!(
        view_at(&system, customer, &call.call_id, call.version).await,
        (CallStatus::Requested, 1)
    );
    let accepted = accept(&calls, driver, &call.call_id).await.expect("accept");
    assert_eq!(
        view_at(&system, customer, &call.call_id, accepted.version).await,
        (CallStatus::Accepted, 2)
    );
    let started = start(&calls, driver, &call.call_id).await.expect("start");
    assert_eq!(
        view_at(&system, customer, &call.call_id, started.version).await,
        (CallStatus::InTrip, 3)
    );
    let completed = complete(&calls, driver, &call.call_id, 7_000)
        .await
        .expect("complete");
    // At 4, or already at 5 once the settlement recorded what was paid.
    let (status, version) = view_at(&system, customer, &call.call_id, completed.version).await;
    assert_eq!(status, CallStatus::Completed);
    assert!((4..=5).contains(&version), "{version}");
}

#[tokio::test]
async fn views_converge_and_nothing_is_counted_twice_after_a_nats_outage() {
    // Arrange: the whole system on a NATS server of this test's own.
    let mut nats = eventbus::testing::NatsServer::start().await.expect("nats-server");
    let mut system = spawn_system_on(test_call_config(), nats.config()).await;
    system.start_query().await;
    let driver = system.online_driver().await;
    let before = system.request_call(Uuid::new_v4()).await;
    let customer = Uuid::new_v4();
    view_at(
        &system,
        Uuid::parse_str(&before.customer_id).expect("uuid"),
        &before.call_id,
        1,
    )
    .await;

    // Act: NATS goes away while a trip runs, then comes back. The driver
    // accepts before (the offer itself travels through NATS).
    let call = system.request_call(customer).await;
    system.wait_for_offer(&call.call_id, driver).await;
    let calls = system.call_client();
    accept(&calls, driver, &call.call_id).await.expect("accept");
    nats.stop();
    start(&calls, driver, &call.call_id).await.expect("start");
    let completed = complete(&calls, driver, &call.call_id, 7_000).await;
    assert_eq!(
        completed
            .map(|call| (call.status(), call.version))
            .expect("complete"),
        (CallStatus::Completed, 4),
        "commands succeed without NATS"
    );
    nats.resume().await.expect("nats back");

    // Assert: the backlog drains once the relays and the projector reconnect.
    let resumed = std::time::Instant::now();
    let converged = loop {
        // 5: the refund after the trip, recorded before CompleteTrip answered.
        let request = GetCallViewRequest {
            call_id: call.call_id.clone(),
            min_version: 5,
        };
        match system
            .query_client()
            .get_call_view(as_customer(customer, request))
            .await
        {
            Ok(view) => break view.into_inner().view.expect("view"),
            Err(status) if resumed.elapsed() < Duration::from_secs(30) => {
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::DeadlineExceeded | tonic::Code::NotFound
                    ),
                    "{status:?}"
                );
            }
            Err(status) => panic!("no convergence within 30 s: {status:?}"),
        }
    };
    eprintln!("converged {:?} after NATS came back", resumed.elapsed());
    assert_eq!(
        (converged.status(), converged.version),
        (CallStatus::Completed, 5)
    );
    let now = chrono::Utc::now();
    let dashboard = GetDashboardRequest {
        from: Some(svc_kit::clock::to_proto(now - chrono::Duration::hours(1))),
        to: Some(svc_kit::clock::to_proto(now + chrono::Duration::hours(1))),
        bucket: Bucket::Hour.into(),
    };
    let totals = system
        .query_client()
        .get_dashboard(with_identity(
            svc_kit::identity::Caller::Analyst(Uuid::new_v4()),
            dashboard,
        ))
        .await
        .expect("dashboard")
        .into_inner()
        .totals
        .expect("totals");
    assert_eq!(
        (totals.requested, totals.accepted, totals.completed),
        (2, 1, 1),
        "each event counted once"
    );
    assert_eq!(totals.revenue_krw, 4_800 + (7_000 - 1_600 + 130) / 131 * 100);
}
