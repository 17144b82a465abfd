//! AcceptCall: exactly one driver can hold the claim on a call; the claimant
//! assigns themself (`AssignDriver`, always before payment), then pays the
//! advance (`ChargeAdvance`), then commits ACCEPTED. A refusal undoes the
//! steps taken; a transient failure leaves the claim for the sweeper to
//! finish or undo.

use std::time::Instant;

use svc_kit::identity::Caller;
use taxi_proto::{
    dispatch::v1::AssignDriverRequest,
    payment::v1::{ChargeAdvanceRequest, EntryStatus},
};
use uuid::Uuid;

use super::{Calls, is_transient, metrics::AcceptStep, visible};
use crate::{
    domain::{Applied, Call, TransitionError},
    error::CallError,
    events,
};

impl Calls {
    /// A driver accepts a call. Exactly one driver can hold the claim; the
    /// claimant assigns themself, then pays the advance, then commits.
    pub async fn accept_call(&self, driver: Uuid, call_id: Uuid) -> Result<Call, CallError> {
        let started = Instant::now();
        let claimed = self.claim(driver, call_id).await;
        self.metrics.accept_step(AcceptStep::Claim, started.elapsed());
        match claimed? {
            (call, Applied::Changed) => self.drive_accept(call, driver).await,
            (call, Applied::AlreadyDone) => Ok(call),
        }
    }

    /// The claim step: the call with the driver's claim committed, or as it
    /// is when this driver's accept had already finished (a retry).
    async fn claim(&self, driver: Uuid, call_id: Uuid) -> Result<(Call, Applied), CallError> {
        let mut tx = self.store.begin().await?;
        let mut call = self
            .store
            .lock(&mut tx, call_id)
            .await?
            .ok_or(CallError::NotFound(call_id))?;
        // A call another driver took is none of this driver's business.
        visible(&Caller::Driver(driver), call_id, Some(&call))?;
        if call.claim(driver, svc_kit::clock::now())? == Applied::AlreadyDone {
            return Ok((call, Applied::AlreadyDone));
        }
        self.store.update(&mut tx, &call).await?;
        tx.commit().await?;
        Ok((call, Applied::Changed))
    }

    /// Runs the remote steps of an accept the driver has claimed, and commits
    /// the outcome. Used by AcceptCall and by the sweeper after a crash.
    pub(super) async fn drive_accept(&self, call: Call, driver: Uuid) -> Result<Call, CallError> {
        let assign = AssignDriverRequest {
            call_id: call.id.to_string(),
            driver_id: driver.to_string(),
            taxi_type: call.taxi_type.into(),
        };
        let started = Instant::now();
        let assigned = self
            .dispatch
            .clone()
            .assign_driver(self.signer.service_request(assign))
            .await;
        self.metrics.accept_step(AcceptStep::Assign, started.elapsed());
        if let Err(status) = assigned {
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
        let started = Instant::now();
        let charged = self
            .payment
            .clone()
            .charge_advance(self.signer.service_request(charge))
            .await;
        self.metrics.accept_step(AcceptStep::Charge, started.elapsed());
        let entry = match charged {
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
        let started = Instant::now();
        let committed = self
            .commit_accept(call.id, driver, approved, entry.amount_krw)
            .await;
        self.metrics.accept_step(AcceptStep::Commit, started.elapsed());
        let (call, outcome) = committed?;
        self.perform_effects(&call).await;
        match outcome {
            Ok(()) if approved => {
                tracing::info!(call_id = %call.id, %driver, "call accepted");
                Ok(call)
            }
            Ok(()) => {
                tracing::info!(call_id = %call.id, "advance declined; call canceled");
                Err(CallError::FailedPrecondition(
                    "the advance payment was declined; the call is canceled".into(),
                ))
            }
            Err(refused) => Err(refused.into()),
        }
    }

    /// The commit step: ACCEPTED after an approved advance, CANCELED after a
    /// declined one, or, when the call changed meanwhile (the customer
    /// canceled first), the claim abandoned so that its steps are undone
    /// (the refusal is returned beside the call). The caller performs the
    /// effects the call owes.
    async fn commit_accept(
        &self,
        call_id: Uuid,
        driver: Uuid,
        approved: bool,
        advance_krw: i64,
    ) -> Result<(Call, Result<(), TransitionError>), CallError> {
        let now = svc_kit::clock::now();
        let mut tx = self.store.begin().await?;
        let mut call = self
            .store
            .lock(&mut tx, call_id)
            .await?
            .ok_or(CallError::NotFound(call_id))?;
        let applied = if approved {
            call.accept(driver, advance_krw, now)
        } else {
            call.decline_payment(driver, now)
        };
        match applied {
            Ok(()) => {
                self.store.update(&mut tx, &call).await?;
                outbox::append(&mut tx, &events::transition(&call, now)).await?;
                tx.commit().await?;
                self.metrics.committed(&call);
                Ok((call, Ok(())))
            }
            Err(refused) => {
                // The call changed while we were accepting it (the customer
                // canceled first): undo the assignment and the advance.
                call.abandon_claim(driver);
                self.store.update(&mut tx, &call).await?;
                tx.commit().await?;
                Ok((call, Err(refused)))
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
