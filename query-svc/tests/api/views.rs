//! GetCallView and ListMyCalls over projected trips.

use std::time::Duration;

use query_svc::Config;
use svc_kit::identity::Caller;
use taxi_proto::call::v1::{CallStatus, CancelReason};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{Trip, spawn_app, spawn_app_with, test_config, utc};

#[tokio::test]
async fn get_call_view_shows_each_status_of_a_trip_as_its_events_arrive() {
    // Arrange
    let app = spawn_app().await;
    let customer = Uuid::new_v4();
    let trip = Trip::completed_at(customer, utc(2031, 1, 10, 9, 0));
    let expected = [
        CallStatus::Requested,
        CallStatus::Accepted,
        CallStatus::InTrip,
        CallStatus::Completed,
    ];

    for (event, status) in trip.events.iter().zip(expected) {
        // Act
        app.publish(event).await;
        let view = app
            .view(&Caller::Customer(customer), trip.id(), event.aggregate_version)
            .await
            .expect("view");

        // Assert
        assert_eq!(view.status, status as i32);
        assert_eq!(view.version, event.aggregate_version);
    }
    let last = app
        .view(&Caller::Customer(customer), trip.id(), 0)
        .await
        .expect("view");
    assert_eq!(last.final_fare_krw, 17_000);
    assert_eq!(last.driver_id, trip.call.driver_id);
    assert_eq!(last.customer_id, customer.to_string());
    assert!(last.completed_at.is_some());
    app.cleanup().await;
}

#[tokio::test]
async fn get_call_view_with_min_version_waits_for_a_version_published_shortly_after() {
    // Arrange
    let app = spawn_app().await;
    let customer = Uuid::new_v4();
    let mut trip = Trip::request(
        customer,
        taxi_proto::common::v1::TaxiType::Van,
        utc(2031, 1, 10, 9, 0),
    );
    app.publish(&trip.events[0]).await;
    app.view(&Caller::Customer(customer), trip.id(), 1)
        .await
        .expect("v1");
    trip.cancel(utc(2031, 1, 10, 9, 1), CancelReason::Customer, 0);
    let late = trip.events[1].clone();
    let publisher = {
        let js = app.js.clone();
        let subject = app
            .config
            .nats
            .subjects()
            .event("call.canceled", &late.aggregate_id);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let payload = prost::Message::encode_to_vec(&late);
            js.publish(subject, payload.into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        })
    };

    // Act
    let view = app.view(&Caller::Customer(customer), trip.id(), 2).await;

    // Assert
    let view = view.expect("the wait sees version 2");
    assert_eq!(view.version, 2);
    assert_eq!(view.status, CallStatus::Canceled as i32);
    assert_eq!(view.cancel_reason, CancelReason::Customer as i32);
    publisher.await.expect("publisher");
    app.cleanup().await;
}

#[tokio::test]
async fn get_call_view_with_min_version_is_deadline_exceeded_when_the_version_never_comes() {
    // Arrange
    let app = spawn_app_with(Config {
        read_your_writes_timeout_ms: 1_000,
        ..test_config()
    })
    .await;
    let customer = Uuid::new_v4();
    let trip = Trip::request(
        customer,
        taxi_proto::common::v1::TaxiType::Normal,
        utc(2031, 1, 10, 9, 0),
    );
    app.publish(&trip.events[0]).await;
    app.view(&Caller::Customer(customer), trip.id(), 1)
        .await
        .expect("v1");

    // Act
    let started = std::time::Instant::now();
    let err = app
        .view(&Caller::Customer(customer), trip.id(), 2)
        .await
        .expect_err("version 2 never comes");

    // Assert
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited the configured second"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn get_call_view_is_not_found_for_a_call_without_events() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let err = app
        .view(&Caller::Customer(Uuid::new_v4()), &Uuid::new_v4().to_string(), 0)
        .await
        .expect_err("no such call");

    // Assert
    assert_eq!(err.code(), Code::NotFound);
    app.cleanup().await;
}

#[tokio::test]
async fn list_my_calls_pages_newest_first_and_the_last_page_has_no_token() {
    // Arrange
    let app = spawn_app().await;
    let (customer, other) = (Uuid::new_v4(), Uuid::new_v4());
    let trips: Vec<Trip> = (0..5)
        .map(|i| Trip::completed_at(customer, utc(2031, 1, 10, 9 + i, 0)))
        .collect();
    let others = Trip::completed_at(other, utc(2031, 1, 10, 12, 30));
    for trip in trips.iter().chain([&others]) {
        app.publish_all(&trip.events).await;
    }
    app.caught_up().await;

    // Act
    let pages = app.all_my_calls(customer, 2).await;
    let single = app.all_my_calls(customer, 0).await;

    // Assert
    let ids: Vec<Vec<&str>> = pages
        .iter()
        .map(|page| page.iter().map(|v| v.call_id.as_str()).collect())
        .collect();
    let newest_first: Vec<&str> = trips.iter().rev().map(Trip::id).collect();
    assert_eq!(
        ids,
        [&newest_first[0..2], &newest_first[2..4], &newest_first[4..5]]
    );
    assert_eq!(single.len(), 1, "the default page size holds all five");
    assert_eq!(single[0].len(), 5);
    assert!(single[0].iter().all(|v| v.status == CallStatus::Completed as i32));
    let exact = app.all_my_calls(customer, 5).await;
    assert_eq!(
        exact.len(),
        1,
        "a page that ends exactly at the last call has no token"
    );
    app.cleanup().await;
}
