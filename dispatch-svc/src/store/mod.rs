//! PostgreSQL schema `dispatch`: drivers, call assignments, offers and the
//! outbox, read and written by [`Store`]; one file per concern: [`drivers`],
//! [`assignments`] (with the driver updates that go with one), [`offers`].
//!
//! The store only reads and writes rows. What a change means (may this driver
//! go offline? which event does it make?) is decided in `service`, which runs
//! the statements of one change in a transaction from [`Store::begin`]: the
//! methods that take a `&mut PgConnection` are its steps, and a driver's
//! change commits together with the event [`Store::append`] adds to the outbox.
//! Methods without a connection run on the pool, each statement on its own.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction, migrate::Migrator};
use svc_kit::geo::GeoPoint;
use taxi_proto::{common::v1::TaxiType, events::v1::EventEnvelope};
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

/// A transaction on the dispatch schema; dropping it uncommitted rolls it back.
pub type Tx = Transaction<'static, Postgres>;

/// Dispatch's data, shared by every request.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// A store on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Starts a transaction for a change made of several statements.
    pub async fn begin(&self) -> Result<Tx, DispatchError> {
        Ok(self.pool.begin().await?)
    }

    /// Appends `event` to the outbox; inside the transaction of the change it
    /// records, so the two commit together.
    pub async fn append(&self, conn: &mut PgConnection, event: &EventEnvelope) -> Result<(), DispatchError> {
        outbox::append(conn, event).await?;
        Ok(())
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
