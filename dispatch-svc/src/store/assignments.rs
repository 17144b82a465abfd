//! The `assignments` table, and the driver updates that go with it. Correct
//! with several dispatch replicas on one database: the `assignments` primary
//! key admits one row per call, and the conditional driver update admits one
//! call per driver.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{DriverRow, Store, driver_from};
use crate::{
    domain::{AssignCommand, Assignment, Driver},
    error::DispatchError,
};

#[derive(Debug, sqlx::FromRow)]
struct AssignmentRow {
    call_id: Uuid,
    driver_id: Uuid,
    released: bool,
}

impl From<AssignmentRow> for Assignment {
    fn from(row: AssignmentRow) -> Self {
        Self {
            call_id: row.call_id,
            driver_id: row.driver_id,
            released: row.released,
        }
    }
}

impl Store {
    /// Records the call as the driver's; false when the call already has a
    /// row. A concurrent claim on the same call waits here for the first one
    /// to commit or roll back, so exactly one claim inserts the row.
    pub async fn claim_call(
        &self,
        conn: &mut PgConnection,
        command: &AssignCommand,
    ) -> Result<bool, DispatchError> {
        let claimed = sqlx::query(
            "INSERT INTO assignments (call_id, driver_id, assigned_at) VALUES ($1, $2, now())
             ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(command.call_id)
        .bind(command.driver_id)
        .execute(conn)
        .await?
        .rows_affected()
            == 1;
        Ok(claimed)
    }

    /// Records the call as released by `driver_id` before anyone was assigned
    /// to it (a tombstone); false when the call already has a row.
    pub async fn tombstone_call(
        &self,
        conn: &mut PgConnection,
        call_id: Uuid,
        driver_id: Uuid,
    ) -> Result<bool, DispatchError> {
        let tombstoned = sqlx::query(
            "INSERT INTO assignments (call_id, driver_id, released_at) VALUES ($1, $2, now())
             ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(call_id)
        .bind(driver_id)
        .execute(conn)
        .await?
        .rows_affected()
            == 1;
        Ok(tombstoned)
    }

    /// The call's assignment, which must exist.
    pub async fn assignment(
        &self,
        conn: &mut PgConnection,
        call_id: Uuid,
    ) -> Result<Assignment, DispatchError> {
        let row: AssignmentRow = sqlx::query_as(
            "SELECT call_id, driver_id, released_at IS NOT NULL AS released
             FROM assignments WHERE call_id = $1",
        )
        .bind(call_id)
        .fetch_one(conn)
        .await?;
        Ok(row.into())
    }

    /// The call's assignment, which must exist, locked until the transaction
    /// ends.
    pub async fn lock_assignment(
        &self,
        conn: &mut PgConnection,
        call_id: Uuid,
    ) -> Result<Assignment, DispatchError> {
        let row: AssignmentRow = sqlx::query_as(
            "SELECT call_id, driver_id, released_at IS NOT NULL AS released
             FROM assignments WHERE call_id = $1 FOR UPDATE",
        )
        .bind(call_id)
        .fetch_one(conn)
        .await?;
        Ok(row.into())
    }

    /// Stamps the call's assignment released.
    pub async fn mark_released(&self, conn: &mut PgConnection, call_id: Uuid) -> Result<(), DispatchError> {
        sqlx::query("UPDATE assignments SET released_at = now() WHERE call_id = $1")
            .bind(call_id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Puts the driver ON_CALL on the command's call if they are AVAILABLE
    /// and drive its taxi type; `None` (nothing changed) otherwise. The
    /// condition is checked by the update itself: row locking makes a second
    /// call for the same driver re-check the status after the first commits,
    /// and find it ON_CALL.
    pub async fn put_on_call(
        &self,
        conn: &mut PgConnection,
        command: &AssignCommand,
    ) -> Result<Option<Driver>, DispatchError> {
        let row: Option<DriverRow> = sqlx::query_as(concat!(
            "UPDATE drivers SET status = 'ON_CALL', current_call_id = $2,
                 version = version + 1, updated_at = now()
             WHERE driver_id = $1 AND status = 'AVAILABLE' AND taxi_type = $3
             RETURNING ",
            driver_columns!()
        ))
        .bind(command.driver_id)
        .bind(command.call_id)
        .bind(command.taxi_type.as_str_name())
        .fetch_optional(conn)
        .await?;
        Ok(driver_from(row)?)
    }

    /// Makes the driver AVAILABLE again if they are still on `call_id`;
    /// `None` (nothing changed) otherwise.
    pub async fn free_driver(
        &self,
        conn: &mut PgConnection,
        driver_id: Uuid,
        call_id: Uuid,
    ) -> Result<Option<Driver>, DispatchError> {
        let row: Option<DriverRow> = sqlx::query_as(concat!(
            "UPDATE drivers SET status = 'AVAILABLE', current_call_id = NULL,
                 version = version + 1, updated_at = now()
             WHERE driver_id = $1 AND current_call_id = $2
             RETURNING ",
            driver_columns!()
        ))
        .bind(driver_id)
        .bind(call_id)
        .fetch_optional(conn)
        .await?;
        Ok(driver_from(row)?)
    }
}
