//! What a call event means for offers. A malformed event is an error: the
//! consumer dead-letters it, since it will never get better.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use svc_kit::{geo::GeoPoint, validate::Violations};
use taxi_proto::{
    call::v1::Call,
    events::v1::{CallCanceled, EventEnvelope, TripCompleted, TripStarted, event_envelope::Payload},
};

use crate::domain::{CallEvent, RequestedCall};

/// Reads `envelope`; events other than a call's request (or a later round
/// of its offers) and its closing
/// (acceptance, cancellation, trip start or completion) are ignored.
pub fn call_event(envelope: &EventEnvelope) -> anyhow::Result<CallEvent> {
    let event = match &envelope.payload {
        Some(Payload::CallRequested(event)) => CallEvent::Requested(requested(event.call.as_ref())?),
        // A later round of offers is offered just like the first.
        Some(Payload::CallReoffered(event)) => CallEvent::Requested(requested(event.call.as_ref())?),
        Some(Payload::CallAccepted(event)) => closed(event.call.as_ref(), true)?,
        Some(
            Payload::CallCanceled(CallCanceled { call })
            | Payload::TripStarted(TripStarted { call })
            | Payload::TripCompleted(TripCompleted { call }),
        ) => closed(call.as_ref(), false)?,
        _ => CallEvent::Ignored,
    };
    Ok(event)
}

/// When the event happened, if it says.
pub fn occurred_at(envelope: &EventEnvelope) -> Option<DateTime<Utc>> {
    svc_kit::clock::from_proto(envelope.occurred_at.as_ref()?)
}

fn requested(call: Option<&Call>) -> anyhow::Result<RequestedCall> {
    let call = call.context("CallRequested without a call snapshot")?;
    let mut v = Violations::new();
    let call_id = v.uuid("call.call_id", &call.call_id);
    let taxi_type = v.taxi_type("call.taxi_type", call.taxi_type);
    let pickup = GeoPoint::parse("call.pickup", call.pickup.as_ref(), &mut v);
    let dropoff = call
        .dropoff
        .as_ref()
        .and_then(|dropoff| GeoPoint::parse("call.dropoff", Some(dropoff), &mut v));
    v.finish().context("malformed CallRequested")?;
    match (call_id, taxi_type, pickup) {
        (Some(call_id), Some(taxi_type), Some(pickup)) => Ok(RequestedCall {
            call_id,
            taxi_type,
            pickup,
            dropoff,
            quoted_fare_krw: call.quoted_fare_krw,
            round: call.offer_round.max(1),
            round_expires_at: call
                .round_expires_at
                .as_ref()
                .and_then(svc_kit::clock::from_proto),
        }),
        _ => anyhow::bail!("malformed CallRequested"),
    }
}

/// The call closed; `accepted` events also name the driver who took it.
fn closed(call: Option<&Call>, accepted: bool) -> anyhow::Result<CallEvent> {
    let call = call.context("call event without a call snapshot")?;
    let mut v = Violations::new();
    let call_id = v.uuid("call.call_id", &call.call_id);
    let taken_by = if accepted && !call.driver_id.is_empty() {
        v.uuid("call.driver_id", &call.driver_id)
    } else {
        None
    };
    v.finish().context("malformed call event")?;
    let call_id = call_id.context("malformed call event")?;
    Ok(CallEvent::Closed { call_id, taken_by })
}

#[cfg(test)]
mod tests {
    use taxi_proto::{
        common::v1::{LatLng, TaxiType},
        events::v1::{CallAccepted, CallRequested, DriverOnline},
    };
    use uuid::Uuid;

    use super::*;

    fn snapshot(call_id: Uuid) -> Call {
        Call {
            call_id: call_id.to_string(),
            taxi_type: TaxiType::Premium.into(),
            pickup: Some(LatLng {
                latitude: 37.5547,
                longitude: 126.9707,
            }),
            dropoff: Some(LatLng {
                latitude: 37.4979,
                longitude: 127.0276,
            }),
            quoted_fare_krw: 15_000,
            ..Call::default()
        }
    }

    fn envelope(payload: Payload) -> EventEnvelope {
        outbox::envelope(Uuid::new_v4(), 1, svc_kit::clock::now(), payload)
    }

    #[test]
    fn a_call_request_carries_what_an_offer_shows() {
        let call_id = Uuid::new_v4();
        let event = envelope(Payload::CallRequested(CallRequested {
            call: Some(snapshot(call_id)),
        }));

        let CallEvent::Requested(call) = call_event(&event).expect("well formed") else {
            panic!("not a request");
        };

        assert_eq!(call.call_id, call_id);
        assert_eq!(call.taxi_type, TaxiType::Premium);
        assert_eq!(call.quoted_fare_krw, 15_000);
        assert_eq!(call.dropoff.map(|p| p.lat), Some(37.4979));
        assert!(occurred_at(&event).is_some());
    }

    #[test]
    fn a_call_request_without_a_snapshot_a_uuid_or_a_pickup_is_malformed() {
        let mut no_pickup = snapshot(Uuid::new_v4());
        no_pickup.pickup = None;
        let mut bad_id = snapshot(Uuid::new_v4());
        bad_id.call_id = "call-1".into();
        let mut no_type = snapshot(Uuid::new_v4());
        no_type.taxi_type = 0;
        for call in [None, Some(no_pickup), Some(bad_id), Some(no_type)] {
            let event = envelope(Payload::CallRequested(CallRequested { call }));
            assert!(call_event(&event).is_err());
        }
    }

    #[test]
    fn an_acceptance_closes_the_call_and_names_who_took_it() {
        let (call_id, driver_id) = (Uuid::new_v4(), Uuid::new_v4());
        let mut call = snapshot(call_id);
        call.driver_id = driver_id.to_string();

        let accepted = call_event(&envelope(Payload::CallAccepted(CallAccepted {
            call: Some(call.clone()),
        })));
        let canceled = call_event(&envelope(Payload::CallCanceled(CallCanceled {
            call: Some(call),
        })));

        assert_eq!(
            accepted.expect("well formed"),
            CallEvent::Closed {
                call_id,
                taken_by: Some(driver_id)
            }
        );
        assert_eq!(
            canceled.expect("well formed"),
            CallEvent::Closed {
                call_id,
                taken_by: None
            }
        );
    }

    #[test]
    fn a_closing_event_with_a_bad_call_id_is_malformed_and_other_events_are_ignored() {
        let mut call = snapshot(Uuid::new_v4());
        call.call_id = String::new();
        let canceled = envelope(Payload::CallCanceled(CallCanceled { call: Some(call) }));
        let online = envelope(Payload::DriverOnline(DriverOnline::default()));

        assert!(call_event(&canceled).is_err());
        assert_eq!(call_event(&online).expect("ignored"), CallEvent::Ignored);
    }
}
