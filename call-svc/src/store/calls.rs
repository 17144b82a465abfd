//! Reading and writing calls. Writers lock the row (`SELECT … FOR UPDATE`),
//! apply a domain transition and write the whole row back in one transaction,
//! together with the event in the outbox. The sweeper's bookkeeping (leases,
//! the effects' retry schedule) is written with conditional `UPDATE`s instead,
//! so that of several replicas exactly one wins. Rejected requests are
//! remembered here too.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, postgres::PgRow};
use svc_kit::geo::GeoPoint;
use taxi_proto::common::v1::TaxiType;
use uuid::Uuid;

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
}

impl TryFrom<CallRow> for Call {
    type Error = anyhow::Error;

    fn try_from(row: CallRow) -> anyhow::Result<Self> {
        let status =
            CallStatus::parse(&row.status).with_context(|| format!("unknown status {}", row.status))?;
        let cancel_reason = row
            .cancel_reason
            .map(|r| CancelReason::parse(&r).with_context(|| format!("unknown cancel reason {r}")))
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
        })
    }
}

fn to_call(row: PgRow) -> anyhow::Result<Call> {
    use sqlx::FromRow as _;
    Call::try_from(CallRow::from_row(&row)?)
}

fn to_calls(rows: Vec<PgRow>) -> anyhow::Result<Vec<Call>> {
    rows.into_iter().map(to_call).collect()
}

/// Inserts a new call unless the customer already used its idempotency key;
/// returns false in that case.
pub async fn insert(conn: &mut PgConnection, call: &Call) -> anyhow::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO calls (call_id, customer_id, idempotency_key, taxi_type, status, pickup_lat, pickup_lng,
             dropoff_lat, dropoff_lng, payment_method, quoted_fare_krw, estimated_distance_m,
             availability_unchecked, version, requested_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (customer_id, idempotency_key) DO NOTHING",
    )
    .bind(call.id)
    .bind(call.customer_id)
    .bind(&call.idempotency_key)
    .bind(call.taxi_type.as_str_name())
    .bind(call.status.as_str())
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
    .execute(conn)
    .await
    .context("insert call")?
    .rows_affected();
    Ok(inserted == 1)
}

/// A RequestCall refused because no taxi was available, remembered under its
/// idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The id its CallRejected event was recorded under.
    pub call_id: Uuid,
    /// False when an earlier request with the same key was rejected already
    /// (a retry), so its demand is recorded already.
    pub is_new: bool,
}

/// Records that the customer's request under `key` was rejected, as `call_id`,
/// unless an earlier request with that key was; returns the rejection on file.
pub async fn insert_rejection(
    conn: &mut PgConnection,
    customer: Uuid,
    key: &str,
    call_id: Uuid,
    at: DateTime<Utc>,
) -> anyhow::Result<Rejection> {
    let inserted = sqlx::query(
        "INSERT INTO rejections (customer_id, idempotency_key, call_id, rejected_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (customer_id, idempotency_key) DO NOTHING",
    )
    .bind(customer)
    .bind(key)
    .bind(call_id)
    .bind(at)
    .execute(&mut *conn)
    .await
    .context("insert rejection")?
    .rows_affected();
    if inserted == 1 {
        return Ok(Rejection {
            call_id,
            is_new: true,
        });
    }
    // The conflicting row is committed (a concurrent insert waits for the
    // other transaction to end), so this statement sees it.
    let earlier =
        sqlx::query_scalar("SELECT call_id FROM rejections WHERE customer_id = $1 AND idempotency_key = $2")
            .bind(customer)
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .context("read earlier rejection")?;
    Ok(Rejection {
        call_id: earlier,
        is_new: false,
    })
}

/// Writes back every field a transition or the saga can change. Effects that
/// differ from the ones owed so far start a new retry schedule: the request
/// that committed them makes the first attempt.
pub async fn update(conn: &mut PgConnection, call: &Call) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE calls SET driver_id = $2, status = $3, cancel_reason = $4, advance_krw = $5, distance_m = $6,
             final_fare_krw = $7, cancel_fee_krw = $8, version = $9, accepted_at = $10, started_at = $11,
             completed_at = $12, canceled_at = $13, claim_driver_id = $14, claim_since = $15,
             effect_settle_krw = $16, effect_release_driver = $17,
             effect_attempts = CASE WHEN effect_settle_krw IS NOT DISTINCT FROM $16
                 AND effect_release_driver IS NOT DISTINCT FROM $17 THEN effect_attempts ELSE 0 END,
             effect_next_at = CASE WHEN effect_settle_krw IS NOT DISTINCT FROM $16
                 AND effect_release_driver IS NOT DISTINCT FROM $17 THEN effect_next_at END,
             updated_at = now()
         WHERE call_id = $1",
    )
    .bind(call.id)
    .bind(call.driver_id)
    .bind(call.status.as_str())
    .bind(call.cancel_reason.map(CancelReason::as_str))
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
    .execute(conn)
    .await
    .context("update call")?;
    Ok(())
}

/// Reads a call without locking it.
pub async fn get(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<Call>> {
    let row = sqlx::query("SELECT * FROM calls WHERE call_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .context("get call")?;
    row.map(to_call).transpose()
}

/// Reads and locks a call for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<Call>> {
    let row = sqlx::query("SELECT * FROM calls WHERE call_id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await
        .context("lock call")?;
    row.map(to_call).transpose()
}

pub async fn get_by_idempotency_key(
    pool: &PgPool,
    customer: Uuid,
    key: &str,
) -> anyhow::Result<Option<Call>> {
    let row = sqlx::query("SELECT * FROM calls WHERE customer_id = $1 AND idempotency_key = $2")
        .bind(customer)
        .bind(key)
        .fetch_optional(pool)
        .await
        .context("get call by idempotency key")?;
    row.map(to_call).transpose()
}

/// Locks REQUESTED calls nobody is accepting that were requested before
/// `cutoff`, skipping rows another replica holds.
pub async fn expire_candidates(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> anyhow::Result<Vec<Call>> {
    let rows = sqlx::query(
        "SELECT * FROM calls
         WHERE status = 'REQUESTED' AND claim_driver_id IS NULL AND requested_at < $1
         ORDER BY requested_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(conn)
    .await
    .context("find expired calls")?;
    to_calls(rows)
}

/// Calls whose accept has been in progress since before `cutoff`.
pub async fn claims_older_than(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> anyhow::Result<Vec<Call>> {
    let rows = sqlx::query(
        "SELECT * FROM calls WHERE claim_driver_id IS NOT NULL AND claim_since < $1
         ORDER BY claim_since LIMIT $2",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("find stale claims")?;
    to_calls(rows)
}

/// Renews a stale claim's timestamp so that one sweeper (of possibly several
/// replicas) takes it over; false when someone else got there first.
pub async fn take_claim_lease(pool: &PgPool, call: &Call, now: DateTime<Utc>) -> anyhow::Result<bool> {
    let Some(claim) = call.claim else {
        return Ok(false);
    };
    let taken = sqlx::query(
        "UPDATE calls SET claim_since = $3 WHERE call_id = $1 AND claim_driver_id = $2 AND claim_since = $4",
    )
    .bind(call.id)
    .bind(claim.driver_id)
    .bind(now)
    .bind(claim.since)
    .execute(pool)
    .await
    .context("take claim lease")?
    .rows_affected();
    Ok(taken == 1)
}

/// Calls whose owed effects the sweeper may attempt now: their back-off (or an
/// earlier sweeper's lease) is over, or no attempt has failed yet but they
/// were recorded before `stale` (the request owing the first attempt died).
pub async fn effects_due(
    pool: &PgPool,
    now: DateTime<Utc>,
    stale: DateTime<Utc>,
    limit: i64,
) -> anyhow::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT call_id FROM calls
         WHERE (effect_settle_krw IS NOT NULL OR effect_release_driver IS NOT NULL)
           AND (effect_next_at <= $1 OR (effect_next_at IS NULL AND updated_at < $2))
         ORDER BY effect_next_at NULLS FIRST LIMIT $3",
    )
    .bind(now)
    .bind(stale)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("find owed effects")
}

/// A sweeper's exclusive right to attempt a call's owed effects once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectsLease {
    pub effects: Effects,
    /// The sweeper's attempts so far, this one included.
    pub attempts: i32,
}

/// Takes the lease on a call's owed effects if they are still due (see
/// [`effects_due`]), counting the attempt, so that one sweeper (of possibly
/// several replicas) attempts them until `until`; `None` when they are not
/// due any more (another sweeper took them, or they were done).
pub async fn take_effects_lease(
    pool: &PgPool,
    id: Uuid,
    now: DateTime<Utc>,
    stale: DateTime<Utc>,
    until: DateTime<Utc>,
) -> anyhow::Result<Option<EffectsLease>> {
    let leased: Option<(Option<i64>, Option<Uuid>, i32)> = sqlx::query_as(
        "UPDATE calls SET effect_attempts = effect_attempts + 1, effect_next_at = $4
         WHERE call_id = $1
           AND (effect_settle_krw IS NOT NULL OR effect_release_driver IS NOT NULL)
           AND (effect_next_at <= $2 OR (effect_next_at IS NULL AND updated_at < $3))
         RETURNING effect_settle_krw, effect_release_driver, effect_attempts",
    )
    .bind(id)
    .bind(now)
    .bind(stale)
    .bind(until)
    .fetch_optional(pool)
    .await
    .context("take effects lease")?;
    Ok(leased.map(|(settle_krw, release_driver, attempts)| EffectsLease {
        effects: Effects {
            settle_krw,
            release_driver,
        },
        attempts,
    }))
}

/// After a failed attempt, sets when the effects are next due, unless the
/// attempt was overtaken: a sweeper leased them since (`attempts` moved on) or
/// a newer transition replaced them.
pub async fn reschedule_effects(
    pool: &PgPool,
    id: Uuid,
    effects: Effects,
    attempts: i32,
    next_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE calls SET effect_next_at = $5
         WHERE call_id = $1
           AND effect_settle_krw IS NOT DISTINCT FROM $2
           AND effect_release_driver IS NOT DISTINCT FROM $3
           AND effect_attempts = $4",
    )
    .bind(id)
    .bind(effects.settle_krw)
    .bind(effects.release_driver)
    .bind(attempts)
    .bind(next_at)
    .execute(pool)
    .await
    .context("reschedule effects")?;
    Ok(())
}

/// Forgets the effects in `done` once performed, each unless a newer
/// transition replaced it; once nothing is owed, the retry schedule resets.
pub async fn clear_done_effects(pool: &PgPool, id: Uuid, done: Effects) -> anyhow::Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE calls SET effect_settle_krw = NULLIF(effect_settle_krw, $2),
             effect_release_driver = NULLIF(effect_release_driver, $3),
             effect_attempts = CASE WHEN NULLIF(effect_settle_krw, $2) IS NULL
                 AND NULLIF(effect_release_driver, $3) IS NULL THEN 0 ELSE effect_attempts END,
             effect_next_at = CASE WHEN NULLIF(effect_settle_krw, $2) IS NULL
                 AND NULLIF(effect_release_driver, $3) IS NULL THEN NULL ELSE effect_next_at END
         WHERE call_id = $1",
    )
    .bind(id)
    .bind(done.settle_krw)
    .bind(done.release_driver)
    .execute(pool)
    .await
    .context("clear effects")?;
    Ok(())
}
