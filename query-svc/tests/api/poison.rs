//! Events that can never be projected go to the dead-letter stream and do
//! not hold up the events behind them.

use async_nats::jetstream;
use futures::StreamExt as _;
use svc_kit::identity::Caller;
use taxi_proto::{
    call::v1::CallStatus,
    events::v1::{CallRequested, event_envelope::Payload},
};
use uuid::Uuid;

use crate::helpers::{Trip, spawn_app, utc};

#[tokio::test]
async fn garbage_on_the_stream_is_dead_lettered_and_the_next_trip_still_projects() {
    // Arrange
    let app = spawn_app().await;
    let customer = Uuid::new_v4();
    let trip = Trip::completed_at(customer, utc(2031, 4, 1, 7, 0));
    let subject = app
        .config
        .nats
        .subjects()
        .event("call.requested", &Uuid::new_v4().to_string());

    // Act
    app.publish_raw(subject.clone(), vec![0xff, 0xff, 0xff, 0x07])
        .await;
    app.publish_all(&trip.events).await;
    app.caught_up().await;

    // Assert
    let view = app
        .view(&Caller::Customer(customer), trip.id(), 4)
        .await
        .expect("projected");
    assert_eq!(view.status, CallStatus::Completed as i32);
    assert_eq!(app.dead_letters().await, 1);
    let dlq = app
        .js
        .get_stream(app.config.nats.subjects().dead_letter_stream())
        .await
        .expect("dead-letter stream");
    let letter = dlq
        .get_last_raw_message_by_subject(
            &app.config
                .nats
                .subjects()
                .dead_letter(query_svc::PROJECTOR_DURABLE),
        )
        .await
        .expect("the projector's dead letter");
    let headers = letter.headers;
    assert_eq!(
        headers
            .get(eventbus::consumer::DEAD_LETTER_SUBJECT)
            .map(|v| v.as_str()),
        Some(subject.as_str())
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_call_event_without_its_snapshot_is_dead_lettered_with_the_reason() {
    // Arrange
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    let event = outbox::envelope(
        id,
        1,
        utc(2031, 4, 1, 7, 0),
        Payload::CallRequested(CallRequested { call: None }),
    );

    // Act
    app.publish(&event).await;
    app.caught_up().await;

    // Assert
    assert_eq!(app.dead_letters().await, 1);
    let consumer: jetstream::consumer::PullConsumer = app
        .js
        .get_stream(app.config.nats.subjects().dead_letter_stream())
        .await
        .expect("dead-letter stream")
        .create_consumer(jetstream::consumer::pull::Config::default())
        .await
        .expect("reader");
    let mut letters = consumer.fetch().max_messages(1).messages().await.expect("fetch");
    let letter = letters.next().await.expect("one letter").expect("letter");
    let reason = letter
        .headers
        .as_ref()
        .and_then(|h| h.get(eventbus::consumer::DEAD_LETTER_REASON))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    assert!(reason.contains("snapshot"), "{reason}");
    app.cleanup().await;
}
