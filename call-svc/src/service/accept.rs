//! AcceptCall: exactly one driver can hold the claim on a call; the claimant
//! assigns themself (`AssignDriver`, always before payment), then pays the
//! advance (`ChargeAdvance`), then commits ACCEPTED. A refusal undoes the
//! steps taken; a transient failure leaves the claim for the sweeper to
//! finish or undo.

use taxi_proto::{
    dispatch::v1::AssignDriverRequest,
    payment::v1::{ChargeAdvanceRequest, EntryStatus},
};
use uuid::Uuid;

use super::{Calls, is_transient};
use crate::{
    domain::{Applied, Call},
    error::CallError,
    events,
};

impl Calls {
    /// A driver accepts a call. Exactly one driver can hold the claim; the
    /// claimant assigns themself, then pays the advance, then commits.
    pub async fn accept_call(&self, driver: Uuid, call_id: Uuid) -> Result<Call, CallError> {
        let mut tx = self.store.begin().await?;
        let mut call = self
            .store
            .lock(&mut tx, call_id)
            .await?
            .ok_or(CallError::NotFound(call_id))?;
        if call.claim(driver, svc_kit::clock::now())? == Applied::AlreadyDone {
            return Ok(call);
        }
        self.store.update(&mut tx, &call).await?;
        tx.commit().await?;
        self.drive_accept(call, driver).await
    }

    /// Runs the remote steps of an accept the driver has claimed, and commits
    /// the outcome. Used by AcceptCall and by the sweeper after a crash.
    pub(super) async fn drive_accept(&self, call: Call, driver: Uuid) -> Result<Call, CallError> {
        let assign = AssignDriverRequest {
            call_id: call.id.to_string(),
            driver_id: driver.to_string(),
            taxi_type: call.taxi_type.into(),
        };
        if let Err(status) = self
            .dispatch
            .clone()
            .assign_driver(self.signer.service_request(assign))
            .await
        {
            if is_transient(&status) {
                return Err(CallError::BackendUnavailable(
                    "dispatch is unavailable; the accept will be completed or undone shortly".into(),
                ));
            }
            self.update_locked(call.id, |call| {
                call.drop_claim(driver);
                Ok(())
            })
            .await?;
            return Err(CallError::FailedPrecondition(status.message().to_owned()));
        }

        let charge = ChargeAdvanceRequest {
            call_id: call.id.to_string(),
            customer_id: call.customer_id.to_string(),
            amount_krw: call.quote.fare_krw,
            payment_method: call.payment_method.clone(),
            idempotency_key: format!("{}/advance", call.id),
        };
        let entry = match self
            .payment
            .clone()
            .charge_advance(self.signer.service_request(charge))
            .await
        {
            Ok(response) => response
                .into_inner()
                .entry
                .ok_or_else(|| anyhow::anyhow!("ChargeAdvance answered without an entry"))?,
            Err(status) if is_transient(&status) => {
                return Err(CallError::BackendUnavailable(
                    "payment is unavailable; the accept will be completed or undone shortly".into(),
                ));
            }
            Err(status) => {
                tracing::error!(call_id = %call.id, code = ?status.code(), message = status.message(), "advance refused; undoing the accept");
                let call = self.abandon_claim(call.id, driver).await?;
                self.perform_effects(&call).await;
                return Err(CallError::FailedPrecondition(status.message().to_owned()));
            }
        };

        let approved = entry.status() == EntryStatus::Approved;
        let now = svc_kit::clock::now();
        let mut tx = self.store.begin().await?;
        let mut call = self
            .store
            .lock(&mut tx, call.id)
            .await?
            .ok_or(CallError::NotFound(call.id))?;
        let applied = if approved {
            call.accept(driver, entry.amount_krw, now)
        } else {
            call.decline_payment(driver, now)
        };
        match applied {
            Ok(()) => {
                self.store.update(&mut tx, &call).await?;
                outbox::append(&mut tx, &events::transition(&call, now)).await?;
                tx.commit().await?;
                self.perform_effects(&call).await;
                if approved {
                    tracing::info!(call_id = %call.id, %driver, "call accepted");
                    Ok(call)
                } else {
                    tracing::info!(call_id = %call.id, "advance declined; call canceled");
                    Err(CallError::FailedPrecondition(
                        "the advance payment was declined; the call is canceled".into(),
                    ))
                }
            }
            Err(refused) => {
                // The call changed while we were accepting it (the customer
                // canceled first): undo the assignment and the advance.
                call.abandon_claim(driver);
                self.store.update(&mut tx, &call).await?;
                tx.commit().await?;
                self.perform_effects(&call).await;
                Err(refused.into())
            }
        }
    }

    /// Drops the driver's claim and records what undoing it owes (release the
    /// driver, refund the advance); the caller performs those effects.
    pub(super) async fn abandon_claim(&self, call_id: Uuid, driver: Uuid) -> Result<Call, CallError> {
        self.update_locked(call_id, |call| {
            call.abandon_claim(driver);
            Ok(())
        })
        .await
    }
}
