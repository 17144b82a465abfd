//! The transactional outbox: a service appends its domain events to its own
//! `outbox` table in the same transaction as the state change they record, and
//! a relay publishes them later. A committed change therefore always has its
//! event, and a rolled-back one never does.
//!
//! Each service's migrations create the table with this shape:
//!
//! ```sql
//! CREATE TABLE outbox (
//!     seq               BIGSERIAL PRIMARY KEY,   -- commit order for the relay
//!     event_id          UUID NOT NULL UNIQUE,
//!     aggregate_type    TEXT NOT NULL,
//!     aggregate_id      UUID NOT NULL,
//!     aggregate_version BIGINT NOT NULL,
//!     event_type        TEXT NOT NULL,
//!     payload           BYTEA NOT NULL,          -- an encoded EventEnvelope
//!     created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
//!     published_at      TIMESTAMPTZ
//! );
//! ```

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::PgConnection;
use taxi_proto::events::v1::{EventEnvelope, event_envelope::Payload};
use uuid::Uuid;

/// Builds the envelope of an event about `aggregate_id` at `version`.
pub fn envelope(
    aggregate_type: &str,
    aggregate_id: Uuid,
    version: i64,
    occurred_at: DateTime<Utc>,
    payload: Payload,
) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::new_v4().to_string(),
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_string(),
        aggregate_version: version,
        occurred_at: Some(timestamp(occurred_at)),
        trace_context: Default::default(),
        payload: Some(payload),
    }
}

/// The event's type name, such as `call.requested`; consumers filter on it.
pub fn event_type(payload: &Payload) -> &'static str {
    match payload {
        Payload::CallRequested(_) => "call.requested",
        Payload::CallRejected(_) => "call.rejected",
        Payload::CallAccepted(_) => "call.accepted",
        Payload::TripStarted(_) => "call.trip_started",
        Payload::TripCompleted(_) => "call.trip_completed",
        Payload::CallCanceled(_) => "call.canceled",
        Payload::DriverRegistered(_) => "driver.registered",
        Payload::DriverOnline(_) => "driver.online",
        Payload::DriverOffline(_) => "driver.offline",
        Payload::DriverAssigned(_) => "driver.assigned",
        Payload::DriverReleased(_) => "driver.released",
        Payload::AdvancePaid(_) => "payment.advance_paid",
        Payload::PaymentDeclined(_) => "payment.declined",
        Payload::FinalSettled(_) => "payment.final_settled",
        Payload::PaymentRefunded(_) => "payment.refunded",
    }
}

/// Appends `event` to the outbox of the connection's schema. Call it inside the
/// transaction that makes the change. At commit, PostgreSQL notifies the
/// channel `<schema>_outbox`, which wakes the relay.
pub async fn append(conn: &mut PgConnection, event: &EventEnvelope) -> sqlx::Result<()> {
    let event_id = Uuid::parse_str(&event.event_id).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let aggregate_id = Uuid::parse_str(&event.aggregate_id).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let event_type = event.payload.as_ref().map_or("unknown", event_type);
    sqlx::query(
        "WITH appended AS (
             INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, payload)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING 1
         )
         SELECT pg_notify(current_schema() || '_outbox', '') FROM appended",
    )
    .bind(event_id)
    .bind(&event.aggregate_type)
    .bind(aggregate_id)
    .bind(event.aggregate_version)
    .bind(event_type)
    .bind(event.encode_to_vec())
    .execute(conn)
    .await?;
    Ok(())
}

/// A protobuf timestamp for a UTC instant.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
