//! Drivers' offers through the whole system: call-svc's events reach
//! dispatch-svc through the outbox relay and JetStream.

use std::time::Duration;

use taxi_proto::dispatch::v1::{WatchOffersRequest, WatchOffersResponse, watch_offers_response::Event};
use tonic::Streaming;
use uuid::Uuid;

use crate::helpers::*;

async fn next_event(offers: &mut Streaming<WatchOffersResponse>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), offers.message())
        .await
        .expect("an offer event within 10 s")
        .expect("stream")
        .expect("stream open")
        .event
        .expect("event")
}

#[tokio::test]
async fn a_call_requested_while_dispatch_was_down_is_offered_once_it_is_back_and_withdrawn_on_accept() {
    // Arrange: a driver waits at the pickup; dispatch-svc goes down.
    let mut system = spawn_system().await;
    let driver = system.online_driver().await;
    system.stop_dispatch().await;
    let call = system.request_call(Uuid::new_v4()).await;
    assert!(call.availability_unchecked, "accepted without dispatch");

    // Act: dispatch-svc comes back (call-svc is restarted to reach its new address).
    system.start_dispatch().await;
    let request = as_driver(driver, WatchOffersRequest {});
    let mut offers = system
        .dispatch_client()
        .watch_offers(request)
        .await
        .expect("watch")
        .into_inner();
    let offered = next_event(&mut offers).await;
    system.stop_call().await;
    system.start_call().await;
    accept(&system.call_client(), driver, &call.call_id)
        .await
        .expect("the driver accepts the offer");
    let withdrawn = next_event(&mut offers).await;

    // Assert
    let Event::Offer(offer) = offered else {
        panic!("expected an offer, got {offered:?}");
    };
    assert_eq!(offer.call_id, call.call_id);
    assert_eq!(offer.quoted_fare_krw, call.quoted_fare_krw);
    assert_eq!(
        withdrawn,
        Event::WithdrawnCallId(call.call_id.clone()),
        "taken calls leave every driver's list"
    );
}
