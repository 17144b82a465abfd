//! Parsing requests into domain values (every bad field reported at once) and
//! rendering calls for the wire.

use chrono::{DateTime, Utc};
use svc_kit::{
    clock::to_proto as timestamp,
    geo::GeoPoint,
    validate::{InvalidArgument, Violations},
};
use taxi_proto::{call::v1 as pb, common::v1::TaxiType};
use uuid::Uuid;

use crate::domain::{Call, CallRequest};

/// Longest accepted card token.
const MAX_PAYMENT_METHOD_LEN: usize = 64;
/// Longest trip accepted, in metres.
const MAX_DISTANCE_M: i64 = 1_000_000;
/// Farthest a drop-off may lie from its pickup, in metres as the crow flies:
/// beyond it no taxi goes, and the fare would pass what payment accepts.
const MAX_ROUTE_M: f64 = 500_000.0;

/// Records a violation on `dropoff` when the route is no taxi trip.
fn check_route(pickup: Option<GeoPoint>, dropoff: Option<GeoPoint>, v: &mut Violations) {
    if let (Some(pickup), Some(dropoff)) = (pickup, dropoff)
        && pickup.distance_m(dropoff) > MAX_ROUTE_M
    {
        v.add(
            "dropoff",
            format!("must be within {} km of the pickup", MAX_ROUTE_M / 1_000.0),
        );
    }
}

pub(super) fn call_request(
    customer_id: Uuid,
    req: &pb::RequestCallRequest,
) -> Result<CallRequest, InvalidArgument> {
    let mut v = Violations::new();
    let pickup = GeoPoint::parse("pickup", req.pickup.as_ref(), &mut v);
    let dropoff = GeoPoint::parse("dropoff", req.dropoff.as_ref(), &mut v);
    let taxi_type = v.taxi_type("taxi_type", req.taxi_type);
    let idempotency_key = v.idempotency_key("idempotency_key", &req.idempotency_key);
    let payment_method = v.text("payment_method", &req.payment_method, MAX_PAYMENT_METHOD_LEN);
    check_route(pickup, dropoff, &mut v);
    v.finish()?;
    match (pickup, dropoff, taxi_type, idempotency_key, payment_method) {
        (Some(pickup), Some(dropoff), Some(taxi_type), Some(idempotency_key), Some(payment_method)) => {
            Ok(CallRequest {
                customer_id,
                taxi_type,
                pickup,
                dropoff,
                payment_method,
                idempotency_key,
            })
        }
        // Unreachable: every None above recorded a violation.
        _ => Err(InvalidArgument::field("request", "is malformed")),
    }
}

/// A route to quote: (taxi type, pickup, dropoff).
pub(super) fn quote(req: &pb::QuoteFareRequest) -> Result<(TaxiType, GeoPoint, GeoPoint), InvalidArgument> {
    let mut v = Violations::new();
    let pickup = GeoPoint::parse("pickup", req.pickup.as_ref(), &mut v);
    let dropoff = GeoPoint::parse("dropoff", req.dropoff.as_ref(), &mut v);
    let taxi_type = v.taxi_type("taxi_type", req.taxi_type);
    check_route(pickup, dropoff, &mut v);
    v.finish()?;
    match (taxi_type, pickup, dropoff) {
        (Some(taxi_type), Some(pickup), Some(dropoff)) => Ok((taxi_type, pickup, dropoff)),
        // Unreachable: every None above recorded a violation.
        _ => Err(InvalidArgument::field("request", "is malformed")),
    }
}

pub(super) fn call_id(raw: &str) -> Result<Uuid, InvalidArgument> {
    let mut v = Violations::new();
    let id = v.uuid("call_id", raw);
    v.finish()?;
    id.ok_or_else(|| InvalidArgument::field("call_id", "must be a UUID"))
}

pub(super) fn complete_trip(req: &pb::CompleteTripRequest) -> Result<(Uuid, i64), InvalidArgument> {
    let mut v = Violations::new();
    let id = v.uuid("call_id", &req.call_id);
    let distance = v.within("distance_m", req.distance_m, 0, MAX_DISTANCE_M);
    v.finish()?;
    id.zip(distance)
        .ok_or_else(|| InvalidArgument::field("request", "is malformed"))
}

pub(super) fn cancel_call(req: &pb::CancelCallRequest) -> Result<(Uuid, i64), InvalidArgument> {
    let mut v = Violations::new();
    let id = v.uuid("call_id", &req.call_id);
    let version = v.within("expected_version", req.expected_version, 0, i64::MAX);
    v.finish()?;
    id.zip(version)
        .ok_or_else(|| InvalidArgument::field("request", "is malformed"))
}

pub(super) fn call(call: &Call) -> pb::Call {
    let ts = |at: Option<DateTime<Utc>>| at.map(timestamp);
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
        requested_at: Some(timestamp(call.requested_at)),
        accepted_at: ts(call.accepted_at),
        started_at: ts(call.started_at),
        completed_at: ts(call.completed_at),
        canceled_at: ts(call.canceled_at),
    }
}
