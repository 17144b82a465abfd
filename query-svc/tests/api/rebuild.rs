//! Rebuilding the read models from the event stream.

use svc_kit::identity::Caller;
use taxi_proto::{
    call::v1::{CallStatus, CancelReason},
    common::v1::TaxiType,
};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{Trip, analyst, mixed_day, spawn_app, utc};

#[tokio::test]
async fn rebuild_after_redis_was_emptied_restores_identical_views_lists_and_dashboard() {
    // Arrange
    let app = spawn_app().await;
    let (trips, events) = mixed_day([Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()]);
    app.publish_all(&events).await;
    app.caught_up().await;
    let (from, to) = (utc(2031, 3, 4, 0, 0), utc(2031, 3, 6, 0, 0));
    let before = app.read_model(&trips, from, to).await;
    app.delete_keys().await;
    let gone = app.view(&analyst(), trips[0].id(), 0).await.expect_err("emptied");
    assert_eq!(gone.code(), Code::NotFound);

    // Act
    let report = query_svc::rebuild(app.config.clone()).await.expect("rebuild");

    // Assert
    assert_eq!(report.replayed, events.len() as u64);
    assert_eq!(report.applied, events.len() as u64);
    assert_eq!(report.uninterpretable, 0);
    assert_eq!(app.read_model(&trips, from, to).await, before);
    app.cleanup().await;
}

#[tokio::test]
async fn rebuild_while_serving_switches_generation_drops_the_old_one_and_keeps_projecting() {
    // Arrange
    let app = spawn_app().await;
    let customer = Uuid::new_v4();
    let (trips, events) = mixed_day([customer, Uuid::new_v4(), Uuid::new_v4()]);
    app.publish_all(&events).await;
    app.caught_up().await;
    let (from, to) = (utc(2031, 3, 4, 0, 0), utc(2031, 3, 6, 0, 0));
    let before = app.read_model(&trips, from, to).await;

    // Act
    let report = query_svc::rebuild(app.config.clone()).await.expect("rebuild");
    let after = app.read_model(&trips, from, to).await;
    let mut later = Trip::request(customer, TaxiType::Normal, utc(2031, 3, 5, 9, 0));
    later.cancel(utc(2031, 3, 5, 9, 1), CancelReason::Customer, 0);
    app.publish_all(&later.events).await;

    // Assert
    assert_eq!(report.previous_generation.as_deref(), Some("g1"));
    assert!(report.keys_deleted > 0);
    assert!(app.keys("g1:*").await.is_empty(), "the old generation is gone");
    assert!(!app.keys(&format!("{}:*", report.generation)).await.is_empty());
    assert!(after == before, "the same read models after the rebuild");
    let view = app
        .view(&Caller::Customer(customer), later.id(), 2)
        .await
        .expect("the live projector writes the new generation");
    assert_eq!(view.status, CallStatus::Canceled as i32);
    app.cleanup().await;
}
