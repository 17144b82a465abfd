//! Coordinates and great-circle distances.

use taxi_proto::common::v1::LatLng;

use crate::validate::Violations;

const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A validated WGS84 point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    /// Degrees, -90..=90.
    pub lat: f64,
    /// Degrees, -180..=180.
    pub lng: f64,
}

impl GeoPoint {
    /// Validates a required point, recording `field.latitude` or
    /// `field.longitude` when out of range (or `field` when missing).
    pub fn parse(field: &str, value: Option<&LatLng>, v: &mut Violations) -> Option<Self> {
        let Some(p) = value else {
            v.add(field, "must be set");
            return None;
        };
        let mut ok = true;
        if !(p.latitude.is_finite() && (-90.0..=90.0).contains(&p.latitude)) {
            v.add(format!("{field}.latitude"), "must be within -90..=90");
            ok = false;
        }
        if !(p.longitude.is_finite() && (-180.0..=180.0).contains(&p.longitude)) {
            v.add(format!("{field}.longitude"), "must be within -180..=180");
            ok = false;
        }
        ok.then_some(Self {
            lat: p.latitude,
            lng: p.longitude,
        })
    }

    /// Great-circle (haversine) distance in metres.
    pub fn distance_m(self, other: Self) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let d_phi = phi2 - phi1;
        let d_lambda = (other.lng - self.lng).to_radians();
        let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }

    /// The wire form.
    pub fn to_proto(self) -> LatLng {
        LatLng {
            latitude: self.lat,
            longitude: self.lng,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seoul_station_to_gangnam_is_about_eight_km() {
        let seoul_station = GeoPoint {
            lat: 37.5547,
            lng: 126.9707,
        };
        let gangnam = GeoPoint {
            lat: 37.4979,
            lng: 127.0276,
        };
        let d = seoul_station.distance_m(gangnam);
        assert!((7_900.0..8_200.0).contains(&d), "{d}");
    }

    #[test]
    fn out_of_range_and_non_finite_coordinates_name_their_field() {
        let mut v = Violations::new();
        let bad = LatLng {
            latitude: 91.0,
            longitude: f64::NAN,
        };
        assert_eq!(GeoPoint::parse("pickup", Some(&bad), &mut v), None);
        assert_eq!(GeoPoint::parse("dropoff", None, &mut v), None);
        let fields: Vec<_> = v
            .finish()
            .expect_err("bad")
            .0
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["pickup.latitude", "pickup.longitude", "dropoff"]);
    }
}
