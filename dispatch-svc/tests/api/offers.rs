//! Offers: call events in, WatchOffers streams out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dispatch_svc::events::notify::offers_subject;
use futures::StreamExt as _;
use prost::Message as _;
use taxi_proto::{
    common::v1::TaxiType,
    dispatch::v1::{WatchOffersResponse, watch_offers_response::Event},
    events::v1::{CallRequested, event_envelope::Payload},
};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{
    GANGNAM, SEOUL_STATION, assert_quiet, call_accepted, call_canceled, call_requested, eventually, lat_lng,
    next_event, north_of, offer_of, spawn_app, spawn_app_with, withdrawal,
};

fn instant(timestamp: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    svc_kit::clock::from_proto(timestamp.expect("a timestamp")).expect("an instant")
}

/// `events` in a fixed order, to compare where the order does not matter.
fn in_any_order<T: std::fmt::Debug>(mut events: Vec<T>) -> Vec<T> {
    events.sort_by_key(|event| format!("{event:?}"));
    events
}

#[tokio::test]
async fn a_requested_call_is_offered_live_to_the_nearest_available_drivers_of_its_taxi_type() {
    // Arrange
    let app = spawn_app_with(|config| config.offer_fanout = 2).await;
    let nearest = app
        .available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 0.2))
        .await;
    let second = app
        .available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 0.5))
        .await;
    let beyond_fanout = app
        .available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 1.0))
        .await;
    app.available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 5.0))
        .await;
    app.available_driver(TaxiType::Premium, north_of(SEOUL_STATION, 0.1))
        .await;
    let offline = app.register(TaxiType::Normal).await;
    app.move_to(offline, north_of(SEOUL_STATION, 0.1)).await;
    let on_call = app
        .available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 0.1))
        .await;
    app.assign(Uuid::new_v4(), on_call, TaxiType::Normal)
        .await
        .expect("assigned to another call");
    let mut nearest_stream = app.watch(nearest).await;
    let mut second_stream = app.watch(second).await;
    let mut beyond_stream = app.watch(beyond_fanout).await;
    let call_id = Uuid::new_v4();

    // Act
    app.publish_call_event(
        call_id,
        1,
        call_requested(call_id, TaxiType::Normal, SEOUL_STATION),
    )
    .await;

    // Assert
    let to_nearest = next_event(&mut nearest_stream).await;
    let to_second = next_event(&mut second_stream).await;
    let offer = offer_of(&to_nearest);
    assert_eq!(offer.call_id, call_id.to_string());
    assert_eq!(offer.taxi_type, i32::from(TaxiType::Normal));
    assert_eq!(offer.pickup, lat_lng(SEOUL_STATION));
    assert_eq!(offer.dropoff, lat_lng(GANGNAM));
    assert_eq!(offer.quoted_fare_krw, 12_800);
    assert!((190..=210).contains(&offer.distance_to_pickup_m), "{offer:?}");
    let open_for = instant(offer.expires_at.as_ref()) - instant(offer.offered_at.as_ref());
    assert_eq!(open_for.num_milliseconds(), 30_000);
    assert_eq!(offer_of(&to_second).call_id, call_id.to_string());
    assert!((490..=510).contains(&offer_of(&to_second).distance_to_pickup_m));
    assert_eq!(app.offered_drivers(call_id).await, [nearest, second]);
    assert_quiet(&mut beyond_stream, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_driver_who_starts_watching_after_the_offer_was_made_gets_it_first() {
    // Arrange
    let app = spawn_app().await;
    let driver = app.available_driver(TaxiType::Van, SEOUL_STATION).await;
    let call_id = Uuid::new_v4();
    app.publish_call_event(call_id, 1, call_requested(call_id, TaxiType::Van, SEOUL_STATION))
        .await;
    eventually("the offer to be stored", || async {
        !app.offered_drivers(call_id).await.is_empty()
    })
    .await;

    // Act
    let mut stream = app.watch(driver).await;

    // Assert
    let first = next_event(&mut stream).await;
    assert_eq!(offer_of(&first).call_id, call_id.to_string());
    assert_eq!(offer_of(&first).taxi_type, i32::from(TaxiType::Van));
    assert_quiet(&mut stream, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn accepting_or_canceling_a_call_withdraws_its_offer_from_every_watching_driver() {
    // Arrange
    let app = spawn_app().await;
    let kim = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let lee = app
        .available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 1.0))
        .await;
    let mut kim_stream = app.watch(kim).await;
    let mut lee_stream = app.watch(lee).await;
    let (accepted, canceled) = (Uuid::new_v4(), Uuid::new_v4());
    for call_id in [accepted, canceled] {
        app.publish_call_event(
            call_id,
            1,
            call_requested(call_id, TaxiType::Normal, SEOUL_STATION),
        )
        .await;
        for stream in [&mut kim_stream, &mut lee_stream] {
            assert_eq!(offer_of(&next_event(stream).await).call_id, call_id.to_string());
        }
    }

    // Act
    app.publish_call_event(accepted, 2, call_accepted(accepted, kim))
        .await;
    app.publish_call_event(canceled, 2, call_canceled(canceled)).await;

    // Assert: both withdrawals, in either order (a redelivered event or a
    // resync may reorder them).
    for stream in [&mut kim_stream, &mut lee_stream] {
        let withdrawals = vec![next_event(stream).await, next_event(stream).await];
        assert_eq!(
            in_any_order(withdrawals),
            in_any_order(vec![withdrawal(accepted), withdrawal(canceled)])
        );
    }
    assert!(app.offered_drivers(accepted).await.is_empty());
    assert!(app.offered_drivers(canceled).await.is_empty());
}

#[tokio::test]
async fn the_driver_who_took_a_call_loses_their_offers_of_other_calls() {
    // Arrange
    let app = spawn_app().await;
    let kim = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let lee = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let mut kim_stream = app.watch(kim).await;
    let mut lee_stream = app.watch(lee).await;
    let (taken, other) = (Uuid::new_v4(), Uuid::new_v4());
    for call_id in [taken, other] {
        app.publish_call_event(
            call_id,
            1,
            call_requested(call_id, TaxiType::Normal, SEOUL_STATION),
        )
        .await;
        for stream in [&mut kim_stream, &mut lee_stream] {
            assert_eq!(offer_of(&next_event(stream).await).call_id, call_id.to_string());
        }
    }
    app.assign(taken, kim, TaxiType::Normal)
        .await
        .expect("kim wins the call");

    // Act
    app.publish_call_event(taken, 2, call_accepted(taken, kim)).await;

    // Assert
    let kim_withdrawals = vec![
        next_event(&mut kim_stream).await,
        next_event(&mut kim_stream).await,
    ];
    assert_eq!(
        in_any_order(kim_withdrawals),
        in_any_order(vec![withdrawal(taken), withdrawal(other)])
    );
    assert_eq!(next_event(&mut lee_stream).await, withdrawal(taken));
    assert_quiet(&mut lee_stream, Duration::from_millis(300)).await;
    assert_eq!(app.offered_drivers(other).await, [lee]);
}

#[tokio::test]
async fn an_offer_is_withdrawn_from_the_stream_when_it_expires_and_then_deleted() {
    // Arrange
    let app = spawn_app_with(|config| {
        config.offer_ttl_ms = 3_000;
        config.offer_cleanup_interval_ms = 200;
    })
    .await;
    let driver = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let mut stream = app.watch(driver).await;
    let call_id = Uuid::new_v4();
    app.publish_call_event(
        call_id,
        1,
        call_requested(call_id, TaxiType::Normal, SEOUL_STATION),
    )
    .await;
    let offered = next_event(&mut stream).await;
    let expires_at = instant(offer_of(&offered).expires_at.as_ref());

    // Act
    let withdrawn = next_event(&mut stream).await;
    let withdrawn_at = Utc::now();

    // Assert
    assert_eq!(withdrawn, withdrawal(call_id));
    let late = withdrawn_at - expires_at;
    assert!(
        (0..5_000).contains(&late.num_milliseconds()),
        "withdrawn at expiry (well before the 10 s resync), not {late:?} after"
    );
    eventually("the expired offer to be deleted", || async {
        app.offered_drivers(call_id).await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_redelivered_call_request_makes_one_offer_and_one_notification() {
    // Arrange
    let app = spawn_app().await;
    let driver = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let client = app.js.client();
    let mut notifications = client
        .subscribe(offers_subject(&app.config.nats.prefix, driver))
        .await
        .expect("subscribed");
    client.flush().await.expect("subscription registered");
    let (call_id, later_call) = (Uuid::new_v4(), Uuid::new_v4());
    let event = outbox::envelope(
        call_id,
        1,
        svc_kit::clock::now(),
        call_requested(call_id, TaxiType::Normal, SEOUL_STATION),
    );
    let subject = app
        .config
        .nats
        .subjects()
        .event("call.requested", &call_id.to_string());

    // Act
    app.publish_raw(subject.clone(), event.encode_to_vec()).await;
    app.publish_raw(subject, event.encode_to_vec()).await;
    // Events are handled in order: once the later call is offered, so was the duplicate.
    app.publish_call_event(
        later_call,
        1,
        call_requested(later_call, TaxiType::Normal, SEOUL_STATION),
    )
    .await;

    // Assert
    let mut offered = Vec::new();
    while !offered.contains(&later_call.to_string()) {
        let message = tokio::time::timeout(Duration::from_secs(10), notifications.next())
            .await
            .expect("a notification in time")
            .expect("subscribed");
        let notice = WatchOffersResponse::decode(message.payload).expect("a notification");
        let Some(Event::Offer(offer)) = notice.event else {
            panic!("expected an offer, got {notice:?}");
        };
        offered.push(offer.call_id);
    }
    assert_eq!(offered, [call_id.to_string(), later_call.to_string()]);
    assert_eq!(app.offered_drivers(call_id).await, [driver]);
}

#[tokio::test]
async fn a_call_request_handled_after_the_call_closed_offers_nothing() {
    // Arrange
    let app = spawn_app().await;
    let driver = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let mut stream = app.watch(driver).await;
    let (canceled, accepted, open) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    app.publish_call_event(canceled, 2, call_canceled(canceled)).await;
    app.publish_call_event(accepted, 2, call_accepted(accepted, Uuid::new_v4()))
        .await;

    // Act
    for call_id in [canceled, accepted, open] {
        app.publish_call_event(
            call_id,
            1,
            call_requested(call_id, TaxiType::Normal, SEOUL_STATION),
        )
        .await;
    }

    // Assert
    let only = next_event(&mut stream).await;
    assert_eq!(offer_of(&only).call_id, open.to_string());
    assert!(app.offered_drivers(canceled).await.is_empty());
    assert!(app.offered_drivers(accepted).await.is_empty());
}

#[tokio::test]
async fn a_call_requested_while_dispatch_is_stopped_is_offered_after_it_restarts() {
    // Arrange
    let mut app = spawn_app_with(|config| {
        // A pull the stopped instance left pending may take a message with
        // it; the server hands it out again after this long.
        config.offers_consumer.ack_wait_ms = 1_000;
    })
    .await;
    let driver = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let mut before_stop = app.watch(driver).await;
    app.stop().await;
    let call_id = Uuid::new_v4();

    // Act
    app.publish_call_event(
        call_id,
        1,
        call_requested(call_id, TaxiType::Normal, SEOUL_STATION),
    )
    .await;
    app.restart().await;
    let mut stream = app.watch(driver).await;

    // Assert
    let ended = tokio::time::timeout(Duration::from_secs(5), before_stop.message())
        .await
        .expect("the old stream ended");
    assert_eq!(ended.expect_err("ended by shutdown").code(), Code::Unavailable);
    let offered = next_event(&mut stream).await;
    assert_eq!(offer_of(&offered).call_id, call_id.to_string());
}

#[tokio::test]
async fn a_malformed_call_request_is_dead_lettered_and_does_not_hold_up_the_next() {
    // Arrange
    let app = spawn_app().await;
    let driver = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let mut stream = app.watch(driver).await;
    let (malformed, fine) = (Uuid::new_v4(), Uuid::new_v4());

    // Act
    app.publish_call_event(malformed, 1, Payload::CallRequested(CallRequested { call: None }))
        .await;
    app.publish_call_event(fine, 1, call_requested(fine, TaxiType::Normal, SEOUL_STATION))
        .await;

    // Assert
    let offered = next_event(&mut stream).await;
    assert_eq!(offer_of(&offered).call_id, fine.to_string());
    let mut dead_letters = app
        .js
        .get_stream(app.config.nats.subjects().dead_letter_stream())
        .await
        .expect("the dead-letter stream exists");
    let info = dead_letters.info().await.expect("stream info");
    assert_eq!(info.state.messages, 1);
}

#[tokio::test]
async fn a_call_request_the_store_refuses_for_good_is_dead_lettered_at_once_not_retried() {
    // Arrange: the offers table refuses vans (a constraint no retry can meet).
    let app = spawn_app().await;
    sqlx::query("ALTER TABLE offers ADD CONSTRAINT no_vans CHECK (taxi_type <> 'TAXI_TYPE_VAN')")
        .execute(&app.db)
        .await
        .expect("constraint added");
    // A van the refused offer would go to.
    app.available_driver(TaxiType::Van, SEOUL_STATION).await;
    let normal = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let mut stream = app.watch(normal).await;
    let (refused, fine) = (Uuid::new_v4(), Uuid::new_v4());

    // Act
    app.publish_call_event(refused, 1, call_requested(refused, TaxiType::Van, SEOUL_STATION))
        .await;
    app.publish_call_event(fine, 1, call_requested(fine, TaxiType::Normal, SEOUL_STATION))
        .await;

    // Assert: the next call is offered, and the refused one is a dead letter
    // already (a retry would keep it for the consumer's whole retry budget).
    let offered = next_event(&mut stream).await;
    assert_eq!(offer_of(&offered).call_id, fine.to_string());
    eventually("the refused request is dead-lettered", || async {
        let mut dead_letters = app
            .js
            .get_stream(app.config.nats.subjects().dead_letter_stream())
            .await
            .expect("the dead-letter stream exists");
        dead_letters.info().await.expect("stream info").state.messages == 1
    })
    .await;
    assert!(app.offered_drivers(refused).await.is_empty());
}
