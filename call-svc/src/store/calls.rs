//! The calls table's rows and the reads and writes of a whole call. Writers
//! lock the row (`SELECT … FOR UPDATE`), apply a domain transition and write
//! the whole row back in the transaction the service opened, together with the
//! event in the outbox. The `status` and `cancel_reason` columns hold text
//! (`ACCEPTED`, `EXPIRED`), spelled out here alone.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, postgres::PgRow};
use svc_kit::geo::GeoPoint;
use taxi_proto::common::v1::TaxiType;
use uuid::Uuid;

use super::Store;
use crate::domain::{Call, CallStatus, CancelReason, Claim, Effects, Quote};

#[derive(sqlx::FromRow)]
struct CallRow {
    call_id: Uuid,
    customer_id: Uuid,
    idempotency_key: String,
    driver_id: Option<Uuid>,
    taxi_type: String,
    status: String,
    cancel_reason: Option<String>,
    pickup_lat: f64,
    pickup_lng: f64,
    dropoff_lat: f64,
    dropoff_lng: f64,
    payment_method: String,
    quoted_fare_krw: i64,
    estimated_distance_m: i64,
    advance_krw: i64,
    distance_m: Option<i64>,
    final_fare_krw: Option<i64>,
    cancel_fee_krw: i64,
    availability_unchecked: bool,
    version: i64,
    requested_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    canceled_at: Option<DateTime<Utc>>,
    claim_driver_id: Option<Uuid>,
    claim_since: Option<DateTime<Utc>>,
    effect_settle_krw: Option<i64>,
    effect_release_driver: Option<Uuid>,
    offer_round: i32,
    round_expires_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    paid_krw: i64,
    refunded_krw: i64,
    owed_krw: i64,
    settle_attempt: i32,
}

impl TryFrom<CallRow> for Call {
    type Error = anyhow::Error;

    fn try_from(row: CallRow) -> anyhow::Result<Self> {
        let status = parse_status(&row.status).with_context(|| format!("unknown status {}", row.status))?;
        let cancel_reason = row
            .cancel_reason
            .map(|r| parse_reason(&r).with_context(|| format!("unknown cancel reason {r}")))
            .transpose()?;
        let taxi_type = TaxiType::from_str_name(&row.taxi_type)
            .with_context(|| format!("unknown taxi type {}", row.taxi_type))?;
        let claim = match (row.claim_driver_id, row.claim_since) {
            (Some(driver_id), Some(since)) => Some(Claim { driver_id, since }),
            _ => None,
        };
        Ok(Self {
            id: row.call_id,
            customer_id: row.customer_id,
            driver_id: row.driver_id,
            taxi_type,
            status,
            cancel_reason,
            pickup: GeoPoint {
                lat: row.pickup_lat,
                lng: row.pickup_lng,
            },
            dropoff: GeoPoint {
                lat: row.dropoff_lat,
                lng: row.dropoff_lng,
            },
            payment_method: row.payment_method,
            idempotency_key: row.idempotency_key,
            quote: Quote {
                distance_m: row.estimated_distance_m,
                fare_krw: row.quoted_fare_krw,
            },
            advance_krw: row.advance_krw,
            distance_m: row.distance_m,
            final_fare_krw: row.final_fare_krw,
            cancel_fee_krw: row.cancel_fee_krw,
            availability_unchecked: row.availability_unchecked,
            version: row.version,
            requested_at: row.requested_at,
            accepted_at: row.accepted_at,
            started_at: row.started_at,
            completed_at: row.completed_at,
            canceled_at: row.canceled_at,
            claim,
            effects: Effects {
                settle_krw: row.effect_settle_krw,
                release_driver: row.effect_release_driver,
            },
            offer_round: row.offer_round,
            round_expires_at: row.round_expires_at,
            expires_at: row.expires_at,
            paid_krw: row.paid_krw,
            refunded_krw: row.refunded_krw,
            owed_krw: row.owed_krw,
            settle_attempt: row.settle_attempt,
        })
    }
}

/// The `status` column's value: storage's own spelling, kept as the rows
/// already hold it (and as the table's CHECK lists it), so it is spelled out
/// here rather than derived from the wire's names.
fn status_text(status: CallStatus) -> &'static str {
    match status {
        CallStatus::Requested => "REQUESTED",
        CallStatus::Accepted => "ACCEPTED",
        CallStatus::InTrip => "IN_TRIP",
        CallStatus::Completed => "COMPLETED",
        CallStatus::Canceled => "CANCELED",
    }
}

fn parse_status(text: &str) -> Option<CallStatus> {
    [
        CallStatus::Requested,
        CallStatus::Accepted,
        CallStatus::InTrip,
        CallStatus::Completed,
        CallStatus::Canceled,
    ]
    .into_iter()
    .find(|status| status_text(*status) == text)
}

/// The `cancel_reason` column's value (NULL unless canceled).
fn reason_text(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Customer => "CUSTOMER",
        CancelReason::Expired => "EXPIRED",
        CancelReason::PaymentDeclined => "PAYMENT_DECLINED",
    }
}

fn parse_reason(text: &str) -> Option<CancelReason> {
    [
        CancelReason::Customer,
        CancelReason::Expired,
        CancelReason::PaymentDeclined,
    ]
    .into_iter()
    .find(|reason| reason_text(*reason) == text)
}

pub(super) fn to_call(row: PgRow) -> anyhow::Result<Call> {
    use sqlx::FromRow as _;
    Call::try_from(CallRow::from_row(&row)?)
}

pub(super) fn to_calls(rows: Vec<PgRow>) -> anyhow::Result<Vec<Call>> {
    rows.into_iter().map(to_call).collect()
}

impl Store {
    /// Inserts a new call unless the customer already used its idempotency key;
    /// returns false in that case.
    pub async fn insert(&self, conn: &mut PgConnection, call: &Call) -> anyhow::Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO calls (call_id, customer_id, idempotency_key, taxi_type, status, pickup_lat, pickup_lng,
                 dropoff_lat, dropoff_lng, payment_method, quoted_fare_krw, estimated_distance_m,
                 availability_unchecked, version, requested_at, offer_round, round_expires_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT (customer_id, idempotency_key) DO NOTHING",
        )
        .bind(call.id)
        .bind(call.customer_id)
        .bind(&call.idempotency_key)
        .bind(call.taxi_type.as_str_name())
        .bind(status_text(call.status))
        .bind(call.pickup.lat)
        .bind(call.pickup.lng)
        .bind(call.dropoff.lat)
        .bind(call.dropoff.lng)
        .bind(&call.payment_method)
        .bind(call.quote.fare_krw)
        .bind(call.quote.distance_m)
        .bind(call.availability_unchecked)
        .bind(call.version)
        .bind(call.requested_at)
        .bind(call.offer_round)
        .bind(call.round_expires_at)
        .bind(call.expires_at)
        .execute(conn)
        .await
        .context("insert call")?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Writes back every field a transition or the saga can change. Effects that
    /// differ from the ones owed so far start a new retry schedule: the request
    /// that committed them makes the first attempt.
    pub async fn update(&self, conn: &mut PgConnection, call: &Call) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE calls SET driver_id = $2, status = $3, cancel_reason = $4, advance_krw = $5, distance_m = $6,
                 final_fare_krw = $7, cancel_fee_krw = $8, version = $9, accepted_at = $10, started_at = $11,
                 completed_at = $12, canceled_at = $13, claim_driver_id = $14, claim_since = $15,
                 effect_settle_krw = $16, effect_release_driver = $17,
                 offer_round = $18, round_expires_at = $19,
                 paid_krw = $20, refunded_krw = $21, owed_krw = $22, settle_attempt = $23,
                 payment_method = $24,
                 effect_attempts = CASE WHEN effect_settle_krw IS NOT DISTINCT FROM $16
                     AND effect_release_driver IS NOT DISTINCT FROM $17 THEN effect_attempts ELSE 0 END,
                 effect_next_at = CASE WHEN effect_settle_krw IS NOT DISTINCT FROM $16
                     AND effect_release_driver IS NOT DISTINCT FROM $17 THEN effect_next_at END,
                 updated_at = now()
             WHERE call_id = $1",
        )
        .bind(call.id)
        .bind(call.driver_id)
        .bind(status_text(call.status))
        .bind(call.cancel_reason.map(reason_text))
        .bind(call.advance_krw)
        .bind(call.distance_m)
        .bind(call.final_fare_krw)
        .bind(call.cancel_fee_krw)
        .bind(call.version)
        .bind(call.accepted_at)
        .bind(call.started_at)
        .bind(call.completed_at)
        .bind(call.canceled_at)
        .bind(call.claim.map(|c| c.driver_id))
        .bind(call.claim.map(|c| c.since))
        .bind(call.effects.settle_krw)
        .bind(call.effects.release_driver)
        .bind(call.offer_round)
        .bind(call.round_expires_at)
        .bind(call.paid_krw)
        .bind(call.refunded_krw)
        .bind(call.owed_krw)
        .bind(call.settle_attempt)
        .bind(&call.payment_method)
        .execute(conn)
        .await
        .context("update call")?;
        Ok(())
    }

    /// Reads a call without locking it.
    pub async fn get(&self, id: Uuid) -> anyhow::Result<Option<Call>> {
        let row = sqlx::query("SELECT * FROM calls WHERE call_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("get call")?;
        row.map(to_call).transpose()
    }

    /// Reads and locks a call for the rest of the transaction.
    pub async fn lock(&self, conn: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<Call>> {
        let row = sqlx::query("SELECT * FROM calls WHERE call_id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(conn)
            .await
            .context("lock call")?;
        row.map(to_call).transpose()
    }

    /// The call the customer made under `key`, if any.
    pub async fn get_by_idempotency_key(&self, customer: Uuid, key: &str) -> anyhow::Result<Option<Call>> {
        let row = sqlx::query("SELECT * FROM calls WHERE customer_id = $1 AND idempotency_key = $2")
            .bind(customer)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .context("get call by idempotency key")?;
        row.map(to_call).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_reasons_round_trip_through_text() {
        for status in [
            CallStatus::Requested,
            CallStatus::Accepted,
            CallStatus::InTrip,
            CallStatus::Completed,
            CallStatus::Canceled,
        ] {
            assert_eq!(parse_status(status_text(status)), Some(status));
        }
        for reason in [
            CancelReason::Customer,
            CancelReason::Expired,
            CancelReason::PaymentDeclined,
        ] {
            assert_eq!(parse_reason(reason_text(reason)), Some(reason));
        }
    }
}
