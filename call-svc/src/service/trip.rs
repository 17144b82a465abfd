//! StartTrip and CompleteTrip: the assigned driver departs, then arrives.
//! Completing prices the trip by its distance and owes the final settlement
//! and the driver's release, performed after the commit (see `effects`).

use uuid::Uuid;

use svc_kit::identity::Caller;

use super::{Calls, visible};
use crate::{domain::Call, error::CallError};

impl Calls {
    /// The assigned driver departs with the customer.
    pub async fn start_trip(&self, driver: Uuid, call_id: Uuid) -> Result<Call, CallError> {
        self.transition(call_id, |call, now| {
            visible(&Caller::Driver(driver), call_id, Some(call))?;
            Ok(call.start(driver, now)?)
        })
        .await
    }

    /// The assigned driver arrives after `distance_m`.
    pub async fn complete_trip(
        &self,
        driver: Uuid,
        call_id: Uuid,
        distance_m: i64,
    ) -> Result<Call, CallError> {
        self.transition(call_id, |call, now| {
            visible(&Caller::Driver(driver), call_id, Some(call))?;
            let rule = *self.fares.rule(call.taxi_type);
            Ok(call.complete(driver, distance_m, &rule, now)?)
        })
        .await
    }
}
