//! SettleBalance: the owning customer pays what a finished call still owes
//! (a declined final charge) with another card. The owed settlement is tried
//! again at once with that card, under a key of its own; if it fails it
//! stays owed, and the sweeper keeps retrying it with the new card.

use svc_kit::identity::Caller;
use tonic::Code;
use uuid::Uuid;

use super::{Calls, visible};
use crate::{domain::Call, error::CallError};

impl Calls {
    /// Charges what the call owes to `payment_method`; the call as it is
    /// afterwards, or why it still owes.
    pub async fn settle_balance(
        &self,
        customer: Uuid,
        call_id: Uuid,
        payment_method: String,
    ) -> Result<Call, CallError> {
        let call = self
            .update_locked(call_id, |call| {
                visible(&Caller::Customer(customer), call_id, Some(call))?;
                Ok(call.pay_with(payment_method)?)
            })
            .await?;
        let failed = self.attempt_effects(call.id, call.effects, 0).await;
        let call = self
            .store
            .get(call_id)
            .await?
            .ok_or(CallError::NotFound(call_id))?;
        match failed {
            _ if call.owed_krw == 0 => Ok(call),
            Some(status) if status.code() == Code::FailedPrecondition => Err(CallError::FailedPrecondition(
                format!("the card was declined; {} KRW is still owed", call.owed_krw),
            )),
            _ => Err(CallError::BackendUnavailable(
                "payment is unavailable; the balance will be charged to this card shortly".into(),
            )),
        }
    }
}
