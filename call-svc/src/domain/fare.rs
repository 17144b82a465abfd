//! Fares: a base fare covering a base distance, then a unit fare per started
//! unit of distance, per taxi type. All money is integer KRW.

use serde::{Deserialize, Serialize};
use svc_kit::geo::GeoPoint;
use taxi_proto::common::v1::TaxiType;

/// The tariff of one taxi type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FareRule {
    pub base_fare_krw: i64,
    /// Distance the base fare covers.
    pub base_distance_m: i64,
    /// Every started unit beyond the base distance costs `unit_fare_krw`.
    pub unit_distance_m: i64,
    pub unit_fare_krw: i64,
}

impl FareRule {
    /// The fare for a trip of `distance_m` (negative distances count as zero).
    pub fn fare(&self, distance_m: i64) -> i64 {
        let beyond = (distance_m - self.base_distance_m).max(0);
        let units = (beyond + self.unit_distance_m - 1) / self.unit_distance_m;
        self.base_fare_krw + units * self.unit_fare_krw
    }

    fn validate(&self, name: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.base_fare_krw >= 0
                && self.base_distance_m >= 0
                && self.unit_distance_m > 0
                && self.unit_fare_krw >= 0,
            "fare rule {name}: amounts must be non-negative and unit_distance_m positive"
        );
        Ok(())
    }
}

/// The tariffs of every taxi type, and how a route is estimated before the trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FareTable {
    pub normal: FareRule,
    pub premium: FareRule,
    pub van: FareRule,
    /// Roads are longer than the straight line: the estimate is the
    /// great-circle distance times this percentage.
    pub route_factor_percent: i64,
}

impl Default for FareTable {
    /// Seoul's 2024 tariffs for regular, deluxe and large taxis (time-based
    /// charges left out).
    fn default() -> Self {
        Self {
            normal: FareRule {
                base_fare_krw: 4_800,
                base_distance_m: 1_600,
                unit_distance_m: 131,
                unit_fare_krw: 100,
            },
            premium: FareRule {
                base_fare_krw: 7_000,
                base_distance_m: 3_000,
                unit_distance_m: 151,
                unit_fare_krw: 200,
            },
            van: FareRule {
                base_fare_krw: 7_000,
                base_distance_m: 3_000,
                unit_distance_m: 151,
                unit_fare_krw: 200,
            },
            route_factor_percent: 130,
        }
    }
}

/// The server's estimate for a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub distance_m: i64,
    pub fare_krw: i64,
}

impl FareTable {
    pub fn rule(&self, taxi_type: TaxiType) -> &FareRule {
        match taxi_type {
            TaxiType::Premium => &self.premium,
            TaxiType::Van => &self.van,
            TaxiType::Normal | TaxiType::Unspecified => &self.normal,
        }
    }

    /// Quotes a route before the trip from the straight-line distance.
    pub fn quote(&self, taxi_type: TaxiType, pickup: GeoPoint, dropoff: GeoPoint) -> Quote {
        // Rounding a distance is fine in floating point; money stays integer.
        let straight_m = pickup.distance_m(dropoff).round() as i64;
        let distance_m = straight_m * self.route_factor_percent / 100;
        Quote {
            distance_m,
            fare_krw: self.rule(taxi_type).fare(distance_m),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.normal.validate("normal")?;
        self.premium.validate("premium")?;
        self.van.validate("van")?;
        anyhow::ensure!(
            (100..=300).contains(&self.route_factor_percent),
            "route_factor_percent must be within 100..=300"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NORMAL: FareRule = FareRule {
        base_fare_krw: 4_800,
        base_distance_m: 1_600,
        unit_distance_m: 131,
        unit_fare_krw: 100,
    };

    #[test]
    fn the_base_fare_covers_the_base_distance() {
        assert_eq!(NORMAL.fare(0), 4_800);
        assert_eq!(NORMAL.fare(1_600), 4_800);
    }

    #[test]
    fn every_started_unit_beyond_the_base_costs_a_unit_fare() {
        assert_eq!(NORMAL.fare(1_601), 4_900);
        assert_eq!(NORMAL.fare(1_600 + 131), 4_900);
        assert_eq!(NORMAL.fare(1_600 + 132), 5_000);
        assert_eq!(NORMAL.fare(10_000), 4_800 + 65 * 100);
    }

    #[test]
    fn negative_distance_costs_the_base_fare() {
        assert_eq!(NORMAL.fare(-5), 4_800);
    }

    #[test]
    fn quote_applies_the_route_factor_and_the_taxi_type() {
        let table = FareTable::default();
        let a = GeoPoint {
            lat: 37.5547,
            lng: 126.9707,
        };
        let b = GeoPoint {
            lat: 37.4979,
            lng: 127.0276,
        };
        let normal = table.quote(TaxiType::Normal, a, b);
        let straight = a.distance_m(b).round() as i64;
        assert_eq!(normal.distance_m, straight * 130 / 100);
        assert_eq!(normal.fare_krw, NORMAL.fare(normal.distance_m));
        assert!(table.quote(TaxiType::Premium, a, b).fare_krw > normal.fare_krw);
    }

    #[test]
    fn same_point_quotes_the_base_fare() {
        let table = FareTable::default();
        let a = GeoPoint {
            lat: 37.5,
            lng: 127.0,
        };
        assert_eq!(
            table.quote(TaxiType::Van, a, a),
            Quote {
                distance_m: 0,
                fare_krw: 7_000
            }
        );
    }

    #[test]
    fn a_zero_unit_distance_is_an_invalid_table() {
        let mut table = FareTable::default();
        table.van.unit_distance_m = 0;
        assert!(table.validate().is_err());
    }
}
