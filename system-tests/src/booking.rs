//! The trip every test books: from Seoul Station to Gangnam Station in a
//! normal taxi.

use taxi_proto::{
    call::v1::RequestCallRequest,
    common::v1::{LatLng, TaxiType},
};
use uuid::Uuid;

/// Seoul Station: where customers are picked up.
pub const PICKUP: LatLng = LatLng {
    latitude: 37.5547,
    longitude: 126.9707,
};

/// Gangnam Station: where they go.
pub const DROPOFF: LatLng = LatLng {
    latitude: 37.4979,
    longitude: 127.0276,
};

/// A request for a normal taxi from [`PICKUP`] to [`DROPOFF`], paid with
/// `payment_method`, under a fresh idempotency key.
pub fn call_request(payment_method: &str) -> RequestCallRequest {
    RequestCallRequest {
        pickup: Some(PICKUP),
        dropoff: Some(DROPOFF),
        taxi_type: TaxiType::Normal.into(),
        idempotency_key: Uuid::new_v4().to_string(),
        payment_method: payment_method.into(),
    }
}
