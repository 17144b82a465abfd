//! The circle an availability search covers, and the latitude/longitude box
//! around it that lets the database use an index before measuring distances.

use svc_kit::geo::GeoPoint;

/// Mean earth radius in metres; the same value as `svc_kit::geo`.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The widest search accepted, in metres.
pub const MAX_RADIUS_M: u32 = 50_000;

/// Drivers within `radius_m` metres (great-circle) of `center`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchArea {
    pub center: GeoPoint,
    pub radius_m: u32,
}

/// Degrees bounds that contain a [`SearchArea`]; never smaller than it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub min_lat: f64,
    pub max_lat: f64,
    pub min_lng: f64,
    pub max_lng: f64,
}

impl SearchArea {
    /// The smallest latitude/longitude box holding the circle. Near a pole or
    /// across the antimeridian it widens to every longitude, which is still
    /// correct because the exact distance is checked afterwards.
    pub fn bounding_box(&self) -> BoundingBox {
        let angular = f64::from(self.radius_m) / EARTH_RADIUS_M;
        let lat = self.center.lat.to_radians();
        let (min_lat, max_lat) = (lat - angular, lat + angular);
        let whole_world = (-180.0, 180.0);
        let (min_lng, max_lng) =
            if max_lat >= std::f64::consts::FRAC_PI_2 || min_lat <= -std::f64::consts::FRAC_PI_2 {
                whole_world
            } else {
                // The widest longitude offset is reached at the circle's tangent
                // points, not at the centre's latitude.
                let delta = (angular.sin() / lat.cos()).asin().to_degrees();
                let (west, east) = (self.center.lng - delta, self.center.lng + delta);
                if west < -180.0 || east > 180.0 {
                    whole_world
                } else {
                    (west, east)
                }
            };
        BoundingBox {
            min_lat: min_lat.to_degrees().max(-90.0),
            max_lat: max_lat.to_degrees().min(90.0),
            min_lng,
            max_lng,
        }
    }
}

impl BoundingBox {
    /// Whether `point` lies inside, edges included.
    pub fn contains(&self, point: GeoPoint) -> bool {
        (self.min_lat..=self.max_lat).contains(&point.lat)
            && (self.min_lng..=self.max_lng).contains(&point.lng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The point `distance_m` from `from` on the initial bearing `bearing_deg`.
    fn destination(from: GeoPoint, bearing_deg: f64, distance_m: f64) -> GeoPoint {
        let (lat1, lng1) = (from.lat.to_radians(), from.lng.to_radians());
        let (bearing, angular) = (bearing_deg.to_radians(), distance_m / EARTH_RADIUS_M);
        let lat2 = (lat1.sin() * angular.cos() + lat1.cos() * angular.sin() * bearing.cos()).asin();
        let lng2 = lng1
            + (bearing.sin() * angular.sin() * lat1.cos()).atan2(angular.cos() - lat1.sin() * lat2.sin());
        GeoPoint {
            lat: lat2.to_degrees(),
            lng: (lng2.to_degrees() + 540.0) % 360.0 - 180.0,
        }
    }

    fn area(lat: f64, lng: f64, radius_m: u32) -> SearchArea {
        SearchArea {
            center: GeoPoint { lat, lng },
            radius_m,
        }
    }

    #[test]
    fn the_box_holds_every_point_just_inside_the_circle() {
        for search in [
            area(37.5547, 126.9707, 3_000),
            area(-33.86, 151.2, 50_000),
            area(64.1, -21.9, 20_000),
        ] {
            let bbox = search.bounding_box();
            for bearing in (0..360).step_by(5) {
                let edge = destination(
                    search.center,
                    f64::from(bearing),
                    f64::from(search.radius_m) - 1.0,
                );
                assert!(bbox.contains(edge), "{search:?} {bearing}° {edge:?} {bbox:?}");
            }
        }
    }

    #[test]
    fn the_box_is_tight_around_seoul() {
        let bbox = area(37.5547, 126.9707, 3_000).bounding_box();
        assert!((bbox.max_lat - bbox.min_lat - 0.054).abs() < 0.001, "{bbox:?}");
        assert!((bbox.max_lng - bbox.min_lng - 0.068).abs() < 0.001, "{bbox:?}");
    }

    #[test]
    fn a_circle_around_a_pole_spans_every_longitude() {
        let bbox = area(89.99, 10.0, 5_000).bounding_box();
        assert_eq!((bbox.min_lng, bbox.max_lng, bbox.max_lat), (-180.0, 180.0, 90.0));
    }

    #[test]
    fn a_circle_across_the_antimeridian_spans_every_longitude() {
        let search = area(-17.0, 179.99, 10_000);
        let bbox = search.bounding_box();
        assert_eq!((bbox.min_lng, bbox.max_lng), (-180.0, 180.0));
        assert!(bbox.contains(destination(search.center, 90.0, 5_000.0)));
    }
}
