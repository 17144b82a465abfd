//! Requests refused because no taxi was available, remembered under their
//! idempotency key so that a retry is not counted as new demand.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Store;

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

impl Store {
    /// Records that the customer's request under `key` was rejected, as `call_id`,
    /// unless an earlier request with that key was; returns the rejection on file.
    pub async fn insert_rejection(
        &self,
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
        let earlier = sqlx::query_scalar(
            "SELECT call_id FROM rejections WHERE customer_id = $1 AND idempotency_key = $2",
        )
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
}
