//! Drivers: registration, going on- and offline, location, and how many are
//! available near a point. Every change of a driver's details or status
//! commits together with its event.

use svc_kit::geo::GeoPoint;
use taxi_proto::{common::v1::TaxiType, events::v1::EventEnvelope};
use uuid::Uuid;

use super::{Dispatch, registered};
use crate::{
    domain::{Driver, DriverDetails, DriverStatus, SearchArea},
    error::DispatchError,
    events::publish,
};

impl Dispatch {
    /// Registers the driver (OFFLINE) or updates their details; unchanged
    /// details change nothing and record no event.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn register(&self, driver_id: Uuid, details: &DriverDetails) -> Result<Driver, DispatchError> {
        let mut tx = self.store.begin().await?;
        let driver = match self.store.insert_driver(&mut tx, driver_id, details).await? {
            Some(driver) => driver,
            None => {
                let current = registered(self.store.lock_driver(&mut tx, driver_id).await?, driver_id)?;
                if !current.reregistration(details)? {
                    return Ok(current);
                }
                self.store.update_details(&mut tx, driver_id, details).await?
            }
        };
        self.store
            .append(&mut tx, &publish::driver_registered(&driver))
            .await?;
        tx.commit().await?;
        Ok(driver)
    }

    /// OFFLINE -> AVAILABLE; a driver already online is returned as is.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn set_online(&self, driver_id: Uuid) -> Result<Driver, DispatchError> {
        let driver = self
            .change_status(driver_id, |status| Ok(status.online()), publish::driver_online)
            .await?;
        // Calls already waiting nearby are not left to their next round.
        self.offer_waiting_calls(driver_id).await;
        Ok(driver)
    }

    /// AVAILABLE -> OFFLINE; refused on a call, a no-op when already offline.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn set_offline(&self, driver_id: Uuid) -> Result<Driver, DispatchError> {
        self.change_status(driver_id, |status| Ok(status.offline()?), publish::driver_offline)
            .await
    }

    /// Locks the driver, applies `transition` to their status and, when it
    /// changes, records the new status with `event` in the same transaction.
    async fn change_status(
        &self,
        driver_id: Uuid,
        transition: impl FnOnce(DriverStatus) -> Result<Option<DriverStatus>, DispatchError>,
        event: impl FnOnce(&Driver) -> EventEnvelope,
    ) -> Result<Driver, DispatchError> {
        let mut tx = self.store.begin().await?;
        let driver = registered(self.store.lock_driver(&mut tx, driver_id).await?, driver_id)?;
        let Some(next) = transition(driver.status)? else {
            return Ok(driver);
        };
        let driver = self.store.set_status(&mut tx, driver_id, next).await?;
        self.store.append(&mut tx, &event(&driver)).await?;
        tx.commit().await?;
        Ok(driver)
    }

    /// Records where the driver is now, and offers them the waiting calls
    /// they have come within reach of.
    pub async fn update_location(
        &self,
        driver_id: Uuid,
        location: GeoPoint,
    ) -> Result<Driver, DispatchError> {
        let driver = registered(self.store.update_location(driver_id, location).await?, driver_id)?;
        if driver.status == DriverStatus::Available {
            self.offer_waiting_calls(driver_id).await;
        }
        Ok(driver)
    }

    /// The driver's record.
    pub async fn driver(&self, driver_id: Uuid) -> Result<Driver, DispatchError> {
        registered(self.store.driver(driver_id).await?, driver_id)
    }

    /// How many AVAILABLE drivers of `taxi_type` with a recent location are
    /// inside `area`.
    pub async fn count_available(&self, taxi_type: TaxiType, area: SearchArea) -> Result<i64, DispatchError> {
        self.store
            .count_available(taxi_type, area, self.settings.location_max_age)
            .await
    }
}
