//! CancelCall: the owning customer cancels. Once a driver has accepted, the
//! cancel keeps a fee out of the advance and owes the settlement to that fee
//! and the driver's release, performed after the commit (see `effects`).

use uuid::Uuid;

use svc_kit::identity::Caller;

use super::{Calls, visible};
use crate::{
    domain::{Applied, Call, CallStatus, CancelReason},
    error::CallError,
};

impl Calls {
    /// The owning customer cancels. `expected_version` (0 = any) makes the
    /// cancel apply only to the call as the customer last saw it.
    pub async fn cancel_call(
        &self,
        customer: Uuid,
        call_id: Uuid,
        expected_version: i64,
    ) -> Result<Call, CallError> {
        let fee = self.saga.cancel_fee_krw;
        self.transition(call_id, |call, now| {
            visible(&Caller::Customer(customer), call_id, Some(call))?;
            call.require_owner(customer, "cancel")?;
            if call.status == CallStatus::Canceled && call.cancel_reason == Some(CancelReason::Customer) {
                return Ok(Applied::AlreadyDone);
            }
            call.require_version(expected_version)?;
            Ok(call.cancel(CancelReason::Customer, fee, now)?)
        })
        .await
    }
}
