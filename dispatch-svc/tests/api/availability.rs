//! CheckAvailability: who counts as an available driver near a pickup.

use taxi_proto::{common::v1::TaxiType, dispatch::v1::SetOfflineRequest};
use uuid::Uuid;

use crate::helpers::{GANGNAM, SEOUL_STATION, as_driver, north_of, spawn_app};

#[tokio::test]
async fn check_availability_counts_available_drivers_of_the_taxi_type_within_the_radius() {
    // Arrange
    let app = spawn_app().await;
    app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    app.available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 1.0))
        .await;
    app.available_driver(TaxiType::Premium, SEOUL_STATION).await;
    app.available_driver(TaxiType::Normal, GANGNAM).await;

    // Act
    let normal_nearby = app.available_count(TaxiType::Normal, SEOUL_STATION, 2_000).await;
    let premium_nearby = app.available_count(TaxiType::Premium, SEOUL_STATION, 2_000).await;
    let vans_nearby = app.available_count(TaxiType::Van, SEOUL_STATION, 2_000).await;
    let normal_within_10_km = app.available_count(TaxiType::Normal, SEOUL_STATION, 10_000).await;

    // Assert
    assert_eq!(normal_nearby, 2);
    assert_eq!(premium_nearby, 1);
    assert_eq!(vans_nearby, 0);
    assert_eq!(normal_within_10_km, 3);
}

#[tokio::test]
async fn the_radius_is_measured_as_a_great_circle_distance() {
    // Arrange
    let app = spawn_app().await;
    app.available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 1.95))
        .await;
    app.available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 2.05))
        .await;

    // Act
    let within_2_km = app.available_count(TaxiType::Normal, SEOUL_STATION, 2_000).await;

    // Assert
    assert_eq!(within_2_km, 1);
}

#[tokio::test]
async fn a_zero_radius_uses_the_configured_default_of_three_km() {
    // Arrange
    let app = spawn_app().await;
    app.available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 2.5))
        .await;
    app.available_driver(TaxiType::Normal, north_of(SEOUL_STATION, 3.5))
        .await;

    // Act
    let default_radius = app.available_count(TaxiType::Normal, SEOUL_STATION, 0).await;
    let one_km = app.available_count(TaxiType::Normal, SEOUL_STATION, 1_000).await;

    // Assert
    assert_eq!(default_radius, 1);
    assert_eq!(one_km, 0);
}

#[tokio::test]
async fn offline_on_call_and_unlocated_drivers_are_not_available() {
    // Arrange
    let app = spawn_app().await;
    let gone_offline = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    app.client
        .clone()
        .set_offline(as_driver(gone_offline, SetOfflineRequest {}))
        .await
        .expect("goes offline");
    let never_online = app.register(TaxiType::Normal).await;
    app.move_to(never_online, SEOUL_STATION).await;
    let on_call = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    app.assign(Uuid::new_v4(), on_call, TaxiType::Normal)
        .await
        .expect("assigned");
    let unlocated = app.register(TaxiType::Normal).await;
    app.set_online(unlocated).await;

    // Act
    let count = app.available_count(TaxiType::Normal, SEOUL_STATION, 5_000).await;

    // Assert
    assert_eq!(count, 0);
}

#[tokio::test]
async fn drivers_with_a_stale_location_are_not_available() {
    // Arrange
    let app = spawn_app().await;
    let stale = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    sqlx::query(
        "UPDATE drivers SET location_updated_at = now() - interval '11 minutes' WHERE driver_id = $1",
    )
    .bind(stale)
    .execute(&app.db)
    .await
    .expect("location aged");

    // Act
    let count = app.available_count(TaxiType::Normal, SEOUL_STATION, 1_000).await;

    // Assert
    assert_eq!(count, 1);
}
