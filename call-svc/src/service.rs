//! The use cases of call-svc and the trip saga it orchestrates.
//!
//! Every state change is committed together with its event (outbox). Remote
//! steps are made outside transactions and are idempotent (each carries a key
//! derived from the call), so a retry, a second replica or the sweeper can
//! repeat any of them safely:
//!
//! - accept: claim the call, `AssignDriver` (always before payment), then
//!   `ChargeAdvance`, then commit ACCEPTED. A declined advance cancels the call;
//!   a cancel that commits first makes the accept undo its own steps.
//! - complete and cancel commit first and record the [`Effects`] they owe
//!   (`SettleFinal`, `ReleaseDriver`), which run right after the commit and are
//!   retried by the sweeper until they succeed, with exponential back-off and
//!   under a lease, so that one replica at a time retries them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt as _};
use sqlx::PgPool;
use svc_kit::{
    breaker::CircuitBreaker,
    failure::FailureKind,
    geo::GeoPoint,
    identity::{Caller, Signer},
};
use taxi_proto::{
    common::v1::TaxiType,
    dispatch::v1::{
        AssignDriverRequest, CheckAvailabilityRequest, ReleaseDriverRequest,
        dispatch_service_client::DispatchServiceClient,
    },
    payment::v1::{
        ChargeAdvanceRequest, EntryStatus, SettleFinalRequest, payment_service_client::PaymentServiceClient,
    },
};
use tonic::{Status, transport::Channel};
use uuid::Uuid;

use crate::{
    config::{Config, SagaConfig},
    domain::{
        Applied, Call, CallRequest, CallStatus, CancelReason, Effects, FareTable, Quote, effect_backoff,
    },
    error::CallError,
    events, store,
};

/// How call-svc identifies itself to the services it calls.
/// How many rows one sweep takes of each kind.
const SWEEP_BATCH: i64 = 100;

/// Calls one sweep works on at once: a backend that hangs until its deadline
/// then holds up a few calls, not the whole round.
const SWEEP_CONCURRENCY: usize = 4;

/// Retries of owed effects after which every further failure is logged as an
/// error: someone should look, though the retries go on (money must settle).
const EFFECTS_NEED_ATTENTION_AFTER: i32 = 10;

/// The answer to "is a taxi available?".
enum Availability {
    Available,
    NoneNearby,
    /// Dispatch could not be asked (down, slow, or its circuit is open).
    Unknown,
}

/// call-svc's use cases, shared by the gRPC API and the sweeper.
pub struct Calls {
    pool: PgPool,
    dispatch: DispatchServiceClient<Channel>,
    payment: PaymentServiceClient<Channel>,
    /// Signs call-svc's own identity on its calls to dispatch and payment.
    signer: Signer,
    dispatch_breaker: CircuitBreaker,
    fares: FareTable,
    saga: SagaConfig,
}

impl Calls {
    pub fn new(
        pool: PgPool,
        dispatch: DispatchServiceClient<Channel>,
        payment: PaymentServiceClient<Channel>,
        signer: Signer,
        config: &Config,
    ) -> Self {
        Self {
            pool,
            dispatch,
            payment,
            signer,
            dispatch_breaker: CircuitBreaker::new(
                config.saga.dispatch_failure_threshold,
                Duration::from_millis(config.saga.dispatch_open_ms),
            ),
            fares: config.fares.clone(),
            saga: config.saga.clone(),
        }
    }

    /// The fare RequestCall would quote for this route (no I/O).
    pub fn quote(&self, taxi_type: TaxiType, pickup: GeoPoint, dropoff: GeoPoint) -> Quote {
        self.fares.quote(taxi_type, pickup, dropoff)
    }

    /// A customer calls a taxi. The fare is quoted here, never taken from the
    /// client; no call is made when dispatch says no taxi is available, but one
    /// is when dispatch cannot be asked (fault isolation).
    pub async fn request_call(&self, request: CallRequest) -> Result<Call, CallError> {
        if let Some(existing) =
            store::get_by_idempotency_key(&self.pool, request.customer_id, &request.idempotency_key).await?
        {
            return replay(existing, &request);
        }
        let now = svc_kit::clock::now();
        let id = Uuid::new_v4();
        let quote = self
            .fares
            .quote(request.taxi_type, request.pickup, request.dropoff);
        let availability_unchecked = match self.check_availability(&request).await {
            Availability::Available => false,
            Availability::Unknown => true,
            Availability::NoneNearby => {
                // A retry of a rejected request (same key) is the same unmet
                // demand: the dashboard must count it once.
                let mut tx = self.pool.begin().await?;
                let rejection =
                    store::insert_rejection(&mut tx, request.customer_id, &request.idempotency_key, id, now)
                        .await?;
                if rejection.is_new {
                    outbox::append(&mut tx, &events::rejected(id, &request, quote, now)).await?;
                }
                tx.commit().await?;
                tracing::info!(call_id = %rejection.call_id, retry = !rejection.is_new, "no taxi available; call rejected");
                return Err(CallError::FailedPrecondition(format!(
                    "no {} taxi is available near the pickup",
                    request.taxi_type.as_str_name()
                )));
            }
        };

        let call = Call::request(id, request.clone(), quote, availability_unchecked, now);
        let mut tx = self.pool.begin().await?;
        if !store::insert(&mut tx, &call).await? {
            // A concurrent retry with the same key won the insert.
            tx.rollback().await?;
            let existing =
                store::get_by_idempotency_key(&self.pool, request.customer_id, &request.idempotency_key)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("call with a conflicting idempotency key vanished"))?;
            return replay(existing, &request);
        }
        outbox::append(&mut tx, &events::transition(&call, now)).await?;
        tx.commit().await?;
        tracing::info!(call_id = %call.id, availability_unchecked, "call requested");
        Ok(call)
    }

    async fn check_availability(&self, request: &CallRequest) -> Availability {
        if !self.dispatch_breaker.allow() {
            return Availability::Unknown;
        }
        let check = CheckAvailabilityRequest {
            taxi_type: request.taxi_type.into(),
            pickup: Some(request.pickup.to_proto()),
            radius_m: 0,
        };
        match self
            .dispatch
            .clone()
            .check_availability(self.signer.service_request(check))
            .await
        {
            Ok(response) => {
                self.dispatch_breaker.record_success();
                if response.into_inner().available_drivers > 0 {
                    Availability::Available
                } else {
                    Availability::NoneNearby
                }
            }
            Err(status) => {
                self.dispatch_breaker.record_failure();
                tracing::warn!(code = ?status.code(), message = status.message(), "availability unknown; accepting the call unchecked");
                Availability::Unknown
            }
        }
    }

    /// A driver accepts a call. Exactly one driver can hold the claim; the
    /// claimant assigns themself, then pays the advance, then commits.
    pub async fn accept_call(&self, driver: Uuid, call_id: Uuid) -> Result<Call, CallError> {
        let mut tx = self.pool.begin().await?;
        let mut call = store::lock(&mut tx, call_id)
            .await?
            .ok_or(CallError::NotFound(call_id))?;
        if call.claim(driver, svc_kit::clock::now())? == Applied::AlreadyDone {
            return Ok(call);
        }
        store::update(&mut tx, &call).await?;
        tx.commit().await?;
        self.drive_accept(call, driver).await
    }

    /// Runs the remote steps of an accept the driver has claimed, and commits
    /// the outcome. Used by AcceptCall and by the sweeper after a crash.
    async fn drive_accept(&self, call: Call, driver: Uuid) -> Result<Call, CallError> {
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
        let mut tx = self.pool.begin().await?;
        let mut call = store::lock(&mut tx, call.id)
            .await?
            .ok_or(CallError::NotFound(call.id))?;
        let applied = if approved {
            call.accept(driver, entry.amount_krw, now)
        } else {
            call.decline_payment(driver, now)
        };
        match applied {
            Ok(()) => {
                store::update(&mut tx, &call).await?;
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
                store::update(&mut tx, &call).await?;
                tx.commit().await?;
                self.perform_effects(&call).await;
                Err(refused.into())
            }
        }
    }

    async fn abandon_claim(&self, call_id: Uuid, driver: Uuid) -> Result<Call, CallError> {
        self.update_locked(call_id, |call| {
            call.abandon_claim(driver);
            Ok(())
        })
        .await
    }

    /// Locks a call, applies a change that emits no event, and commits.
    async fn update_locked(
        &self,
        call_id: Uuid,
        change: impl FnOnce(&mut Call) -> Result<(), CallError>,
    ) -> Result<Call, CallError> {
        let mut tx = self.pool.begin().await?;
        let mut call = store::lock(&mut tx, call_id)
            .await?
            .ok_or(CallError::NotFound(call_id))?;
        change(&mut call)?;
        store::update(&mut tx, &call).await?;
        tx.commit().await?;
        Ok(call)
    }

    /// Locks a call, applies a transition and, when it changed the call,
    /// commits it with its event and performs the effects it owes.
    async fn transition(
        &self,
        call_id: Uuid,
        apply: impl FnOnce(&mut Call, DateTime<Utc>) -> Result<Applied, CallError>,
    ) -> Result<Call, CallError> {
        let now = svc_kit::clock::now();
        let mut tx = self.pool.begin().await?;
        let mut call = store::lock(&mut tx, call_id)
            .await?
            .ok_or(CallError::NotFound(call_id))?;
        if apply(&mut call, now)? == Applied::Changed {
            store::update(&mut tx, &call).await?;
            outbox::append(&mut tx, &events::transition(&call, now)).await?;
            tx.commit().await?;
            tracing::info!(call_id = %call.id, status = %call.status, version = call.version, "call changed");
        }
        self.perform_effects(&call).await;
        Ok(call)
    }

    /// The assigned driver departs with the customer.
    pub async fn start_trip(&self, driver: Uuid, call_id: Uuid) -> Result<Call, CallError> {
        self.transition(call_id, |call, now| Ok(call.start(driver, now)?))
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
            let rule = *self.fares.rule(call.taxi_type);
            Ok(call.complete(driver, distance_m, &rule, now)?)
        })
        .await
    }

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
            call.require_owner(customer, "cancel")?;
            if call.status == CallStatus::Canceled && call.cancel_reason == Some(CancelReason::Customer) {
                return Ok(Applied::AlreadyDone);
            }
            call.require_version(expected_version)?;
            Ok(call.cancel(CancelReason::Customer, fee, now)?)
        })
        .await
    }

    /// Reads a call: its customer, its driver (or any driver while it is still
    /// open for offers), analysts and services may.
    pub async fn get_call(&self, caller: &Caller, call_id: Uuid) -> Result<Call, CallError> {
        let call = store::get(&self.pool, call_id)
            .await?
            .ok_or(CallError::NotFound(call_id))?;
        let allowed = match caller {
            Caller::Customer(id) => call.customer_id == *id,
            Caller::Driver(id) => call.driver_id == Some(*id) || call.status == CallStatus::Requested,
            Caller::Analyst(_) | Caller::Service(_) => true,
        };
        if allowed {
            Ok(call)
        } else {
            Err(CallError::PermissionDenied(
                "this call belongs to someone else".into(),
            ))
        }
    }

    /// Performs the effects a committed transition owes, right after the
    /// commit, then forgets them. A failure is logged and left to the
    /// sweeper, which first retries after the base delay.
    async fn perform_effects(&self, call: &Call) {
        if call.effects.is_empty() {
            return;
        }
        self.attempt_effects(call.id, call.effects, 0).await;
    }

    /// Attempts `effects` after `attempts` retries by the sweeper (0: the
    /// attempt right after the commit); when it fails, schedules the next one.
    async fn attempt_effects(&self, call_id: Uuid, effects: Effects, attempts: i32) {
        let Err((owed, status)) = self.try_effects(call_id, effects).await else {
            return;
        };
        let delay = effect_backoff(
            u32::try_from(attempts).unwrap_or(0),
            Duration::from_millis(self.saga.effect_retry_base_ms),
            Duration::from_millis(self.saga.effect_retry_max_ms),
            jitter_seed(call_id),
        );
        let now = svc_kit::clock::now();
        let next_at = chrono::Duration::from_std(delay)
            .ok()
            .and_then(|delay| now.checked_add_signed(delay))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if let Err(error) = store::reschedule_effects(&self.pool, call_id, owed, attempts, next_at).await {
            // The effects stay due (or leased); a later sweep retries them.
            tracing::warn!(%call_id, error = ?error, "cannot reschedule the effects");
        }
        let (code, message) = (status.code(), status.message());
        if attempts >= EFFECTS_NEED_ATTENTION_AFTER {
            tracing::error!(%call_id, attempts, ?code, message, retry_in = ?delay, "owed effects keep failing and need attention");
        } else if attempts == 0 {
            tracing::warn!(%call_id, ?code, message, retry_in = ?delay, "effects deferred to the sweeper");
        } else {
            tracing::warn!(%call_id, attempts, ?code, message, retry_in = ?delay, "owed effects failed again");
        }
    }

    /// Performs each owed effect on its own, side by side (a payment outage
    /// must not keep the driver on the call), and forgets the ones done.
    /// On failure, returns what is still owed and why.
    async fn try_effects(&self, call_id: Uuid, effects: Effects) -> Result<(), (Effects, Status)> {
        let settle = async {
            match effects.settle_krw {
                Some(amount) => self.settle(call_id, amount).await.map(|()| Some(amount)),
                None => Ok(None),
            }
        };
        let release = async {
            match effects.release_driver {
                Some(driver) => self.release(call_id, driver).await.map(|()| Some(driver)),
                None => Ok(None),
            }
        };
        let (settled, released) = tokio::join!(settle, release);
        let done = Effects {
            settle_krw: settled.as_ref().ok().copied().flatten(),
            release_driver: released.as_ref().ok().copied().flatten(),
        };
        let owed = Effects {
            settle_krw: effects.settle_krw.filter(|_| settled.is_err()),
            release_driver: effects.release_driver.filter(|_| released.is_err()),
        };
        if let Err(error) = store::clear_done_effects(&self.pool, call_id, done).await {
            return Err((effects, Status::internal(format!("{error:#}"))));
        }
        match (settled, released) {
            (Ok(_), Ok(_)) => Ok(()),
            (Err(status), _) | (_, Err(status)) => Err((owed, status)),
        }
    }

    /// Brings what the customer paid for the call to `amount_krw`. A declined
    /// charge is a failure: the call stays owed its settlement.
    async fn settle(&self, call_id: Uuid, amount_krw: i64) -> Result<(), Status> {
        let settle = SettleFinalRequest {
            call_id: call_id.to_string(),
            final_amount_krw: amount_krw,
            idempotency_key: format!("{call_id}/settle"),
        };
        let settled = self
            .payment
            .clone()
            .settle_final(self.signer.service_request(settle))
            .await?
            .into_inner();
        match settled.entry {
            Some(entry) if entry.status() == EntryStatus::Declined => {
                Err(Status::failed_precondition(format!(
                    "the settlement to {amount_krw} KRW was declined ({} KRW unpaid)",
                    entry.amount_krw
                )))
            }
            _ => Ok(()),
        }
    }

    async fn release(&self, call_id: Uuid, driver: Uuid) -> Result<(), Status> {
        let release = ReleaseDriverRequest {
            call_id: call_id.to_string(),
            driver_id: driver.to_string(),
        };
        self.dispatch
            .clone()
            .release_driver(self.signer.service_request(release))
            .await?;
        Ok(())
    }

    /// One round of the sweeper.
    pub async fn sweep(&self) -> anyhow::Result<()> {
        let now = svc_kit::clock::now();
        self.expire(now).await?;
        // How long a saga step may run before it counts as crashed.
        let stale_after = chrono::Duration::milliseconds(i64::try_from(self.saga.stale_after_ms)?);
        let stale = now - stale_after;
        let claims = store::claims_older_than(&self.pool, stale, SWEEP_BATCH).await?;
        stream::iter(claims)
            .for_each_concurrent(SWEEP_CONCURRENCY, |call| async move {
                match store::take_claim_lease(&self.pool, &call, svc_kit::clock::now()).await {
                    Ok(true) => self.recover_claim(call).await,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(call_id = %call.id, error = ?error, "cannot lease the claim")
                    }
                }
            })
            .await;
        // A lease lasts as long as a saga step may run, so a slow attempt is
        // not joined by another replica's.
        let due = store::effects_due(&self.pool, now, stale, SWEEP_BATCH).await?;
        stream::iter(due)
            .for_each_concurrent(SWEEP_CONCURRENCY, |call_id| async move {
                let now = svc_kit::clock::now();
                match store::take_effects_lease(&self.pool, call_id, now, stale, now + stale_after).await {
                    Ok(Some(leased)) => {
                        self.attempt_effects(call_id, leased.effects, leased.attempts)
                            .await;
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%call_id, error = ?error, "cannot lease the owed effects"),
                }
            })
            .await;
        Ok(())
    }

    async fn expire(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let cutoff = now - chrono::Duration::milliseconds(i64::try_from(self.saga.expire_after_ms)?);
        let mut tx = self.pool.begin().await?;
        let calls = store::expire_candidates(&mut tx, cutoff, SWEEP_BATCH).await?;
        for mut call in calls {
            if call.cancel(CancelReason::Expired, 0, now)? == Applied::Changed {
                store::update(&mut tx, &call).await?;
                outbox::append(&mut tx, &events::transition(&call, now)).await?;
                tracing::info!(call_id = %call.id, "call expired");
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Finishes an accept left half-way: forward while the call still waits
    /// for a driver, otherwise undo what it may have done. An accept still
    /// unfinished well after the call would have expired (a backend it needs
    /// stays down) is given up: the call expires.
    async fn recover_claim(&self, call: Call) {
        let Some(claim) = call.claim else { return };
        let (call_id, driver) = (call.id, claim.driver_id);
        tracing::info!(%call_id, %driver, "recovering an unfinished accept");
        let give_up_after = chrono::Duration::milliseconds(
            i64::try_from(self.saga.expire_after_ms + self.saga.stale_after_ms).unwrap_or(i64::MAX),
        );
        let overdue = svc_kit::clock::now() - call.requested_at > give_up_after;
        let outcome = if call.status == CallStatus::Requested && overdue {
            tracing::warn!(%call_id, %driver, "an accept could not finish in time; the call expires");
            self.transition(call_id, |call, now| Ok(call.give_up_accept(driver, now)?))
                .await
                .map(drop)
        } else if call.status == CallStatus::Requested {
            self.drive_accept(call, driver).await.map(drop)
        } else {
            match self.abandon_claim(call_id, driver).await {
                Ok(call) => {
                    self.perform_effects(&call).await;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        if let Err(error) = outcome {
            tracing::info!(%call_id, error = %error, "accept recovery ended");
        }
    }
}

/// The answer to a retried RequestCall: the same call, unless the key was
/// reused for a different request.
fn replay(existing: Call, request: &CallRequest) -> Result<Call, CallError> {
    if request.matches(&existing) {
        Ok(existing)
    } else {
        Err(CallError::FailedPrecondition(
            "idempotency_key was already used for a different request".into(),
        ))
    }
}

/// Spreads the retries of different calls' effects (see [`effect_backoff`]).
fn jitter_seed(call_id: Uuid) -> u64 {
    let (high, low) = call_id.as_u64_pair();
    high ^ low
}

/// Whether a failed remote step must be retried rather than undone.
///
/// Only a refusal (the caller's kind: the driver is taken, the card declined)
/// says the step did not happen and never will, so only a refusal is
/// compensated. Transient failures may succeed later, and a permanent one
/// (INTERNAL) leaves the outcome unknown: the step may have happened before
/// the backend failed. Retrying both is safe because every step carries an
/// idempotency key, and it is required because money must settle.
fn is_transient(status: &Status) -> bool {
    match FailureKind::of_status(status) {
        FailureKind::Caller => false,
        FailureKind::Transient => true,
        FailureKind::Permanent => {
            tracing::error!(code = ?status.code(), message = status.message(), "a backend failed; retrying the step");
            true
        }
    }
}
