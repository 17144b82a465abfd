//! Writing events: the envelope of a new event, and appending it to the
//! outbox inside the transaction that makes the change it records.

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::PgConnection;
use taxi_proto::events::v1::{EventEnvelope, event_envelope::Payload};
use uuid::Uuid;

/// Suffix of the channel an outbox notifies on commit: `<schema>_outbox`.
const CHANNEL_SUFFIX: &str = "_outbox";

/// The notification channel the outbox of `schema` signals when a transaction
/// that appended to it commits; the relay listens on it.
pub fn channel(schema: &str) -> String {
    format!("{schema}{CHANNEL_SUFFIX}")
}

/// A new event about `aggregate_id` at `version`, with a fresh event id. The
/// aggregate type comes from the payload.
pub fn envelope(
    aggregate_id: Uuid,
    version: i64,
    occurred_at: DateTime<Utc>,
    payload: Payload,
) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::new_v4().to_string(),
        aggregate_type: payload.aggregate_type().to_owned(),
        aggregate_id: aggregate_id.to_string(),
        aggregate_version: version,
        occurred_at: Some(svc_kit::clock::to_proto(occurred_at)),
        trace_context: Default::default(),
        payload: Some(payload),
    }
}

/// Appends `event` to the outbox of the connection's schema. Call it inside the
/// transaction that makes the change; at commit PostgreSQL notifies
/// [`channel`], which wakes the relay. The row keeps the current span's trace
/// context, so the relay's publish is part of the trace of the command that
/// caused the event.
pub async fn append(conn: &mut PgConnection, event: &EventEnvelope) -> sqlx::Result<()> {
    let encode = |e: uuid::Error| sqlx::Error::Encode(Box::new(e));
    let event_id = Uuid::parse_str(&event.event_id).map_err(encode)?;
    let aggregate_id = Uuid::parse_str(&event.aggregate_id).map_err(encode)?;
    let event_type = event.payload.as_ref().map_or("unknown", Payload::event_type);
    sqlx::query(
        "WITH appended AS (
             INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, payload, traceparent)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING 1
         )
         SELECT pg_notify(current_schema() || $8, '') FROM appended",
    )
    .bind(event_id)
    .bind(&event.aggregate_type)
    .bind(aggregate_id)
    .bind(event.aggregate_version)
    .bind(event_type)
    .bind(event.encode_to_vec())
    .bind(svc_kit::telemetry::trace::current_traceparent())
    .bind(CHANNEL_SUFFIX)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use taxi_proto::events::v1::CallRejected;

    use super::*;

    #[test]
    fn an_envelope_takes_its_aggregate_type_from_the_payload() {
        let payload = Payload::CallRejected(CallRejected::default());
        let event = envelope(Uuid::new_v4(), 1, svc_kit::clock::now(), payload);
        assert_eq!(event.aggregate_type, "call");
        assert_eq!(channel("call"), "call_outbox");
    }
}
