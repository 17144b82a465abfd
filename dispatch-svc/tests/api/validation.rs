//! Malformed requests: INVALID_ARGUMENT naming every bad field, nothing written.

use taxi_proto::{
    common::v1::{LatLng, TaxiType},
    dispatch::v1::{
        AssignDriverRequest, CheckAvailabilityRequest, RegisterDriverRequest, ReleaseDriverRequest,
        UpdateLocationRequest,
    },
};
use uuid::Uuid;

use crate::helpers::{SEOUL_STATION, as_driver, as_service, bad_fields, spawn_app};

#[tokio::test]
async fn register_driver_with_bad_fields_names_each_and_stores_nothing() {
    // Arrange
    let app = spawn_app().await;
    let cases = [
        (
            RegisterDriverRequest {
                name: String::new(),
                license_plate: "12가3456".into(),
                taxi_type: TaxiType::Normal.into(),
            },
            vec!["name"],
        ),
        (
            RegisterDriverRequest {
                name: "K".repeat(101),
                license_plate: "X".repeat(21),
                taxi_type: TaxiType::Normal.into(),
            },
            vec!["name", "license_plate"],
        ),
        (
            RegisterDriverRequest {
                name: "Kim".into(),
                license_plate: " ".into(),
                taxi_type: TaxiType::Unspecified.into(),
            },
            vec!["license_plate", "taxi_type"],
        ),
        (
            RegisterDriverRequest {
                name: "Kim".into(),
                license_plate: "12가3456".into(),
                taxi_type: 42,
            },
            vec!["taxi_type"],
        ),
    ];

    for (request, expected) in cases {
        // Act
        let err = app
            .client
            .clone()
            .register_driver(as_driver(Uuid::new_v4(), request))
            .await
            .expect_err("invalid");

        // Assert
        assert_eq!(bad_fields(&err), expected);
    }
    assert_eq!(app.row_counts().await, (0, 0, 0));
}

#[tokio::test]
async fn update_location_out_of_range_names_the_coordinate_and_stores_nothing() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.register(TaxiType::Normal).await;
    let cases = [
        (None, vec!["location"]),
        (
            Some(LatLng {
                latitude: 90.5,
                longitude: 127.0,
            }),
            vec!["location.latitude"],
        ),
        (
            Some(LatLng {
                latitude: 37.5,
                longitude: f64::INFINITY,
            }),
            vec!["location.longitude"],
        ),
    ];

    for (location, expected) in cases {
        // Act
        let err = app
            .client
            .clone()
            .update_location(as_driver(driver_id, UpdateLocationRequest { location }))
            .await
            .expect_err("invalid");

        // Assert
        assert_eq!(bad_fields(&err), expected);
    }
    let stored: Option<f64> = sqlx::query_scalar("SELECT lat FROM drivers WHERE driver_id = $1")
        .bind(driver_id)
        .fetch_one(&app.db)
        .await
        .expect("stored");
    assert_eq!(stored, None);
}

#[tokio::test]
async fn check_availability_with_bad_pickup_taxi_type_and_radius_names_each() {
    // Arrange
    let app = spawn_app().await;
    let cases = [
        (
            CheckAvailabilityRequest {
                taxi_type: TaxiType::Unspecified.into(),
                pickup: None,
                radius_m: -5,
            },
            vec!["taxi_type", "pickup", "radius_m"],
        ),
        (
            CheckAvailabilityRequest {
                taxi_type: TaxiType::Normal.into(),
                pickup: Some(LatLng {
                    latitude: 37.5,
                    longitude: -181.0,
                }),
                radius_m: 50_001,
            },
            vec!["pickup.longitude", "radius_m"],
        ),
    ];

    for (request, expected) in cases {
        // Act
        let err = app
            .client
            .clone()
            .check_availability(as_service(request))
            .await
            .expect_err("invalid");

        // Assert
        assert_eq!(bad_fields(&err), expected);
    }
}

#[tokio::test]
async fn assign_driver_with_malformed_ids_names_each_and_assigns_nothing() {
    // Arrange
    let app = spawn_app().await;
    let driver_id = app.available_driver(TaxiType::Normal, SEOUL_STATION).await;
    let (_, _, outbox_before) = app.row_counts().await;
    let cases = [
        (
            AssignDriverRequest {
                call_id: String::new(),
                driver_id: "driver-7".into(),
                taxi_type: TaxiType::Unspecified.into(),
            },
            vec!["call_id", "driver_id", "taxi_type"],
        ),
        (
            AssignDriverRequest {
                call_id: "not-a-uuid".into(),
                driver_id: driver_id.to_string(),
                taxi_type: TaxiType::Normal.into(),
            },
            vec!["call_id"],
        ),
    ];

    for (request, expected) in cases {
        // Act
        let err = app
            .client
            .clone()
            .assign_driver(as_service(request))
            .await
            .expect_err("invalid");

        // Assert
        assert_eq!(bad_fields(&err), expected);
    }
    assert_eq!(app.row_counts().await, (1, 0, outbox_before));
    assert_eq!(app.stored_status(driver_id).await, "AVAILABLE");
}

#[tokio::test]
async fn release_driver_with_malformed_ids_names_each_and_leaves_no_tombstone() {
    // Arrange
    let app = spawn_app().await;
    let request = ReleaseDriverRequest {
        call_id: "call-1".into(),
        driver_id: String::new(),
    };

    // Act
    let err = app
        .client
        .clone()
        .release_driver(as_service(request))
        .await
        .expect_err("invalid");

    // Assert
    assert_eq!(bad_fields(&err), ["call_id", "driver_id"]);
    assert_eq!(app.row_counts().await, (0, 0, 0));
}
