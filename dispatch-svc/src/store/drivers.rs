//! The `drivers` table: a driver's details, status, location and version,
//! and the search for available drivers near a point.

use std::time::Duration;

use sqlx::PgConnection;
use svc_kit::geo::GeoPoint;
use taxi_proto::common::v1::TaxiType;
use uuid::Uuid;

use super::{DriverRow, Store, driver_from};
use crate::{
    domain::{Driver, DriverDetails, DriverStatus, SearchArea, area::EARTH_RADIUS_M},
    error::DispatchError,
};

/// The great-circle (haversine) distance in metres from a driver to the point
/// `($7, $8)`, `$9` being the earth's radius. The argument of `asin` is
/// clamped, as rounding can push it past 1.
macro_rules! distance_m {
    () => {
        "2 * $9 * asin(least(1.0, sqrt(
             power(sin(radians(lat - $7) / 2), 2)
             + cos(radians($7)) * cos(radians(lat)) * power(sin(radians(lng - $8) / 2), 2)
         )))"
    };
}

/// The AVAILABLE drivers of taxi type `$1` with a location newer than `$6`
/// seconds (by the database's clock) within `$10` metres of `($7, $8)`. The box `$2..=$3`, `$4..=$5`
/// narrows the rows through the index; the distance decides.
macro_rules! available_within {
    () => {
        concat!(
            "status = 'AVAILABLE' AND taxi_type = $1
               AND lat BETWEEN $2 AND $3 AND lng BETWEEN $4 AND $5
               AND location_updated_at > now() - make_interval(secs => $6)
               AND ",
            distance_m!(),
            " <= $10"
        )
    };
}

/// Binds `$1..=$10` of `available_within!` for a search of `$area` that
/// ignores locations older than `$max_age`.
macro_rules! bind_search {
    ($query:expr, $taxi_type:expr, $area:expr, $max_age:expr) => {{
        let bbox = $area.bounding_box();
        $query
            .bind($taxi_type.as_str_name())
            .bind(bbox.min_lat)
            .bind(bbox.max_lat)
            .bind(bbox.min_lng)
            .bind(bbox.max_lng)
            .bind($max_age.as_secs_f64())
            .bind($area.center.lat)
            .bind($area.center.lng)
            .bind(EARTH_RADIUS_M)
            .bind(f64::from($area.radius_m))
    }};
}

impl Store {
    /// Inserts a new OFFLINE driver; `None` when `driver_id` is registered
    /// already.
    pub async fn insert_driver(
        &self,
        conn: &mut PgConnection,
        driver_id: Uuid,
        details: &DriverDetails,
    ) -> Result<Option<Driver>, DispatchError> {
        let row: Option<DriverRow> = sqlx::query_as(concat!(
            "INSERT INTO drivers (driver_id, name, license_plate, taxi_type) VALUES ($1, $2, $3, $4)
             ON CONFLICT (driver_id) DO NOTHING RETURNING ",
            driver_columns!()
        ))
        .bind(driver_id)
        .bind(&details.name)
        .bind(&details.license_plate)
        .bind(details.taxi_type.as_str_name())
        .fetch_optional(conn)
        .await?;
        Ok(driver_from(row)?)
    }

    /// Replaces the driver's details and bumps their version.
    pub async fn update_details(
        &self,
        conn: &mut PgConnection,
        driver_id: Uuid,
        details: &DriverDetails,
    ) -> Result<Driver, DispatchError> {
        let row: DriverRow = sqlx::query_as(concat!(
            "UPDATE drivers SET name = $2, license_plate = $3, taxi_type = $4,
                 version = version + 1, updated_at = now()
             WHERE driver_id = $1 RETURNING ",
            driver_columns!()
        ))
        .bind(driver_id)
        .bind(&details.name)
        .bind(&details.license_plate)
        .bind(details.taxi_type.as_str_name())
        .fetch_one(conn)
        .await?;
        Ok(Driver::try_from(row)?)
    }

    /// Sets the driver's status and bumps their version.
    pub async fn set_status(
        &self,
        conn: &mut PgConnection,
        driver_id: Uuid,
        status: DriverStatus,
    ) -> Result<Driver, DispatchError> {
        let row: DriverRow = sqlx::query_as(concat!(
            "UPDATE drivers SET status = $2, version = version + 1, updated_at = now()
             WHERE driver_id = $1 RETURNING ",
            driver_columns!()
        ))
        .bind(driver_id)
        .bind(status.as_str())
        .fetch_one(conn)
        .await?;
        Ok(Driver::try_from(row)?)
    }

    /// Stores where the driver is now, without a new version: locations are
    /// too frequent to be events. `None` for an unknown driver.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn update_location(
        &self,
        driver_id: Uuid,
        location: GeoPoint,
    ) -> Result<Option<Driver>, DispatchError> {
        let row: Option<DriverRow> = sqlx::query_as(concat!(
            "UPDATE drivers SET lat = $2, lng = $3, location_updated_at = now(), updated_at = now()
             WHERE driver_id = $1 RETURNING ",
            driver_columns!()
        ))
        .bind(driver_id)
        .bind(location.lat)
        .bind(location.lng)
        .fetch_optional(&self.pool)
        .await?;
        Ok(driver_from(row)?)
    }

    /// The driver's record.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn driver(&self, driver_id: Uuid) -> Result<Option<Driver>, DispatchError> {
        let mut conn = self.pool.acquire().await?;
        self.find_driver(&mut conn, driver_id).await
    }

    /// The driver's current record, read without locking.
    pub async fn find_driver(
        &self,
        conn: &mut PgConnection,
        driver_id: Uuid,
    ) -> Result<Option<Driver>, DispatchError> {
        let row: Option<DriverRow> = sqlx::query_as(concat!(
            "SELECT ",
            driver_columns!(),
            " FROM drivers WHERE driver_id = $1"
        ))
        .bind(driver_id)
        .fetch_optional(conn)
        .await?;
        Ok(driver_from(row)?)
    }

    /// The driver's record, locked until the transaction ends.
    pub async fn lock_driver(
        &self,
        conn: &mut PgConnection,
        driver_id: Uuid,
    ) -> Result<Option<Driver>, DispatchError> {
        let row: Option<DriverRow> = sqlx::query_as(concat!(
            "SELECT ",
            driver_columns!(),
            " FROM drivers WHERE driver_id = $1 FOR UPDATE"
        ))
        .bind(driver_id)
        .fetch_optional(conn)
        .await?;
        Ok(driver_from(row)?)
    }

    /// How many AVAILABLE drivers of `taxi_type` with a location newer than
    /// `location_max_age` are inside `area`.
    #[tracing::instrument(skip_all, fields(taxi_type = taxi_type.as_str_name(), radius_m = area.radius_m))]
    pub async fn count_available(
        &self,
        taxi_type: TaxiType,
        area: SearchArea,
        location_max_age: Duration,
    ) -> Result<i64, DispatchError> {
        let query = sqlx::query_scalar(concat!(
            "SELECT count(*) FROM drivers WHERE ",
            available_within!()
        ));
        let count: i64 = bind_search!(query, taxi_type, area, location_max_age)
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }

    /// The `limit` AVAILABLE drivers of `taxi_type` with a location newer
    /// than `location_max_age` nearest to the centre of `area` and inside it,
    /// nearest first, with their distance in metres: the same drivers
    /// [`Store::count_available`] counts.
    /// With `not_offered`, only drivers who were never offered that call.
    pub async fn nearest_available(
        &self,
        conn: &mut PgConnection,
        taxi_type: TaxiType,
        area: SearchArea,
        location_max_age: Duration,
        limit: u32,
        not_offered: Option<Uuid>,
    ) -> Result<Vec<(Uuid, f64)>, DispatchError> {
        let query = sqlx::query_as(concat!(
            "SELECT driver_id, ",
            distance_m!(),
            " AS distance_m FROM drivers WHERE ",
            available_within!(),
            " AND ($12::uuid IS NULL OR NOT EXISTS (
                 SELECT 1 FROM offered_drivers o WHERE o.call_id = $12 AND o.driver_id = drivers.driver_id))
             ORDER BY distance_m, driver_id LIMIT $11"
        ));
        let nearest: Vec<(Uuid, f64)> = bind_search!(query, taxi_type, area, location_max_age)
            .bind(i64::from(limit))
            .bind(not_offered)
            .fetch_all(conn)
            .await?;
        Ok(nearest)
    }
}
