//! Two replicas of every backend, as processes, behind one gateway: whole
//! trips keep flowing through a crash (SIGKILL) of a replica of each
//! backend and through a rolling restart (SIGTERM, drain, start) of every
//! replica, and the money of every trip still matches its state.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use system_tests::{
    System,
    processes::{Processes, Replicas},
    trip,
};
use taxi_proto::{
    call::v1::{CompleteTripRequest, StartTripRequest, call_service_client::CallServiceClient},
    common::v1::TaxiType,
    dispatch::v1::dispatch_service_client::DispatchServiceClient,
    query::v1::{GetCallViewRequest, query_service_client::QueryServiceClient},
};
use tokio::sync::watch;
use tonic::{Status, transport::Channel};

use crate::helpers::{User, bearer, call_request};

/// Requests the trips' clients saw fail, by step and code; and how many they
/// sent in all (under `"sent"`).
type Failures = Arc<Mutex<BTreeMap<String, usize>>>;

const SENT: &str = "sent";

/// One party's requests through the gateway.
#[derive(Clone)]
struct Clients {
    calls: CallServiceClient<Channel>,
    query: QueryServiceClient<Channel>,
}

/// Sends a step until it succeeds, as an app retries, recording every
/// failed attempt; gives up after 40 attempts (about 10 s).
async fn until_done<T, F, Fut>(failures: &Failures, step: &str, mut send: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    for _ in 0..40 {
        *failures
            .lock()
            .expect("failures")
            .entry(SENT.to_owned())
            .or_default() += 1;
        match send().await {
            Ok(answer) => return Some(answer),
            Err(status) => {
                let key = format!("{step} {:?}: {}", status.code(), status.message());
                *failures.lock().expect("failures").entry(key).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    None
}

/// Whole trips, one after another, by one customer and one driver, until
/// `stop`; returns the calls completed.
async fn trips(
    clients: Clients,
    customer: User,
    driver: User,
    failures: Failures,
    mut stop: watch::Receiver<bool>,
) -> Vec<String> {
    let mut completed = Vec::new();
    while !*stop.borrow_and_update() {
        let calls = &clients.calls;
        let Some(call) = until_done(&failures, "RequestCall", || {
            let (mut calls, request) = (calls.clone(), bearer(&customer, call_request()));
            async move { calls.request_call(request).await }
        })
        .await
        else {
            break;
        };
        let call_id = call.into_inner().call.expect("call").call_id;
        let id = || call_id.clone();
        // (as the driver's app would: once the offer is there)
        let accepted = until_done(&failures, "AcceptCall", || trip::accept(calls, &driver, &call_id));
        let Some(_) = accepted.await else { break };
        let started = until_done(&failures, "StartTrip", || {
            let (mut calls, request) = (calls.clone(), bearer(&driver, StartTripRequest { call_id: id() }));
            async move { calls.start_trip(request).await }
        });
        let Some(_) = started.await else { break };
        let complete = CompleteTripRequest {
            call_id: id(),
            distance_m: 5_400,
        };
        let done = until_done(&failures, "CompleteTrip", || {
            let (mut calls, request) = (calls.clone(), bearer(&driver, complete.clone()));
            async move { calls.complete_trip(request).await }
        });
        let Some(done) = done.await else { break };
        let version = done.into_inner().call.expect("call").version;
        let view = until_done(&failures, "GetCallView", || {
            let request = GetCallViewRequest {
                call_id: id(),
                min_version: version,
            };
            let (mut query, request) = (clients.query.clone(), bearer(&customer, request));
            async move { query.get_call_view(request).await }
        });
        let Some(_) = view.await else { break };
        completed.push(call_id);
    }
    completed
}

#[tokio::test]
async fn trips_flow_through_a_crash_of_each_backend_and_a_rolling_restart_of_every_replica() {
    // Arrange: two replicas of each backend; four pairs riding.
    let system = System::builder().stores().await;
    let mut platform = Processes::start(&system, Replicas::all(2), &[])
        .await
        .expect("the platform starts");
    let user = |role: &str| User::new(&platform.gateway_config, role);
    let clients = Clients {
        calls: CallServiceClient::new(platform.gateway.clone()),
        query: QueryServiceClient::new(platform.gateway.clone()),
    };
    let dispatch = DispatchServiceClient::new(platform.gateway.clone());
    let failures = Failures::default();
    let (stop, stopped) = watch::channel(false);
    let mut riders = Vec::new();
    for _ in 0..4 {
        let (customer, driver) = (user("customer"), user("driver"));
        trip::online_driver(&dispatch, &driver, TaxiType::Normal, system_tests::PICKUP).await;
        riders.push(tokio::spawn(trips(
            clients.clone(),
            customer,
            driver,
            failures.clone(),
            stopped.clone(),
        )));
    }
    let settle = || tokio::time::sleep(Duration::from_millis(1_500));
    settle().await;
    let failed = |failures: &Failures| {
        let mut failed = failures.lock().expect("failures").clone();
        let sent = failed.remove(SENT).unwrap_or_default();
        (failed, sent)
    };
    let (before_faults, _) = failed(&failures);

    // Act: a crash of one replica of each backend, restarted after a while ...
    let mut faults = Vec::new();
    for name in ["payment-svc", "dispatch-svc", "call-svc", "query-svc"] {
        platform.kill(name, 0);
        settle().await;
        platform.restart(name, 0).await.expect("restart");
        settle().await;
        faults.push(format!("SIGKILL {name} #0"));
    }
    let (after_crashes, sent_by_then) = failed(&failures);
    // ... then every replica restarted in turn, as a deploy does.
    for name in ["payment-svc", "dispatch-svc", "call-svc", "query-svc"] {
        for replica in 0..2 {
            platform.terminate(name, replica).await.expect("drain");
            platform.restart(name, replica).await.expect("restart");
            settle().await;
        }
    }
    stop.send(true).expect("riders listen");
    let mut completed = Vec::new();
    for rider in riders {
        completed.extend(rider.await.expect("rider"));
    }
    let (after_rolling, sent) = failed(&failures);

    // Assert: the trips went on ...
    println!(
        "{} trips completed, {sent} requests sent ({sent_by_then} by the end of the crashes); faults: {faults:?}",
        completed.len()
    );
    println!(
        "failed requests before faults {before_faults:?}, through the crashes {after_crashes:?}, in all {after_rolling:?}"
    );
    assert!(completed.len() >= 20, "only {} trips completed", completed.len());
    assert!(before_faults.is_empty(), "{before_faults:?}");
    // A crash may fail what the replica held (a request past the connection,
    // events it had pulled until JetStream redelivers them), and an app's
    // retry then succeeds; under 1 % of the requests. A rolling restart
    // should fail none; it is held to the same bound (see the README's
    // limits: a rare stall on a call's row during one is not explained yet).
    let crash_failures: usize = after_crashes.values().sum();
    assert!(
        crash_failures * 100 <= sent_by_then,
        "{after_crashes:?} of {sent_by_then}"
    );
    let rolling_failures = after_rolling.values().sum::<usize>() - crash_failures;
    assert!(
        rolling_failures * 100 <= sent - sent_by_then,
        "the rolling restart failed {rolling_failures} of {} requests: {after_rolling:?}",
        sent - sent_by_then
    );

    // ... and every completed trip's money matches it: one approved advance,
    // and the approved charges less refunds equal the final fare.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM call.calls c
         WHERE c.status = 'COMPLETED' AND (
             (SELECT count(*) FROM payment.entries e
               WHERE e.call_id = c.call_id AND e.kind = 'ADVANCE' AND e.status = 'APPROVED') <> 1
          OR (SELECT coalesce(sum(CASE WHEN e.kind = 'REFUND' THEN -e.amount_krw ELSE e.amount_krw END), 0)
               FROM payment.entries e WHERE e.call_id = c.call_id AND e.status = 'APPROVED') <> c.final_fare_krw)",
    )
    .fetch_one(&system.db)
    .await
    .expect("the ledger check");
    assert_eq!(mismatched, 0, "completed trips whose money does not match");
    let drivers_on_two_calls: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT driver_id FROM call.calls
          WHERE status IN ('ACCEPTED', 'IN_TRIP') GROUP BY driver_id HAVING count(*) > 1) twice",
    )
    .fetch_one(&system.db)
    .await
    .expect("the drivers check");
    assert_eq!(drivers_on_two_calls, 0);
}
