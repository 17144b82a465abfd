//! Effects a committed transition owes (settle the payment, release the
//! driver) are retried by the sweeper with growing delays, under a lease that
//! lets one replica at a time attempt them, until they succeed.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use taxi_proto::{
    call::v1::{Call, CallStatus},
    dispatch::v1::DriverStatus,
    payment::v1::{EntryKind, EntryStatus},
};
use tokio::time::Instant;
use uuid::Uuid;

use crate::helpers::*;

/// A call's effect bookkeeping, read together with the database's clock.
struct Schedule {
    owed: bool,
    attempts: i32,
    next_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
}

async fn schedule(system: &TestSystem, call_id: &str) -> Schedule {
    let (owed, attempts, next_at, now) = sqlx::query_as(
        "SELECT effect_settle_krw IS NOT NULL OR effect_release_driver IS NOT NULL,
                effect_attempts, effect_next_at, now()
         FROM call.calls WHERE call_id = $1::uuid",
    )
    .bind(call_id)
    .fetch_one(&system.db)
    .await
    .expect("read the effect schedule");
    Schedule {
        owed,
        attempts,
        next_at,
        now,
    }
}

/// Polls until `done` holds for the call's schedule, for at most `within`.
async fn wait_for_schedule(
    system: &TestSystem,
    call_id: &str,
    within: Duration,
    done: impl Fn(&Schedule) -> bool,
) -> Schedule {
    let deadline = Instant::now() + within;
    loop {
        let schedule = schedule(system, call_id).await;
        if done(&schedule) {
            return schedule;
        }
        assert!(Instant::now() < deadline, "the effect schedule never got there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A trip completed while payment-svc is down, so that its final settlement
/// failed right after the commit: (the completed call, its driver).
async fn complete_while_payment_is_down(system: &mut TestSystem) -> (Call, Uuid) {
    let (call, driver) = system.accepted_call(Uuid::new_v4()).await;
    let calls = system.call_client();
    start(&calls, driver, &call.call_id).await.expect("start");
    system.stop_payment().await;
    let completed = complete(&calls, driver, &call.call_id, 12_000)
        .await
        .expect("the trip completes though payment is down");
    assert_eq!(completed.status(), CallStatus::Completed);
    (completed, driver)
}

#[tokio::test]
async fn a_failed_settlement_is_retried_with_growing_delays_until_payment_is_back() {
    // Arrange
    const BASE_MS: i64 = 100;
    const MAX_MS: i64 = 800;
    let mut config = test_call_config();
    config.saga.effect_retry_base_ms = BASE_MS as u64;
    config.saga.effect_retry_max_ms = MAX_MS as u64;
    // A lease then lasts far longer than any retry delay, which tells a row
    // being attempted from one scheduled for its next retry.
    config.saga.stale_after_ms = 60_000;
    let mut system = spawn_system_with_restartable_payment(config).await;
    let (call, driver) = complete_while_payment_is_down(&mut system).await;
    let released = system.wait_for_driver(driver, DriverStatus::Available).await;

    // Act: watch the sweeper retry while payment-svc stays down.
    let mut retries = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while retries.last_key_value().is_none_or(|(&attempts, _)| attempts < 4) {
        assert!(
            Instant::now() < deadline,
            "the sweeper stopped retrying: {retries:?}"
        );
        let seen = schedule(&system, &call.call_id).await;
        assert!(seen.owed, "nothing can settle while payment is down");
        if let Some(next_at) = seen.next_at.filter(|&at| at - seen.now < TimeDelta::seconds(30)) {
            assert!(
                next_at - seen.now <= TimeDelta::milliseconds(MAX_MS),
                "after {} attempts the retry is due in {}, beyond the cap",
                seen.attempts,
                next_at - seen.now
            );
            retries.insert(seen.attempts, next_at);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    system.start_payment().await;
    let settled = wait_for_schedule(&system, &call.call_id, Duration::from_secs(30), |s| !s.owed).await;

    // Assert: retry n+1 is scheduled at least its own delay after retry n was
    // due (it starts no earlier), and those delays double up to the cap, less
    // at most a quarter of jitter.
    assert!(retries.len() >= 3, "too few retries seen: {retries:?}");
    let min_delay = |attempts: i32| TimeDelta::milliseconds((BASE_MS << attempts).min(MAX_MS) * 3 / 4);
    let seen: Vec<_> = retries.into_iter().collect();
    for pair in seen.windows(2) {
        let ((before, due), (after, next_due)) = (pair[0], pair[1]);
        let least: TimeDelta = (before + 1..=after).map(min_delay).sum();
        assert!(
            next_due - due >= least,
            "retries {before} and {after} are {} apart, less than {least}",
            next_due - due
        );
    }
    assert_eq!(
        (settled.attempts, settled.next_at),
        (0, None),
        "the schedule is reset"
    );
    let ledger = system.ledger(&call.call_id).await;
    let net: i64 = ledger.entries.iter().map(signed_amount).sum();
    assert_eq!(net, call.final_fare_krw, "advance + final - refunds = fare");
    assert_eq!(ledger.net_paid_krw, call.final_fare_krw);
    assert_eq!(
        released,
        DriverStatus::Available,
        "the driver is released at once, though the settlement waits for payment"
    );
}

#[tokio::test]
async fn racing_sweeps_of_two_replicas_attempt_owed_effects_once_per_lease() {
    // Arrange: call-svc's own sweeper runs only at start-up; two more
    // replicas on the same database do the sweeping.
    let mut config = test_call_config();
    config.saga.sweep_interval_ms = 3_600_000;
    config.saga.effect_retry_base_ms = 1_000;
    let mut system = spawn_system_with(config).await;
    let (call, _driver) = complete_while_payment_is_down(&mut system).await;
    let (first, second) = (system.call_replica().await, system.call_replica().await);
    let due = wait_for_schedule(&system, &call.call_id, Duration::from_secs(10), |s| {
        s.next_at.is_some_and(|at| at <= s.now)
    })
    .await;
    assert_eq!(due.attempts, 0, "only the attempt right after the commit so far");

    // Act
    let swept = tokio::join!(first.sweep(), second.sweep(), first.sweep(), second.sweep());
    let raced = schedule(&system, &call.call_id).await;
    second.sweep().await.expect("sweep again");

    // Assert
    for sweep in [swept.0, swept.1, swept.2, swept.3] {
        sweep.expect("sweep");
    }
    assert_eq!(raced.attempts, 1, "one attempt for the one lease");
    assert!(
        raced.next_at.is_some_and(|at| at > raced.now),
        "the next retry waits out its back-off"
    );
    let later = schedule(&system, &call.call_id).await;
    assert_eq!(
        later.attempts, 1,
        "the next sweep leaves the effects to their back-off"
    );
    assert!(later.owed);
}

#[tokio::test]
async fn a_declined_final_charge_stays_owed_while_the_trip_completes_and_the_driver_is_free() {
    // Arrange: a card that takes no single charge above 20,000 KRW pays the
    // advance (about 11,600 KRW), then a 100 km trip.
    let mut config = test_call_config();
    config.saga.effect_retry_base_ms = 100;
    config.saga.effect_retry_max_ms = 200;
    let system = spawn_system_with(config).await;
    let driver = system.online_driver().await;
    let call = system
        .request_call_paying(Uuid::new_v4(), "tok_limit_20000")
        .await;
    let calls = system.call_client();
    accept(&calls, driver, &call.call_id)
        .await
        .expect("advance approved");
    start(&calls, driver, &call.call_id).await.expect("start");

    // Act
    let completed = complete(&calls, driver, &call.call_id, 100_000)
        .await
        .expect("the trip completes whatever the card says");
    let retried = wait_for_schedule(&system, &call.call_id, Duration::from_secs(30), |s| {
        s.attempts >= 2
    })
    .await;

    // Assert
    assert_eq!(completed.status(), CallStatus::Completed);
    assert!(retried.owed, "the settlement is still owed");
    assert_eq!(
        system.wait_for_driver(driver, DriverStatus::Available).await,
        DriverStatus::Available,
        "the driver is free though the customer still owes"
    );
    let ledger = system.ledger(&call.call_id).await;
    assert!(
        ledger
            .entries
            .iter()
            .any(|entry| entry.kind() == EntryKind::FinalCharge && entry.status() == EntryStatus::Declined),
        "the declined final charge is in the ledger: {ledger:?}"
    );
    assert_eq!(
        ledger.net_paid_krw, call.quoted_fare_krw,
        "only the advance was paid"
    );
    assert!(completed.final_fare_krw > call.quoted_fare_krw + 20_000);
}
