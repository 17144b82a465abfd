//! Exactly once in effect: duplicates and out-of-order delivery end in the
//! same read models as one in-order delivery.

use uuid::Uuid;

use crate::helpers::{mixed_day, spawn_app, utc};

#[tokio::test]
async fn every_event_delivered_twice_ends_in_the_same_views_and_totals_as_once() {
    // Arrange
    let (once, twice) = (spawn_app().await, spawn_app().await);
    let (trips, events) = mixed_day([Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()]);

    // Act
    once.publish_all(&events).await;
    for event in &events {
        twice.publish(event).await;
        twice.publish(event).await;
    }
    once.caught_up().await;
    twice.caught_up().await;

    // Assert
    let (from, to) = (utc(2031, 3, 4, 0, 0), utc(2031, 3, 6, 0, 0));
    let expected = once.read_model(&trips, from, to).await;
    assert_eq!(twice.read_model(&trips, from, to).await, expected);
    assert_eq!(expected.dashboard.totals.expect("totals").requested, 6);
    once.cleanup().await;
    twice.cleanup().await;
}

#[tokio::test]
async fn events_of_several_trips_in_shuffled_order_end_in_the_same_views_and_totals_as_in_order() {
    // Arrange
    let (in_order, shuffled) = (spawn_app().await, spawn_app().await);
    let (trips, events) = mixed_day([Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()]);
    // Newest first (every trip's last transition before its first), then a
    // repeat of the first half: late and duplicated at once.
    let mut reordered: Vec<_> = events.iter().rev().cloned().collect();
    reordered.extend(events[..events.len() / 2].iter().cloned());

    // Act
    in_order.publish_all(&events).await;
    shuffled.publish_all(&reordered).await;
    in_order.caught_up().await;
    shuffled.caught_up().await;

    // Assert
    let (from, to) = (utc(2031, 3, 4, 0, 0), utc(2031, 3, 6, 0, 0));
    let expected = in_order.read_model(&trips, from, to).await;
    let actual = shuffled.read_model(&trips, from, to).await;
    assert_eq!(actual.views, expected.views, "no view was rolled back");
    assert_eq!(actual.lists, expected.lists);
    assert_eq!(actual.dashboard, expected.dashboard, "every event counted once");
    in_order.cleanup().await;
    shuffled.cleanup().await;
}
