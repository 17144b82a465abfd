//! What an event means for the read models, decided without I/O: the call
//! view it carries (if any), the dashboard counters it bumps and the customer
//! activity it records. The store applies the result atomically.

use chrono::{DateTime, Utc};
use taxi_proto::{
    call::v1::{Call, CallStatus, CancelReason},
    events::v1::{EventEnvelope, event_envelope::Payload},
    query::v1::CallView,
};
use uuid::Uuid;

use super::counters::{self, Counter};

/// The writes one event asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// `call`, `driver` or `payment`: with `aggregate_id`, names the set of
    /// events already applied.
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    /// This event's entry in that set: `{version}:{event_type}`.
    pub dedupe_member: String,
    /// The call's state after the event, for call transitions.
    pub view: Option<ViewUpdate>,
    /// A new call of a customer (CallRequested).
    pub customer_call: Option<CustomerCall>,
    /// Dashboard increments, bucketed by `at`.
    pub counters: Option<Counters>,
}

/// A call view at some version.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewUpdate {
    pub call_id: Uuid,
    pub customer_id: Uuid,
    pub requested_at: DateTime<Utc>,
    pub view: CallView,
}

/// A customer's call, for the per-customer activity.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerCall {
    pub customer_id: Uuid,
    pub requested_at: DateTime<Utc>,
}

/// Counter increments in the hour and day buckets of `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Counters {
    pub at: DateTime<Utc>,
    pub increments: Vec<(String, i64)>,
}

/// An event that can never be projected: dead-letter it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("uninterpretable event: {0}")]
pub struct Uninterpretable(pub String);

fn bad(msg: impl Into<String>) -> Uninterpretable {
    Uninterpretable(msg.into())
}

/// Interprets `event`: `Ok(None)` for events the read models do not use
/// (driver and payment events), `Err` for events that make no sense.
pub fn interpret(event: &EventEnvelope) -> Result<Option<Projection>, Uninterpretable> {
    let payload = event.payload.as_ref().ok_or_else(|| {
        bad(format!(
            "event {} has no payload this version knows",
            event.event_id
        ))
    })?;
    let event_type = payload.event_type();
    let call = match payload {
        Payload::CallRequested(e) => e.call.as_ref(),
        Payload::CallAccepted(e) => e.call.as_ref(),
        Payload::TripStarted(e) => e.call.as_ref(),
        Payload::TripCompleted(e) => e.call.as_ref(),
        Payload::CallCanceled(e) => e.call.as_ref(),
        Payload::CallReoffered(e) => e.call.as_ref(),
        Payload::CallSettled(e) => e.call.as_ref(),
        Payload::CallRejected(_) => None,
        // Driver and payment events change no read model yet; the payment
        // declines the dashboard shows are the calls canceled for that reason.
        _ => return Ok(None),
    };
    let aggregate_id = uuid("aggregate_id", &event.aggregate_id)?;
    if event.aggregate_version <= 0 {
        return Err(bad(format!(
            "{event_type} has version {}",
            event.aggregate_version
        )));
    }
    let mut projection = Projection {
        aggregate_type: non_empty("aggregate_type", &event.aggregate_type)?.to_owned(),
        aggregate_id,
        dedupe_member: format!("{}:{event_type}", event.aggregate_version),
        view: None,
        customer_call: None,
        counters: None,
    };
    if let Payload::CallRejected(rejected) = payload {
        let at = timestamp("occurred_at", event.occurred_at.as_ref())?;
        projection.counters = Some(Counters {
            at,
            increments: counters::for_status(Counter::Rejected, rejected.taxi_type, 1),
        });
        return Ok(Some(projection));
    }
    let call = call.ok_or_else(|| bad(format!("{event_type} without a call snapshot")))?;
    let update = view_update(call)?;
    if update.call_id != aggregate_id {
        return Err(bad(format!(
            "{event_type} about call {} carries call {}",
            aggregate_id, update.call_id
        )));
    }
    let view = &update.view;
    let taxi_type = view.taxi_type;
    let occurred = event.occurred_at.as_ref();
    // Each transition is bucketed by its own time; the envelope's time only
    // stands in when the event's call lacks it.
    let when = |field: &str, at: Option<&prost_types::Timestamp>| timestamp(field, at.or(occurred));
    let counters = match payload {
        Payload::CallRequested(_) => {
            projection.customer_call = Some(CustomerCall {
                customer_id: update.customer_id,
                requested_at: update.requested_at,
            });
            Counters {
                at: update.requested_at,
                increments: counters::for_status(Counter::Requested, taxi_type, 1),
            }
        }
        Payload::CallAccepted(_) => {
            let at = when("accepted_at", view.accepted_at.as_ref())?;
            let wait_ms = (at - update.requested_at).num_milliseconds().max(0);
            let mut increments = counters::for_status(Counter::Accepted, taxi_type, 1);
            increments.push((Counter::WaitMsSum.field().to_owned(), wait_ms));
            increments.push((Counter::Waits.field().to_owned(), 1));
            Counters { at, increments }
        }
        // A new round of offers, or the money of a finished call settling,
        // changes the view, not the dashboard.
        Payload::CallReoffered(_) | Payload::CallSettled(_) => Counters {
            at: timestamp("occurred_at", occurred)?,
            increments: Vec::new(),
        },
        Payload::TripStarted(_) => Counters {
            at: when("started_at", view.started_at.as_ref())?,
            increments: counters::for_status(Counter::Started, taxi_type, 1),
        },
        Payload::TripCompleted(_) => {
            let mut increments = counters::for_status(Counter::Completed, taxi_type, 1);
            increments.push((Counter::RevenueKrw.field().to_owned(), view.final_fare_krw));
            Counters {
                at: when("completed_at", view.completed_at.as_ref())?,
                increments,
            }
        }
        Payload::CallCanceled(_) => {
            let mut increments = counters::for_status(Counter::Canceled, taxi_type, 1);
            match CancelReason::try_from(view.cancel_reason) {
                Ok(CancelReason::Expired) => increments.push((Counter::Expired.field().to_owned(), 1)),
                Ok(CancelReason::PaymentDeclined) => {
                    increments.push((Counter::PaymentDeclined.field().to_owned(), 1));
                }
                _ => {}
            }
            if view.cancel_fee_krw != 0 {
                increments.push((Counter::RevenueKrw.field().to_owned(), view.cancel_fee_krw));
            }
            Counters {
                at: when("canceled_at", view.canceled_at.as_ref())?,
                increments,
            }
        }
        _ => return Err(bad(format!("{event_type} is not a call transition"))),
    };
    projection.counters = Some(counters);
    projection.view = Some(update);
    Ok(Some(projection))
}

/// The view of the call an event carries: the one place a `taxi.call.v1.Call`
/// becomes a `CallView`, once its ids, enums, version and times are known to
/// make sense.
fn view_update(s: &Call) -> Result<ViewUpdate, Uninterpretable> {
    let call_id = uuid("call.call_id", &s.call_id)?;
    let customer_id = uuid("call.customer_id", &s.customer_id)?;
    if !s.driver_id.is_empty() {
        uuid("call.driver_id", &s.driver_id)?;
    }
    // The event carries the API's own enums, so the view takes them as they
    // are once they are known values.
    if s.status() == CallStatus::Unspecified {
        return Err(bad(format!("unknown call status {}", s.status)));
    }
    if CancelReason::try_from(s.cancel_reason).is_err() {
        return Err(bad(format!("unknown cancel reason {}", s.cancel_reason)));
    }
    if s.version <= 0 {
        return Err(bad(format!("call snapshot version {}", s.version)));
    }
    let requested_at = timestamp("call.requested_at", s.requested_at.as_ref())?;
    for (field, at) in [
        ("call.accepted_at", &s.accepted_at),
        ("call.started_at", &s.started_at),
        ("call.completed_at", &s.completed_at),
        ("call.canceled_at", &s.canceled_at),
    ] {
        if at.is_some() {
            timestamp(field, at.as_ref())?;
        }
    }
    let view = CallView {
        call_id: call_id.to_string(),
        customer_id: customer_id.to_string(),
        driver_id: s.driver_id.clone(),
        taxi_type: s.taxi_type,
        status: s.status,
        cancel_reason: s.cancel_reason,
        pickup: s.pickup,
        dropoff: s.dropoff,
        quoted_fare_krw: s.quoted_fare_krw,
        advance_krw: s.advance_krw,
        distance_m: s.distance_m,
        final_fare_krw: s.final_fare_krw,
        cancel_fee_krw: s.cancel_fee_krw,
        availability_unchecked: s.availability_unchecked,
        version: s.version,
        requested_at: s.requested_at,
        accepted_at: s.accepted_at,
        started_at: s.started_at,
        completed_at: s.completed_at,
        canceled_at: s.canceled_at,
        offer_round: s.offer_round,
        round_expires_at: s.round_expires_at,
        expires_at: s.expires_at,
        paid_krw: s.paid_krw,
        refunded_krw: s.refunded_krw,
        owed_krw: s.owed_krw,
    };
    Ok(ViewUpdate {
        call_id,
        customer_id,
        requested_at,
        view,
    })
}

fn non_empty<'a>(field: &str, value: &'a str) -> Result<&'a str, Uninterpretable> {
    if value.is_empty() {
        Err(bad(format!("{field} is empty")))
    } else {
        Ok(value)
    }
}

fn uuid(field: &str, value: &str) -> Result<Uuid, Uninterpretable> {
    Uuid::parse_str(value).map_err(|_| bad(format!("{field} {value:?} is not a UUID")))
}

fn timestamp(field: &str, at: Option<&prost_types::Timestamp>) -> Result<DateTime<Utc>, Uninterpretable> {
    let at = at.ok_or_else(|| bad(format!("{field} is missing")))?;
    svc_kit::clock::from_proto(at).ok_or_else(|| bad(format!("{field} is out of range")))
}

/// True for the statuses after which a call never changes again.
pub fn is_terminal(view: &CallView) -> bool {
    matches!(
        CallStatus::try_from(view.status),
        Ok(CallStatus::Completed | CallStatus::Canceled)
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use outbox::envelope;
    use svc_kit::clock::to_proto as ts;
    use taxi_proto::{
        common::v1::TaxiType,
        events::v1::{CallAccepted, CallCanceled, CallRejected, CallRequested, DriverOnline},
    };

    use super::*;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 5, 17, h, m, 0)
            .single()
            .expect("valid time")
    }

    fn snapshot(call_id: Uuid, status: CallStatus, version: i64) -> Call {
        Call {
            call_id: call_id.to_string(),
            customer_id: Uuid::new_v4().to_string(),
            taxi_type: TaxiType::Premium.into(),
            status: status.into(),
            version,
            requested_at: Some(ts(at(9, 0))),
            ..Default::default()
        }
    }

    fn field(p: &Projection, name: &str) -> Option<i64> {
        p.counters
            .as_ref()
            .and_then(|c| c.increments.iter().find(|(f, _)| f == name).map(|(_, v)| *v))
    }

    #[test]
    fn a_request_counts_demand_per_taxi_type_in_its_own_hour_and_records_the_customer() {
        let id = Uuid::new_v4();
        let event = envelope(
            id,
            1,
            at(11, 0),
            Payload::CallRequested(CallRequested {
                call: Some(snapshot(id, CallStatus::Requested, 1)),
            }),
        );
        let p = interpret(&event).expect("valid").expect("projected");
        assert_eq!(p.dedupe_member, "1:call.requested");
        assert_eq!(field(&p, "requested"), Some(1));
        assert_eq!(
            field(&p, &format!("requested:{}", TaxiType::Premium as i32)),
            Some(1)
        );
        assert_eq!(
            p.counters.expect("counters").at,
            at(9, 0),
            "bucketed by requested_at"
        );
        assert!(p.customer_call.is_some());
        let view = p.view.expect("view").view;
        assert_eq!(view.status, CallStatus::Requested as i32);
    }

    #[test]
    fn an_acceptance_records_the_wait_since_the_request() {
        let id = Uuid::new_v4();
        let mut s = snapshot(id, CallStatus::Accepted, 2);
        s.accepted_at = Some(ts(at(9, 3)));
        let event = envelope(
            id,
            2,
            at(9, 3),
            Payload::CallAccepted(CallAccepted { call: Some(s) }),
        );
        let p = interpret(&event).expect("valid").expect("projected");
        assert_eq!(field(&p, "wait_ms_sum"), Some(180_000));
        assert_eq!(field(&p, "waits"), Some(1));
        assert!(p.customer_call.is_none());
    }

    #[test]
    fn an_expiry_is_a_cancellation_and_an_expiry_and_a_fee_is_revenue() {
        let id = Uuid::new_v4();
        let mut s = snapshot(id, CallStatus::Canceled, 2);
        s.cancel_reason = CancelReason::Expired.into();
        s.cancel_fee_krw = 1_000;
        s.canceled_at = Some(ts(at(10, 0)));
        let event = envelope(
            id,
            2,
            at(10, 0),
            Payload::CallCanceled(CallCanceled { call: Some(s) }),
        );
        let p = interpret(&event).expect("valid").expect("projected");
        assert_eq!(field(&p, "canceled"), Some(1));
        assert_eq!(field(&p, "expired"), Some(1));
        assert_eq!(field(&p, "payment_declined"), None);
        assert_eq!(field(&p, "revenue_krw"), Some(1_000));
        assert_eq!(
            p.view.expect("view").view.cancel_reason,
            CancelReason::Expired as i32
        );
    }

    #[test]
    fn a_rejection_is_counted_at_the_events_time_without_a_view() {
        let id = Uuid::new_v4();
        let event = envelope(
            id,
            1,
            at(12, 30),
            Payload::CallRejected(CallRejected {
                call_id: id.to_string(),
                taxi_type: TaxiType::Van.into(),
                ..Default::default()
            }),
        );
        let p = interpret(&event).expect("valid").expect("projected");
        assert!(p.view.is_none());
        assert_eq!(field(&p, "rejected"), Some(1));
        assert_eq!(p.counters.expect("counters").at, at(12, 30));
    }

    #[test]
    fn driver_events_are_ignored() {
        let event = envelope(
            Uuid::new_v4(),
            1,
            at(1, 0),
            Payload::DriverOnline(DriverOnline::default()),
        );
        assert_eq!(interpret(&event), Ok(None));
    }

    #[test]
    fn an_event_that_still_carries_its_call_in_field_one_has_no_call_and_is_uninterpretable() {
        use prost::Message as _;

        // The bytes of a CallRequested from before the call events carried
        // `taxi.call.v1.Call`: the call in field 1, where CallSnapshot was.
        let id = Uuid::new_v4();
        let call = snapshot(id, CallStatus::Requested, 1).encode_to_vec();
        let mut old = Vec::new();
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut old);
        prost::encoding::encode_varint(call.len() as u64, &mut old);
        old.extend_from_slice(&call);

        let decoded = CallRequested::decode(old.as_slice()).expect("field 1 is skipped, not an error");
        assert_eq!(decoded.call, None);
        let event = envelope(id, 1, at(1, 0), Payload::CallRequested(decoded));
        assert!(interpret(&event).is_err());
    }

    #[test]
    fn events_that_make_no_sense_are_uninterpretable() {
        let id = Uuid::new_v4();
        let missing = envelope(
            id,
            1,
            at(1, 0),
            Payload::CallRequested(CallRequested { call: None }),
        );
        assert!(interpret(&missing).is_err());

        let mut bad_status = snapshot(id, CallStatus::Requested, 1);
        bad_status.status = 42;
        let event = envelope(
            id,
            1,
            at(1, 0),
            Payload::CallRequested(CallRequested {
                call: Some(bad_status),
            }),
        );
        assert!(interpret(&event).is_err());

        let mut no_status = snapshot(id, CallStatus::Requested, 1);
        no_status.status = CallStatus::Unspecified.into();
        let event = envelope(
            id,
            1,
            at(1, 0),
            Payload::CallRequested(CallRequested {
                call: Some(no_status),
            }),
        );
        assert!(interpret(&event).is_err());

        let other = envelope(
            id,
            1,
            at(1, 0),
            Payload::CallRequested(CallRequested {
                call: Some(snapshot(Uuid::new_v4(), CallStatus::Requested, 1)),
            }),
        );
        assert!(interpret(&other).is_err(), "snapshot of another call");

        let mut no_payload = missing.clone();
        no_payload.payload = None;
        assert!(interpret(&no_payload).is_err());

        let mut bad_id = missing;
        bad_id.aggregate_id = "nope".into();
        bad_id.payload = Some(Payload::CallRequested(CallRequested {
            call: Some(snapshot(id, CallStatus::Requested, 1)),
        }));
        assert!(interpret(&bad_id).is_err());
    }
}
