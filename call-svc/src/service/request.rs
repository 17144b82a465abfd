//! QuoteFare and RequestCall: the fare is quoted here, never taken from the
//! client, and dispatch is asked whether a taxi is available first.

use svc_kit::geo::GeoPoint;
use taxi_proto::{common::v1::TaxiType, dispatch::v1::CheckAvailabilityRequest};
use uuid::Uuid;

use super::Calls;
use crate::{
    domain::{Call, CallRequest, Quote},
    error::CallError,
    events,
};

/// The answer to "is a taxi available?".
enum Availability {
    Available,
    NoneNearby,
    /// Dispatch could not be asked (down, slow, or its circuit is open).
    Unknown,
}

impl Calls {
    /// The fare RequestCall would quote for this route (no I/O).
    pub fn quote(&self, taxi_type: TaxiType, pickup: GeoPoint, dropoff: GeoPoint) -> Quote {
        self.fares.quote(taxi_type, pickup, dropoff)
    }

    /// A customer calls a taxi. The fare is quoted here, never taken from the
    /// client; no call is made when dispatch says no taxi is available, but one
    /// is when dispatch cannot be asked (fault isolation).
    pub async fn request_call(&self, request: CallRequest) -> Result<Call, CallError> {
        if let Some(existing) = self
            .store
            .get_by_idempotency_key(request.customer_id, &request.idempotency_key)
            .await?
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
                let mut tx = self.store.begin().await?;
                let rejection = self
                    .store
                    .insert_rejection(&mut tx, request.customer_id, &request.idempotency_key, id, now)
                    .await?;
                if rejection.is_new {
                    outbox::append(&mut tx, &events::rejected(id, &request, quote, now)).await?;
                }
                tx.commit().await?;
                if rejection.is_new {
                    self.metrics.rejected();
                }
                tracing::info!(call_id = %rejection.call_id, retry = !rejection.is_new, "no taxi available; call rejected");
                return Err(CallError::FailedPrecondition(format!(
                    "no {} taxi is available near the pickup",
                    request.taxi_type.as_str_name()
                )));
            }
        };

        let call = Call::request(
            id,
            request.clone(),
            quote,
            availability_unchecked,
            self.saga.search(),
            now,
        );
        let mut tx = self.store.begin().await?;
        if !self.store.insert(&mut tx, &call).await? {
            // A concurrent retry with the same key won the insert.
            tx.rollback().await?;
            let existing = self
                .store
                .get_by_idempotency_key(request.customer_id, &request.idempotency_key)
                .await?
                .ok_or_else(|| anyhow::anyhow!("call with a conflicting idempotency key vanished"))?;
            return replay(existing, &request);
        }
        outbox::append(&mut tx, &events::transition(&call, now)).await?;
        tx.commit().await?;
        self.metrics.requested();
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
