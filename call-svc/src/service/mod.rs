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
//!
//! [`Calls`] is one struct; its `impl` blocks are spread over one file per
//! use case:
//!
//! - `request`: QuoteFare and RequestCall (with the availability check);
//! - `accept`: AcceptCall and the accept's remote steps;
//! - `trip`: StartTrip and CompleteTrip;
//! - `cancel`: CancelCall;
//! - `balance`: SettleBalance, paying what a finished call owes with another card;
//! - `effects`: performing the owed effects and scheduling their retries;
//! - [`sweep`]: one sweep round (expiry, unfinished accepts, owed effects)
//!   and [`sweep::run`], the loop that repeats it;
//! - [`metrics`]: the saga's Prometheus families ([`SagaMetrics`]), which
//!   the use cases record into right after their commits and which
//!   [`Calls::register_metrics`] registers.
//!
//! This file holds the struct, GetCall and the helpers the use cases share
//! (applying a change to a locked call).
//!
//! [`Effects`]: crate::domain::Effects

mod accept;
mod balance;
mod cancel;
mod effects;
pub mod metrics;
mod request;
pub mod sweep;
mod trip;

use std::time::Duration;

pub use metrics::SagaMetrics;

use chrono::{DateTime, Utc};
use svc_kit::{
    backoff::Backoff,
    breaker::CircuitBreaker,
    failure::FailureKind,
    identity::{Caller, Signer},
    metrics::Registry,
};
use taxi_proto::{
    dispatch::v1::dispatch_service_client::DispatchServiceClient,
    payment::v1::payment_service_client::PaymentServiceClient,
};
use tonic::Status;
use uuid::Uuid;

use crate::{
    config::{Config, SagaConfig},
    domain::{Applied, Call, CallStatus, FareTable},
    error::CallError,
    events,
    store::Store,
};

/// A channel to dispatch-svc or payment-svc, its calls traced and counted.
pub use svc_kit::grpc::Upstream;

/// call-svc's use cases, shared by the gRPC API and the sweeper.
pub struct Calls {
    store: Store,
    dispatch: DispatchServiceClient<Upstream>,
    payment: PaymentServiceClient<Upstream>,
    /// Signs call-svc's own identity on its calls to dispatch and payment.
    signer: Signer,
    dispatch_breaker: CircuitBreaker,
    fares: FareTable,
    saga: SagaConfig,
    /// When the sweeper next retries effects that failed.
    effect_retry: Backoff,
    metrics: SagaMetrics,
}

impl Calls {
    pub fn new(
        store: Store,
        dispatch: DispatchServiceClient<Upstream>,
        payment: PaymentServiceClient<Upstream>,
        signer: Signer,
        config: &Config,
    ) -> Self {
        Self {
            store,
            dispatch,
            payment,
            signer,
            dispatch_breaker: CircuitBreaker::new(
                config.saga.dispatch_failure_threshold,
                Duration::from_millis(config.saga.dispatch_open_ms),
            ),
            fares: config.fares.clone(),
            saga: config.saga.clone(),
            effect_retry: Backoff::new(
                Duration::from_millis(config.saga.effect_retry_base_ms),
                Duration::from_millis(config.saga.effect_retry_max_ms),
            ),
            metrics: SagaMetrics::default(),
        }
    }

    /// What canceling costs once a driver has accepted (at most the advance).
    pub fn cancel_fee_krw(&self) -> i64 {
        self.saga.cancel_fee_krw
    }

    /// Registers the saga's metrics (see [`metrics`]) in `registry`. Once
    /// per registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(registry);
    }

    /// Reads a call: its customer, its driver (or any driver while it is still
    /// open for offers), analysts and services may; anyone else is answered
    /// as if it did not exist.
    pub async fn get_call(&self, caller: &Caller, call_id: Uuid) -> Result<Call, CallError> {
        let call = self.store.get(call_id).await?;
        visible(caller, call_id, call.as_ref())?;
        call.ok_or(CallError::NotFound(call_id))
    }

    /// Locks a call, applies a change that emits no event, and commits.
    async fn update_locked(
        &self,
        call_id: Uuid,
        change: impl FnOnce(&mut Call) -> Result<(), CallError>,
    ) -> Result<Call, CallError> {
        let mut tx = self.store.begin().await?;
        let mut call = self
            .store
            .lock(&mut tx, call_id)
            .await?
            .ok_or(CallError::NotFound(call_id))?;
        change(&mut call)?;
        self.store.update(&mut tx, &call).await?;
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
        let mut tx = self.store.begin().await?;
        let mut call = self
            .store
            .lock(&mut tx, call_id)
            .await?
            .ok_or(CallError::NotFound(call_id))?;
        if apply(&mut call, now)? == Applied::Changed {
            self.store.update(&mut tx, &call).await?;
            outbox::append(&mut tx, &events::transition(&call, now)).await?;
            tx.commit().await?;
            self.metrics.committed(&call);
            tracing::info!(call_id = %call.id, status = %call.status, version = call.version, "call changed");
        }
        self.perform_effects(&call).await;
        Ok(call)
    }
}

/// Whether `caller` may know that `call` exists: its customer, its driver,
/// any driver while it is open for offers, analysts and services.
fn may_see(caller: &Caller, call: &Call) -> bool {
    match caller {
        Caller::Customer(id) => call.customer_id == *id,
        Caller::Driver(id) => call.driver_id == Some(*id) || call.status == CallStatus::Requested,
        Caller::Analyst(_) | Caller::Service(_) => true,
    }
}

/// NOT_FOUND, word for word as for an unknown id, unless `caller` may see
/// `call`: whoever may not see a call must not learn that it exists, so
/// every use case checks this before any rule that would say more.
fn visible(caller: &Caller, call_id: Uuid, call: Option<&Call>) -> Result<(), CallError> {
    match call {
        Some(call) if may_see(caller, call) => Ok(()),
        _ => Err(CallError::NotFound(call_id)),
    }
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
