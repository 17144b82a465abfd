//! The domain events call-svc appends to its outbox, built from domain
//! values. Every call event carries the call's state after the transition, so
//! projections can replace a view with a newer one without replaying history.
//! That state is the API's own `taxi.call.v1.Call`, written by [`wire_call`],
//! which the API's answers use too: a call is copied onto the wire in one
//! place.
//!
//! call-svc publishes only: it consumes no events, and learns what dispatch
//! and payment did from their gRPC answers.

use chrono::{DateTime, Utc};
use taxi_proto::{
    call::v1 as pb,
    events::v1::{
        CallAccepted, CallCanceled, CallRejected, CallReoffered, CallRequested, CallSettled, EventEnvelope,
        TripCompleted, TripStarted, event_envelope::Payload,
    },
};
use uuid::Uuid;

use crate::domain::{Call, CallRequest, CallStatus, Quote};

/// The event recording the transition that brought `call` to its status.
pub fn transition(call: &Call, at: DateTime<Utc>) -> EventEnvelope {
    let wire = Some(wire_call(call));
    let payload = match call.status {
        // A later round of offers of a call still waiting for a driver.
        CallStatus::Requested if call.offer_round > 1 => Payload::CallReoffered(CallReoffered { call: wire }),
        CallStatus::Requested => Payload::CallRequested(CallRequested { call: wire }),
        CallStatus::Accepted => Payload::CallAccepted(CallAccepted { call: wire }),
        CallStatus::InTrip => Payload::TripStarted(TripStarted { call: wire }),
        CallStatus::Completed => Payload::TripCompleted(TripCompleted { call: wire }),
        CallStatus::Canceled => Payload::CallCanceled(CallCanceled { call: wire }),
    };
    outbox::envelope(call.id, call.version, at, payload)
}

/// The money of a finished call changed (see [`Call::record_settlement`]).
pub fn settled(call: &Call, at: DateTime<Utc>) -> EventEnvelope {
    let payload = Payload::CallSettled(CallSettled {
        call: Some(wire_call(call)),
    });
    outbox::envelope(call.id, call.version, at, payload)
}

/// No taxi was available: the demand is recorded though no call exists.
pub fn rejected(id: Uuid, request: &CallRequest, quote: Quote, at: DateTime<Utc>) -> EventEnvelope {
    let payload = Payload::CallRejected(CallRejected {
        call_id: id.to_string(),
        customer_id: request.customer_id.to_string(),
        taxi_type: request.taxi_type.into(),
        pickup: Some(request.pickup.to_proto()),
        dropoff: Some(request.dropoff.to_proto()),
        quoted_fare_krw: quote.fare_krw,
    });
    outbox::envelope(id, 1, at, payload)
}

/// `call` as `taxi.call.v1.Call`: what the API answers and what every call
/// event carries. It lives here rather than in `grpc/` because events must
/// not depend on the API; `grpc/` uses it from here.
pub fn wire_call(call: &Call) -> pb::Call {
    let ts = |at: Option<DateTime<Utc>>| at.map(svc_kit::clock::to_proto);
    pb::Call {
        call_id: call.id.to_string(),
        customer_id: call.customer_id.to_string(),
        driver_id: call.driver_id.map(|d| d.to_string()).unwrap_or_default(),
        taxi_type: call.taxi_type.into(),
        status: pb::CallStatus::from(call.status).into(),
        cancel_reason: call
            .cancel_reason
            .map_or(pb::CancelReason::Unspecified, pb::CancelReason::from)
            .into(),
        pickup: Some(call.pickup.to_proto()),
        dropoff: Some(call.dropoff.to_proto()),
        quoted_fare_krw: call.quote.fare_krw,
        estimated_distance_m: call.quote.distance_m,
        advance_krw: call.advance_krw,
        distance_m: call.distance_m.unwrap_or_default(),
        final_fare_krw: call.final_fare_krw.unwrap_or_default(),
        cancel_fee_krw: call.cancel_fee_krw,
        availability_unchecked: call.availability_unchecked,
        version: call.version,
        requested_at: Some(svc_kit::clock::to_proto(call.requested_at)),
        accepted_at: ts(call.accepted_at),
        started_at: ts(call.started_at),
        completed_at: ts(call.completed_at),
        canceled_at: ts(call.canceled_at),
        offer_round: call.offer_round,
        round_expires_at: ts(call.round_expires_at),
        expires_at: ts(call.expires_at),
        paid_krw: call.paid_krw,
        refunded_krw: call.refunded_krw,
        owed_krw: call.owed_krw,
    }
}

#[cfg(test)]
mod tests {
    use svc_kit::geo::GeoPoint;
    use taxi_proto::common::v1::TaxiType;

    use super::*;
    use crate::domain::SearchPolicy;

    #[test]
    fn a_call_event_carries_the_call_as_the_api_answers_it() {
        let point = GeoPoint {
            lat: 37.5,
            lng: 127.0,
        };
        let request = CallRequest {
            customer_id: Uuid::new_v4(),
            taxi_type: TaxiType::Normal,
            pickup: point,
            dropoff: point,
            payment_method: "tok_visa".into(),
            idempotency_key: "k".into(),
        };
        let quote = Quote {
            distance_m: 3_000,
            fare_krw: 6_000,
        };
        let at = svc_kit::clock::now();
        let search = SearchPolicy {
            round: chrono::TimeDelta::seconds(30),
            expire_after: chrono::TimeDelta::seconds(300),
        };
        let call = Call::request(Uuid::new_v4(), request, quote, false, search, at);

        let event = transition(&call, at);

        let Some(Payload::CallRequested(CallRequested { call: Some(carried) })) = event.payload else {
            panic!("not a CallRequested with its call: {event:?}");
        };
        assert_eq!(carried, wire_call(&call));
        assert_eq!(carried.status(), pb::CallStatus::Requested);
        assert_eq!(carried.estimated_distance_m, 3_000);
        assert_eq!(event.aggregate_version, carried.version);
    }
}
