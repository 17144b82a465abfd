//! WatchCall: the current view, then every later version, ending after a
//! terminal one.

use std::time::Duration;

use svc_kit::identity::Caller;
use taxi_proto::{
    call::v1::{CallStatus, CancelReason},
    common::v1::TaxiType,
};
use uuid::Uuid;

use crate::helpers::{Trip, collect_watch, spawn_app, utc};

fn statuses(views: &[taxi_proto::query::v1::CallView]) -> Vec<(i64, i32)> {
    views.iter().map(|v| (v.version, v.status)).collect()
}

#[tokio::test]
async fn watch_call_from_zero_receives_every_status_in_order_then_ends() {
    // Arrange
    let app = spawn_app().await;
    let customer = Uuid::new_v4();
    let trip = Trip::completed_at(customer, utc(2031, 2, 1, 8, 0));
    app.publish(&trip.events[0]).await;
    app.view(&Caller::Customer(customer), trip.id(), 1)
        .await
        .expect("v1");

    // Act
    let stream = app
        .watch(&Caller::Customer(customer), trip.id(), 0)
        .await
        .expect("watch");
    let watcher = tokio::spawn(collect_watch(stream));
    for event in &trip.events[1..] {
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.publish(event).await;
    }
    let views = watcher.await.expect("watcher");

    // Assert
    assert_eq!(
        statuses(&views),
        [
            (1, CallStatus::Requested as i32),
            (2, CallStatus::Accepted as i32),
            (3, CallStatus::InTrip as i32),
            (4, CallStatus::Completed as i32),
        ]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn watch_call_from_version_two_resumes_with_versions_three_and_four_only() {
    // Arrange
    let app = spawn_app().await;
    let customer = Uuid::new_v4();
    let trip = Trip::completed_at(customer, utc(2031, 2, 1, 8, 0));
    app.publish_all(&trip.events[..3]).await;
    app.view(&Caller::Customer(customer), trip.id(), 3)
        .await
        .expect("v3");

    // Act
    let stream = app
        .watch(&Caller::Customer(customer), trip.id(), 2)
        .await
        .expect("watch");
    let watcher = tokio::spawn(collect_watch(stream));
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.publish(&trip.events[3]).await;
    let views = watcher.await.expect("watcher");

    // Assert
    assert_eq!(
        statuses(&views),
        [(3, CallStatus::InTrip as i32), (4, CallStatus::Completed as i32)]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn watch_call_of_a_finished_call_sends_the_final_view_and_ends() {
    // Arrange
    let app = spawn_app().await;
    let customer = Uuid::new_v4();
    let mut trip = Trip::request(customer, TaxiType::Premium, utc(2031, 2, 1, 8, 0));
    trip.cancel(utc(2031, 2, 1, 8, 5), CancelReason::Expired, 0);
    app.publish_all(&trip.events).await;
    app.view(&Caller::Customer(customer), trip.id(), 2)
        .await
        .expect("v2");

    // Act
    let from_zero = app
        .watch_until_end(&Caller::Customer(customer), trip.id(), 0)
        .await;
    let from_last = app
        .watch_until_end(&Caller::Customer(customer), trip.id(), 2)
        .await;

    // Assert
    assert_eq!(statuses(&from_zero), [(2, CallStatus::Canceled as i32)]);
    assert!(from_last.is_empty(), "nothing is newer than the terminal view");
    app.cleanup().await;
}

#[tokio::test]
async fn watch_call_waits_briefly_for_a_call_whose_first_event_is_on_its_way() {
    // Arrange
    let app = spawn_app().await;
    let customer = Uuid::new_v4();
    let mut trip = Trip::request(customer, TaxiType::Normal, utc(2031, 2, 1, 8, 0));
    trip.cancel(utc(2031, 2, 1, 8, 1), CancelReason::Customer, 0);
    let who = Caller::Customer(customer);

    // Act
    let (watch, ()) = tokio::join!(app.watch(&who, trip.id(), 0), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.publish_all(&trip.events).await;
    });
    let views = collect_watch(watch.expect("the watch finds the call")).await;

    // Assert
    assert_eq!(views.last().map(|v| v.status), Some(CallStatus::Canceled as i32));
    app.cleanup().await;
}

#[tokio::test]
async fn stopping_the_service_ends_an_open_watch_with_unavailable_instead_of_holding_the_drain() {
    // Arrange
    let mut app = spawn_app().await;
    let customer = Uuid::new_v4();
    let trip = Trip::request(customer, TaxiType::Normal, utc(2031, 2, 1, 8, 0));
    app.publish(&trip.events[0]).await;
    app.view(&Caller::Customer(customer), trip.id(), 1)
        .await
        .expect("v1");
    let mut stream = app
        .watch(&Caller::Customer(customer), trip.id(), 0)
        .await
        .expect("watch");
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the first message within 10 s")
        .expect("first message")
        .expect("a view");
    assert_eq!(first.view.expect("view").version, 1);

    // Act
    let service = app.service.take().expect("running");
    let stopped = tokio::time::timeout(Duration::from_secs(5), service.stop()).await;
    let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an end within 10 s");

    // Assert
    stopped
        .expect("the drain does not wait for the watch")
        .expect("graceful stop");
    assert_eq!(next.expect_err("the watch ends").code(), tonic::Code::Unavailable);
    app.cleanup().await;
}
