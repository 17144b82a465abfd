//! PostgreSQL schema `dispatch`: drivers, call assignments, offers and the
//! outbox. Every state change of a driver commits together with its event.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, migrate::Migrator};
use svc_kit::geo::GeoPoint;
use taxi_proto::{common::v1::TaxiType, events::v1::event_envelope::Payload};
use uuid::Uuid;

use crate::{
    domain::{Driver, DriverStatus},
    error::DispatchError,
};

/// The columns [`DriverRow`] reads, for `concat!` into static SQL.
macro_rules! driver_columns {
    () => {
        "driver_id, name, license_plate, taxi_type, status, lat, lng, location_updated_at, \
         current_call_id, version, updated_at"
    };
}

pub mod assignments;
pub mod drivers;
pub mod offers;

/// The PostgreSQL schema dispatch-svc owns.
pub const SCHEMA: &str = "dispatch";

/// The embedded migrations, applied at start-up.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Dispatch's data, shared by every request.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    location_max_age: Duration,
}

impl Store {
    /// A store on `pool` that ignores driver locations older than `location_max_age`.
    pub fn new(pool: PgPool, location_max_age: Duration) -> Self {
        Self {
            pool,
            location_max_age,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct DriverRow {
    driver_id: Uuid,
    name: String,
    license_plate: String,
    taxi_type: String,
    status: String,
    lat: Option<f64>,
    lng: Option<f64>,
    location_updated_at: Option<DateTime<Utc>>,
    current_call_id: Option<Uuid>,
    version: i64,
    updated_at: DateTime<Utc>,
}

impl TryFrom<DriverRow> for Driver {
    type Error = anyhow::Error;

    fn try_from(row: DriverRow) -> anyhow::Result<Self> {
        let taxi_type = TaxiType::from_str_name(&row.taxi_type).with_context(|| {
            format!(
                "driver {} has unknown taxi type {:?}",
                row.driver_id, row.taxi_type
            )
        })?;
        let status = DriverStatus::parse(&row.status)
            .with_context(|| format!("driver {} has unknown status {:?}", row.driver_id, row.status))?;
        let location = row.lat.zip(row.lng).map(|(lat, lng)| GeoPoint { lat, lng });
        Ok(Self {
            id: row.driver_id,
            name: row.name,
            license_plate: row.license_plate,
            taxi_type,
            status,
            location,
            location_updated_at: row.location_updated_at,
            current_call_id: row.current_call_id,
            version: row.version,
            updated_at: row.updated_at,
        })
    }
}

/// Converts an optional row read from the database.
fn driver_from(row: Option<DriverRow>) -> anyhow::Result<Option<Driver>> {
    row.map(Driver::try_from).transpose()
}

/// The driver's current record, read without locking.
async fn find_driver(conn: &mut PgConnection, driver_id: Uuid) -> Result<Option<Driver>, DispatchError> {
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

/// Records an event about `driver` at its current version.
async fn record(conn: &mut PgConnection, driver: &Driver, payload: Payload) -> Result<(), DispatchError> {
    let event = outbox::envelope(driver.id, driver.version, driver.updated_at, payload);
    outbox::append(conn, &event).await?;
    Ok(())
}
