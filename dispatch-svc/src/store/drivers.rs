//! Drivers: registration, going on- and offline, location, and finding the
//! available ones near a point.

use sqlx::PgConnection;
use svc_kit::geo::GeoPoint;
use taxi_proto::{
    common::v1::TaxiType,
    events::v1::{DriverOffline, DriverOnline, DriverRegistered, event_envelope::Payload},
};
use uuid::Uuid;

use super::{DriverRow, Store, driver_from, find_driver, record};
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
/// seconds within `$10` metres of `($7, $8)`. The box `$2..=$3`, `$4..=$5`
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

/// Binds `$1..=$10` of `available_within!` for a search of `$area`.
macro_rules! bind_search {
    ($query:expr, $store:expr, $taxi_type:expr, $area:expr) => {{
        let bbox = $area.bounding_box();
        $query
            .bind($taxi_type.as_str_name())
            .bind(bbox.min_lat)
            .bind(bbox.max_lat)
            .bind(bbox.min_lng)
            .bind(bbox.max_lng)
            .bind($store.location_max_age.as_secs_f64())
            .bind($area.center.lat)
            .bind($area.center.lng)
            .bind(EARTH_RADIUS_M)
            .bind(f64::from($area.radius_m))
    }};
}

impl Store {
    /// Registers the driver (OFFLINE) or updates their details; unchanged
    /// details change nothing and record no event.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn register(&self, driver_id: Uuid, details: &DriverDetails) -> Result<Driver, DispatchError> {
        let mut tx = self.pool.begin().await?;
        let inserted: Option<DriverRow> = sqlx::query_as(concat!(
            "INSERT INTO drivers (driver_id, name, license_plate, taxi_type) VALUES ($1, $2, $3, $4)
             ON CONFLICT (driver_id) DO NOTHING RETURNING ",
            driver_columns!()
        ))
        .bind(driver_id)
        .bind(&details.name)
        .bind(&details.license_plate)
        .bind(details.taxi_type.as_str_name())
        .fetch_optional(&mut *tx)
        .await?;
        let driver = match driver_from(inserted)? {
            Some(driver) => driver,
            None => {
                let current = lock_driver(&mut tx, driver_id)
                    .await?
                    .ok_or(DispatchError::DriverNotFound(driver_id))?;
                if !current.reregistration(details)? {
                    return Ok(current);
                }
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
                .fetch_one(&mut *tx)
                .await?;
                Driver::try_from(row)?
            }
        };
        let event = Payload::DriverRegistered(DriverRegistered {
            driver_id: driver_id.to_string(),
            taxi_type: driver.taxi_type.into(),
        });
        record(&mut tx, &driver, event).await?;
        tx.commit().await?;
        Ok(driver)
    }

    /// OFFLINE -> AVAILABLE; a driver already online is returned as is.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn set_online(&self, driver_id: Uuid) -> Result<Driver, DispatchError> {
        self.change_status(
            driver_id,
            |status| Ok(status.online()),
            |driver| {
                Payload::DriverOnline(DriverOnline {
                    driver_id: driver.id.to_string(),
                    taxi_type: driver.taxi_type.into(),
                })
            },
        )
        .await
    }

    /// AVAILABLE -> OFFLINE; refused on a call, a no-op when already offline.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn set_offline(&self, driver_id: Uuid) -> Result<Driver, DispatchError> {
        self.change_status(
            driver_id,
            |status| Ok(status.offline()?),
            |driver| {
                Payload::DriverOffline(DriverOffline {
                    driver_id: driver.id.to_string(),
                    taxi_type: driver.taxi_type.into(),
                })
            },
        )
        .await
    }

    /// Locks the driver, applies `transition` to their status and, when it
    /// changes, records the new status with `event` in the same transaction.
    async fn change_status(
        &self,
        driver_id: Uuid,
        transition: impl FnOnce(DriverStatus) -> Result<Option<DriverStatus>, DispatchError>,
        event: impl FnOnce(&Driver) -> Payload,
    ) -> Result<Driver, DispatchError> {
        let mut tx = self.pool.begin().await?;
        let driver = lock_driver(&mut tx, driver_id)
            .await?
            .ok_or(DispatchError::DriverNotFound(driver_id))?;
        let Some(next) = transition(driver.status)? else {
            return Ok(driver);
        };
        let driver = set_status(&mut tx, driver_id, next).await?;
        record(&mut tx, &driver, event(&driver)).await?;
        tx.commit().await?;
        Ok(driver)
    }

    /// Stores where the driver is now. Locations are too frequent to be events.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn update_location(
        &self,
        driver_id: Uuid,
        location: GeoPoint,
    ) -> Result<Driver, DispatchError> {
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
        driver_from(row)?.ok_or(DispatchError::DriverNotFound(driver_id))
    }

    /// The driver's record.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn driver(&self, driver_id: Uuid) -> Result<Driver, DispatchError> {
        let mut conn = self.pool.acquire().await?;
        find_driver(&mut conn, driver_id)
            .await?
            .ok_or(DispatchError::DriverNotFound(driver_id))
    }

    /// How many AVAILABLE drivers of `taxi_type` with a recent location are
    /// inside `area`.
    #[tracing::instrument(skip_all, fields(taxi_type = taxi_type.as_str_name(), radius_m = area.radius_m))]
    pub async fn count_available(&self, taxi_type: TaxiType, area: SearchArea) -> Result<i64, DispatchError> {
        let query = sqlx::query_scalar(concat!(
            "SELECT count(*) FROM drivers WHERE ",
            available_within!()
        ));
        let count: i64 = bind_search!(query, self, taxi_type, area)
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }

    /// The `limit` AVAILABLE drivers of `taxi_type` with a recent location
    /// nearest to the centre of `area` and inside it, nearest first, with
    /// their distance in metres: the same drivers [`Store::count_available`]
    /// counts.
    pub(super) async fn nearest_available(
        &self,
        conn: &mut PgConnection,
        taxi_type: TaxiType,
        area: SearchArea,
        limit: u32,
    ) -> Result<Vec<(Uuid, f64)>, DispatchError> {
        let query = sqlx::query_as(concat!(
            "SELECT driver_id, ",
            distance_m!(),
            " AS distance_m FROM drivers WHERE ",
            available_within!(),
            " ORDER BY distance_m, driver_id LIMIT $11"
        ));
        let nearest: Vec<(Uuid, f64)> = bind_search!(query, self, taxi_type, area)
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await?;
        Ok(nearest)
    }
}

/// The driver's record, locked until the transaction ends.
async fn lock_driver(conn: &mut PgConnection, driver_id: Uuid) -> Result<Option<Driver>, DispatchError> {
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

async fn set_status(
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
