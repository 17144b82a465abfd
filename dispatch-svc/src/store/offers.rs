//! The `offers` and `offer_rounds` tables: offers of requested calls and
//! each call's round of offers.
//!
//! A call's `offer_rounds` row is written when its CallRequested is handled,
//! moved on to each later round (CallReoffered), and stamped closed when the
//! call stops being open; handlers of the
//! same call on several replicas serialize on it. An offer row remembers
//! whether its driver was notified and whether it was withdrawn, so a
//! redelivered event finishes only what was left undone (see
//! `service::offers`).

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use svc_kit::geo::GeoPoint;
use taxi_proto::common::v1::TaxiType;
use uuid::Uuid;

use super::Store;
use crate::{
    domain::{Offer, RequestedCall, Withdrawal, area::EARTH_RADIUS_M},
    error::DispatchError,
};

/// The columns [`OfferRow`] reads.
macro_rules! offer_columns {
    () => {
        "call_id, driver_id, taxi_type, pickup_lat, pickup_lng, dropoff_lat, dropoff_lng, \
         quoted_fare_krw, distance_to_pickup_m, offered_at, expires_at"
    };
}

#[derive(Debug, sqlx::FromRow)]
struct OfferRow {
    call_id: Uuid,
    driver_id: Uuid,
    taxi_type: String,
    pickup_lat: f64,
    pickup_lng: f64,
    dropoff_lat: Option<f64>,
    dropoff_lng: Option<f64>,
    quoted_fare_krw: i64,
    distance_to_pickup_m: i32,
    offered_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl TryFrom<OfferRow> for Offer {
    type Error = anyhow::Error;

    fn try_from(row: OfferRow) -> anyhow::Result<Self> {
        let taxi_type = TaxiType::from_str_name(&row.taxi_type).with_context(|| {
            format!(
                "offer of call {} has unknown taxi type {:?}",
                row.call_id, row.taxi_type
            )
        })?;
        Ok(Self {
            call_id: row.call_id,
            driver_id: row.driver_id,
            taxi_type,
            pickup: GeoPoint {
                lat: row.pickup_lat,
                lng: row.pickup_lng,
            },
            dropoff: row
                .dropoff_lat
                .zip(row.dropoff_lng)
                .map(|(lat, lng)| GeoPoint { lat, lng }),
            quoted_fare_krw: row.quoted_fare_krw,
            distance_to_pickup_m: row.distance_to_pickup_m,
            offered_at: row.offered_at,
            expires_at: row.expires_at,
        })
    }
}

/// A waiting call's round, as [`Store::waiting_calls_near`] reads it.
#[derive(Debug, sqlx::FromRow)]
struct WaitingRow {
    call_id: Uuid,
    taxi_type: String,
    pickup_lat: f64,
    pickup_lng: f64,
    dropoff_lat: Option<f64>,
    dropoff_lng: Option<f64>,
    quoted_fare_krw: i64,
    round: i32,
    round_expires_at: DateTime<Utc>,
    distance_m: f64,
}

impl WaitingRow {
    fn into_call(self) -> Result<(RequestedCall, f64), DispatchError> {
        let taxi_type = TaxiType::from_str_name(&self.taxi_type).with_context(|| {
            format!(
                "round of call {} has unknown taxi type {:?}",
                self.call_id, self.taxi_type
            )
        })?;
        let call = RequestedCall {
            call_id: self.call_id,
            taxi_type,
            pickup: GeoPoint {
                lat: self.pickup_lat,
                lng: self.pickup_lng,
            },
            dropoff: self
                .dropoff_lat
                .zip(self.dropoff_lng)
                .map(|(lat, lng)| GeoPoint { lat, lng }),
            quoted_fare_krw: self.quoted_fare_krw,
            round: self.round,
            round_expires_at: Some(self.round_expires_at),
        };
        Ok((call, self.distance_m))
    }
}

fn offers_from(rows: Vec<OfferRow>) -> Result<Vec<Offer>, DispatchError> {
    Ok(rows
        .into_iter()
        .map(Offer::try_from)
        .collect::<anyhow::Result<_>>()?)
}

impl Store {
    /// Writes the call's round row for `call.round`, searching `radius_m`
    /// until `round_end`; false when the call is in that round (or a later
    /// one) already, or has closed.
    pub async fn open_round(
        &self,
        conn: &mut PgConnection,
        call: &RequestedCall,
        radius_m: u32,
        round_end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, DispatchError> {
        let opened = sqlx::query(
            "INSERT INTO offer_rounds (call_id, offered_at, round, round_expires_at, radius_m, taxi_type,
                 pickup_lat, pickup_lng, dropoff_lat, dropoff_lng, quoted_fare_krw)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (call_id) DO UPDATE
             SET offered_at = excluded.offered_at, round = excluded.round,
                 round_expires_at = excluded.round_expires_at, radius_m = excluded.radius_m,
                 taxi_type = excluded.taxi_type, pickup_lat = excluded.pickup_lat,
                 pickup_lng = excluded.pickup_lng, dropoff_lat = excluded.dropoff_lat,
                 dropoff_lng = excluded.dropoff_lng, quoted_fare_krw = excluded.quoted_fare_krw
             WHERE offer_rounds.closed_at IS NULL AND offer_rounds.round < excluded.round",
        )
        .bind(call.call_id)
        .bind(now)
        .bind(call.round)
        .bind(round_end)
        .bind(i32::try_from(radius_m).unwrap_or(i32::MAX))
        .bind(call.taxi_type.as_str_name())
        .bind(call.pickup.lat)
        .bind(call.pickup.lng)
        .bind(call.dropoff.map(|p| p.lat))
        .bind(call.dropoff.map(|p| p.lng))
        .bind(call.quoted_fare_krw)
        .execute(conn)
        .await?
        .rows_affected()
            == 1;
        Ok(opened)
    }

    /// Stores `offer` (a driver offered the call again in a later round gets
    /// a fresh offer) and remembers that its driver was offered the call.
    pub async fn insert_offer(
        &self,
        conn: &mut PgConnection,
        offer: &Offer,
        round: i32,
    ) -> Result<(), DispatchError> {
        sqlx::query(
            "INSERT INTO offers (call_id, driver_id, taxi_type, pickup_lat, pickup_lng,
                 dropoff_lat, dropoff_lng, quoted_fare_krw, distance_to_pickup_m, offered_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (call_id, driver_id) DO UPDATE
             SET distance_to_pickup_m = excluded.distance_to_pickup_m, offered_at = excluded.offered_at,
                 expires_at = excluded.expires_at, notified_at = NULL, withdrawn_at = NULL
             WHERE offers.withdrawn_at IS NULL",
        )
        .bind(offer.call_id)
        .bind(offer.driver_id)
        .bind(offer.taxi_type.as_str_name())
        .bind(offer.pickup.lat)
        .bind(offer.pickup.lng)
        .bind(offer.dropoff.map(|p| p.lat))
        .bind(offer.dropoff.map(|p| p.lng))
        .bind(offer.quoted_fare_krw)
        .bind(offer.distance_to_pickup_m)
        .bind(offer.offered_at)
        .bind(offer.expires_at)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO offered_drivers (call_id, driver_id, round) VALUES ($1, $2, $3)
             ON CONFLICT (call_id, driver_id) DO NOTHING",
        )
        .bind(offer.call_id)
        .bind(offer.driver_id)
        .bind(round)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Whether the driver holds an offer of the call that is neither
    /// withdrawn nor expired at `now`.
    pub async fn holds_live_offer(
        &self,
        conn: &mut PgConnection,
        call_id: Uuid,
        driver_id: Uuid,
    ) -> Result<bool, DispatchError> {
        let live: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM offers WHERE call_id = $1 AND driver_id = $2
                 AND withdrawn_at IS NULL AND expires_at > now())",
        )
        .bind(call_id)
        .bind(driver_id)
        .fetch_one(conn)
        .await?;
        Ok(live)
    }

    /// The calls still waiting in an open round that the driver has never
    /// been offered, whose round's radius reaches the driver (AVAILABLE, of
    /// the call's taxi type, with a location newer than `location_max_age`),
    /// each with the driver's distance to its pickup, nearest first.
    pub async fn waiting_calls_near(
        &self,
        driver_id: Uuid,
        location_max_age: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(RequestedCall, f64)>, DispatchError> {
        let rows: Vec<WaitingRow> = sqlx::query_as(
            "SELECT call_id, taxi_type, pickup_lat, pickup_lng, dropoff_lat, dropoff_lng,
                    quoted_fare_krw, round, round_expires_at, distance_m
             FROM (SELECT r.*, 2 * $4 * asin(least(1.0, sqrt(
                          power(sin(radians(d.lat - r.pickup_lat) / 2), 2)
                          + cos(radians(r.pickup_lat)) * cos(radians(d.lat))
                            * power(sin(radians(d.lng - r.pickup_lng) / 2), 2)))) AS distance_m
                   FROM offer_rounds r JOIN drivers d ON d.taxi_type = r.taxi_type
                   WHERE d.driver_id = $1 AND d.status = 'AVAILABLE'
                     AND d.location_updated_at > now() - make_interval(secs => $2)
                     AND r.closed_at IS NULL AND r.round_expires_at > $3
                     AND NOT EXISTS (SELECT 1 FROM offered_drivers o
                                     WHERE o.call_id = r.call_id AND o.driver_id = $1)) AS near
             WHERE distance_m <= radius_m
             ORDER BY distance_m, call_id",
        )
        .bind(driver_id)
        .bind(location_max_age.as_secs_f64())
        .bind(now)
        .bind(EARTH_RADIUS_M)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(WaitingRow::into_call).collect()
    }

    /// The call's open offers whose drivers have not been notified yet.
    pub async fn unnotified_offers(
        &self,
        call_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Offer>, DispatchError> {
        let rows: Vec<OfferRow> = sqlx::query_as(concat!(
            "SELECT ",
            offer_columns!(),
            " FROM offers
             WHERE call_id = $1 AND notified_at IS NULL AND withdrawn_at IS NULL AND expires_at > $2
             ORDER BY distance_to_pickup_m, driver_id"
        ))
        .bind(call_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        offers_from(rows)
    }

    /// Records that the drivers of `offers` were notified.
    pub async fn mark_notified(&self, offers: &[Offer], now: DateTime<Utc>) -> Result<(), DispatchError> {
        let (calls, drivers): (Vec<Uuid>, Vec<Uuid>) = offers
            .iter()
            .map(|offer| (offer.call_id, offer.driver_id))
            .unzip();
        sqlx::query(
            "UPDATE offers SET notified_at = $3
             WHERE (call_id, driver_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))",
        )
        .bind(calls)
        .bind(drivers)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stamps the call's round closed (writing the row if the call was never
    /// offered), keeping the first closing time.
    pub async fn close_round(
        &self,
        conn: &mut PgConnection,
        call_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), DispatchError> {
        sqlx::query(
            "INSERT INTO offer_rounds (call_id, closed_at) VALUES ($1, $2)
             ON CONFLICT (call_id) DO UPDATE
             SET closed_at = coalesce(offer_rounds.closed_at, excluded.closed_at)",
        )
        .bind(call_id)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Stamps withdrawn the call's offers and, when `taken_by` is still on the
    /// call, that driver's offers of other calls.
    pub async fn withdraw_offers(
        &self,
        conn: &mut PgConnection,
        call_id: Uuid,
        taken_by: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), DispatchError> {
        // The driver check keeps a late CallAccepted from withdrawing offers a
        // driver received after finishing this call.
        sqlx::query(
            "UPDATE offers SET withdrawn_at = $3
             WHERE withdrawn_at IS NULL
               AND (call_id = $1
                    OR (driver_id = $2 AND EXISTS (
                          SELECT 1 FROM drivers WHERE driver_id = $2 AND current_call_id = $1)))",
        )
        .bind(call_id)
        .bind(taken_by)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// The withdrawn offers of the call (and of `taken_by`) whose drivers
    /// still have to hear of it.
    pub async fn pending_withdrawals(
        &self,
        call_id: Uuid,
        taken_by: Option<Uuid>,
    ) -> Result<Vec<Withdrawal>, DispatchError> {
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT call_id, driver_id FROM offers
             WHERE withdrawn_at IS NOT NULL AND (call_id = $1 OR driver_id = $2)
             ORDER BY call_id, driver_id",
        )
        .bind(call_id)
        .bind(taken_by)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(call_id, driver_id)| Withdrawal { call_id, driver_id })
            .collect())
    }

    /// Deletes withdrawn offers once their drivers were notified.
    pub async fn forget_withdrawn(&self, withdrawals: &[Withdrawal]) -> Result<(), DispatchError> {
        let (calls, drivers): (Vec<Uuid>, Vec<Uuid>) =
            withdrawals.iter().map(|w| (w.call_id, w.driver_id)).unzip();
        sqlx::query(
            "DELETE FROM offers
             WHERE withdrawn_at IS NOT NULL
               AND (call_id, driver_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))",
        )
        .bind(calls)
        .bind(drivers)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The driver's offers still open at `now`, oldest first.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn open_offers(
        &self,
        driver_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Offer>, DispatchError> {
        let rows: Vec<OfferRow> = sqlx::query_as(concat!(
            "SELECT ",
            offer_columns!(),
            " FROM offers
             WHERE driver_id = $1 AND expires_at > $2 AND withdrawn_at IS NULL
             ORDER BY offered_at, call_id"
        ))
        .bind(driver_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        offers_from(rows)
    }

    /// Deletes offers expired by `now` and rounds older than `rounds_before`.
    /// Returns how many of each went.
    pub async fn purge_offers(
        &self,
        now: DateTime<Utc>,
        rounds_before: DateTime<Utc>,
    ) -> Result<(u64, u64), DispatchError> {
        let offers = sqlx::query("DELETE FROM offers WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let rounds = sqlx::query("DELETE FROM offer_rounds WHERE coalesce(closed_at, offered_at) < $1")
            .bind(rounds_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok((offers, rounds))
    }
}
