//! Parsing requests into domain values (every bad field reported at once).
//! A call goes onto the wire through [`crate::events::wire_call`], the same
//! function that writes it into the call events.

use svc_kit::{
    geo::GeoPoint,
    validate::{InvalidArgument, Violations},
};
use taxi_proto::{call::v1 as pb, common::v1::TaxiType};
use uuid::Uuid;

use crate::domain::CallRequest;

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
    // Required: the fare is priced by it, and 0 is what a client that left
    // it out sends, so it is never taken for a trip of no length.
    let distance = if req.distance_m == 0 {
        v.add(
            "distance_m",
            format!("is required: the metres driven, 1..={MAX_DISTANCE_M}"),
        );
        None
    } else {
        v.within("distance_m", req.distance_m, 1, MAX_DISTANCE_M)
    };
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

/// (call id, card) of a SettleBalance.
pub(super) fn settle_balance(req: &pb::SettleBalanceRequest) -> Result<(Uuid, String), InvalidArgument> {
    let mut v = Violations::new();
    let id = v.uuid("call_id", &req.call_id);
    let payment_method = v.text("payment_method", &req.payment_method, MAX_PAYMENT_METHOD_LEN);
    v.finish()?;
    id.zip(payment_method)
        .ok_or_else(|| InvalidArgument::field("request", "is malformed"))
}
