//! Assigning drivers to calls and releasing them. The store's conditional
//! writes make the race between replicas safe; the rules here say what a
//! claim that lost, or a release that came too early, gets back.

use super::{Dispatch, registered};
use crate::{
    domain::{AssignCommand, Driver, Refusal, ReleaseCommand},
    error::DispatchError,
    events::publish,
};

impl Dispatch {
    /// Puts the driver on the call, if they hold a live offer of it. A retry
    /// by the driver who won returns them unchanged; any other claim on a
    /// taken call is refused.
    #[tracing::instrument(skip_all, fields(call_id = %command.call_id, driver_id = %command.driver_id))]
    pub async fn assign(&self, command: AssignCommand) -> Result<Driver, DispatchError> {
        let mut tx = self.store.begin().await?;
        if !self.store.claim_call(&mut tx, &command).await? {
            let existing = self.store.assignment(&mut tx, command.call_id).await?;
            existing.confirm_repeat(command.driver_id)?;
            let driver = self.store.find_driver(&mut tx, command.driver_id).await?;
            return registered(driver, command.driver_id);
        }

        let Some(driver) = self.store.put_on_call(&mut tx, &command).await? else {
            let refusal = match self.store.find_driver(&mut tx, command.driver_id).await? {
                Some(driver) => DispatchError::Refused(driver.assignment_refusal(command.taxi_type)),
                None => DispatchError::DriverNotFound(command.driver_id),
            };
            tx.rollback().await?;
            return Err(refusal);
        };
        // Only a driver holding a live offer may take the call: checked after
        // the driver's own state, so that their refusal says the most.
        if !self
            .store
            .holds_live_offer(&mut tx, command.call_id, command.driver_id)
            .await?
        {
            tx.rollback().await?;
            return Err(DispatchError::Refused(Refusal::NoLiveOffer));
        }
        self.store
            .append(&mut tx, &publish::driver_assigned(&driver, command.call_id))
            .await?;
        tx.commit().await?;
        Ok(driver)
    }

    /// Frees the driver of the call. True only for the request that actually
    /// released an assignment; repeats, strangers and early releases get false.
    #[tracing::instrument(skip_all, fields(call_id = %command.call_id, driver_id = %command.driver_id))]
    pub async fn release(&self, command: ReleaseCommand) -> Result<bool, DispatchError> {
        let mut tx = self.store.begin().await?;
        // Without an assignment yet, a tombstone makes a late AssignDriver for
        // this call (say, a retry after a timeout) fail instead of winning.
        if self
            .store
            .tombstone_call(&mut tx, command.call_id, command.driver_id)
            .await?
        {
            tx.commit().await?;
            tracing::info!("released before any assignment; the call can no longer be assigned");
            return Ok(false);
        }

        let assignment = self.store.lock_assignment(&mut tx, command.call_id).await?;
        if !assignment.is_releasable_by(command.driver_id) {
            return Ok(false);
        }
        self.store.mark_released(&mut tx, command.call_id).await?;
        if let Some(driver) = self
            .store
            .free_driver(&mut tx, command.driver_id, command.call_id)
            .await?
        {
            self.store
                .append(&mut tx, &publish::driver_released(&driver, command.call_id))
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
