//! Drivers' offers through the whole system: call-svc's events reach
//! dispatch-svc through the outbox relay and JetStream. Offers go out in
//! rounds, reach drivers who come near a waiting call, and gate AcceptCall.

use std::time::Duration;

use chrono::{DateTime, Utc};
use svc_kit::identity::Caller;
use system_tests::trip;
use taxi_proto::{
    call::v1::{AcceptCallRequest, Call, CallStatus},
    common::v1::{LatLng, TaxiType},
    dispatch::v1::{
        DriverStatus, Offer, RegisterDriverRequest, SetOnlineRequest, UpdateLocationRequest,
        WatchOffersRequest, WatchOffersResponse, watch_offers_response::Event,
    },
};
use tonic::{Code, Status, Streaming};
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

/// The point `km` kilometres north of `from`.
fn north_of(from: LatLng, km: f64) -> LatLng {
    LatLng {
        latitude: from.latitude + km / 111.2,
        longitude: from.longitude,
    }
}

async fn watch_offers(system: &TestSystem, driver: Uuid) -> Streaming<WatchOffersResponse> {
    system
        .dispatch_client()
        .watch_offers(as_driver(driver, WatchOffersRequest {}))
        .await
        .expect("watch")
        .into_inner()
}

fn offer_of(event: Event) -> Offer {
    match event {
        Event::Offer(offer) => offer,
        other => panic!("expected an offer, got {other:?}"),
    }
}

fn instant(at: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    svc_kit::clock::from_proto(at.expect("a time")).expect("an instant")
}

/// One AcceptCall, without waiting for an offer to arrive.
async fn accept_once(system: &TestSystem, driver: Uuid, call_id: &str) -> Result<Call, Status> {
    let request = AcceptCallRequest {
        call_id: call_id.into(),
    };
    let response = system
        .call_client()
        .accept_call(as_driver(driver, request))
        .await?;
    Ok(response.into_inner().call.expect("call"))
}

#[tokio::test]
async fn a_round_that_expires_unaccepted_goes_to_the_next_nearest_driver_farther_out_and_the_view_says_so() {
    // Arrange: rounds of 2 s; one driver at the pickup, one 4.5 km away
    // (beyond the first round's 3 km, within the second's 6 km).
    let mut config = test_call_config();
    config.saga.offer_round_ms = 2_000;
    let mut system = spawn_system_with(config).await;
    system.start_query().await;
    let near = system.online_driver().await;
    let far = system
        .online_driver_at(TaxiType::Normal, north_of(PICKUP, 4.5))
        .await;
    let mut near_offers = watch_offers(&system, near).await;
    let mut far_offers = watch_offers(&system, far).await;
    let customer = Uuid::new_v4();
    let call = system.request_call(customer).await;

    // Act: nobody accepts the first round.
    let first = offer_of(next_event(&mut near_offers).await);
    let second = offer_of(next_event(&mut far_offers).await);
    let expired = next_event(&mut near_offers).await;
    let too_late = accept_once(&system, near, &call.call_id).await;
    let view = trip::call_view(
        &system.query_client(),
        &Caller::Customer(customer),
        &call.call_id,
        2,
    )
    .await
    .expect("the customer's view of the second round");
    let taken = accept_once(&system, far, &call.call_id).await;

    // Assert
    assert_eq!(
        (call.offer_round, first.call_id.as_str()),
        (1, call.call_id.as_str())
    );
    assert_eq!(
        instant(first.expires_at.as_ref()),
        instant(call.round_expires_at.as_ref())
    );
    assert_eq!(
        second.call_id, call.call_id,
        "the next nearest driver gets the call"
    );
    assert!(instant(second.offered_at.as_ref()) >= instant(first.expires_at.as_ref()));
    assert_eq!(
        expired,
        Event::WithdrawnCallId(call.call_id.clone()),
        "the first offer expired"
    );
    let refused = too_late.expect_err("the first round's offer is gone");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("no live offer"), "{refused:?}");
    assert_eq!(view.status(), CallStatus::Requested);
    assert_eq!(view.offer_round, 2, "{view:?}");
    assert_eq!(
        instant(view.round_expires_at.as_ref()),
        instant(second.expires_at.as_ref())
    );
    assert_eq!(
        instant(view.expires_at.as_ref()) - instant(view.requested_at.as_ref()),
        chrono::TimeDelta::minutes(5),
        "when the call expires, as configured"
    );
    let taken = taken.expect("the driver holding the live offer accepts");
    assert_eq!(
        (taken.status(), taken.driver_id),
        (CallStatus::Accepted, far.to_string())
    );
}

#[tokio::test]
async fn a_driver_who_comes_online_or_moves_near_a_waiting_call_is_offered_it_at_once() {
    // Arrange: a call waits in its first round (30 s); one driver stands at
    // the pickup offline, another is online 20 km away.
    let system = spawn_system().await;
    system.online_driver().await;
    let call = system.request_call(Uuid::new_v4()).await;
    let arriving = Uuid::new_v4();
    let register = RegisterDriverRequest {
        name: "Park Gisa".into(),
        license_plate: "34나5678".into(),
        taxi_type: TaxiType::Normal.into(),
    };
    system
        .dispatch_client()
        .register_driver(as_driver(arriving, register))
        .await
        .expect("registered");
    let at_pickup = UpdateLocationRequest {
        location: Some(PICKUP),
    };
    system
        .dispatch_client()
        .update_location(as_driver(arriving, at_pickup))
        .await
        .expect("at the pickup, still offline");
    let mover = system
        .online_driver_at(TaxiType::Normal, north_of(PICKUP, 20.0))
        .await;
    let mut arriving_offers = watch_offers(&system, arriving).await;
    let mut mover_offers = watch_offers(&system, mover).await;

    // Act
    system
        .dispatch_client()
        .set_online(as_driver(arriving, SetOnlineRequest {}))
        .await
        .expect("online");
    let location = UpdateLocationRequest {
        location: Some(north_of(PICKUP, 1.0)),
    };
    system
        .dispatch_client()
        .update_location(as_driver(mover, location))
        .await
        .expect("moved");
    let to_arriving = offer_of(next_event(&mut arriving_offers).await);
    let to_mover = offer_of(next_event(&mut mover_offers).await);
    let taken = accept_once(&system, mover, &call.call_id).await;

    // Assert: both offered the call until the round ends; either may take it.
    for offer in [&to_arriving, &to_mover] {
        assert_eq!(offer.call_id, call.call_id);
        assert_eq!(
            instant(offer.expires_at.as_ref()),
            instant(call.round_expires_at.as_ref())
        );
    }
    assert!(
        (950..=1_050).contains(&to_mover.distance_to_pickup_m),
        "{to_mover:?}"
    );
    let taken = taken.expect("the driver who moved near accepts");
    assert_eq!(taken.driver_id, mover.to_string());
}

#[tokio::test]
async fn a_driver_never_offered_the_call_cannot_accept_it_and_nothing_is_assigned_or_charged() {
    // Arrange: one driver at the pickup (offered the call), one 20 km away (not).
    let system = spawn_system().await;
    let offered = system.online_driver().await;
    let stranger = system
        .online_driver_at(TaxiType::Normal, north_of(PICKUP, 20.0))
        .await;
    let mut offers = watch_offers(&system, offered).await;
    let call = system.request_call(Uuid::new_v4()).await;
    offer_of(next_event(&mut offers).await);

    // Act
    let refused = accept_once(&system, stranger, &call.call_id).await;
    let accepted = accept_once(&system, offered, &call.call_id).await;

    // Assert
    let refused = refused.expect_err("no offer, no accept");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("no live offer"), "{refused:?}");
    assert_eq!(system.driver(stranger).await.status(), DriverStatus::Available);
    let accepted = accepted.expect("the offered driver still accepts");
    assert_eq!(accepted.driver_id, offered.to_string());
    assert_eq!(system.ledger(&call.call_id).await.entries.len(), 1, "one advance");
}
