//! Assigning drivers to calls and releasing them, correct with several
//! dispatch replicas on one database: the `assignments` primary key admits one
//! row per call, and the conditional driver update admits one call per driver.

use taxi_proto::events::v1::{DriverAssigned, DriverReleased, event_envelope::Payload};
use uuid::Uuid;

use super::{DriverRow, Store, driver_from, find_driver, record};
use crate::{
    domain::{AssignCommand, Assignment, Driver, ReleaseCommand},
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
    /// Puts the driver on the call. A retry by the driver who won returns
    /// them unchanged; any other claim on a taken call is refused.
    #[tracing::instrument(skip_all, fields(call_id = %command.call_id, driver_id = %command.driver_id))]
    pub async fn assign(&self, command: AssignCommand) -> Result<Driver, DispatchError> {
        let mut tx = self.pool.begin().await?;
        // A concurrent claim on the same call waits here for the first one to
        // commit or roll back, so exactly one claim inserts the row.
        let claimed = sqlx::query(
            "INSERT INTO assignments (call_id, driver_id, assigned_at) VALUES ($1, $2, now())
             ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(command.call_id)
        .bind(command.driver_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            let existing: AssignmentRow = sqlx::query_as(
                "SELECT call_id, driver_id, released_at IS NOT NULL AS released
                 FROM assignments WHERE call_id = $1",
            )
            .bind(command.call_id)
            .fetch_one(&mut *tx)
            .await?;
            Assignment::from(existing).confirm_repeat(command.driver_id)?;
            return find_driver(&mut tx, command.driver_id)
                .await?
                .ok_or(DispatchError::DriverNotFound(command.driver_id));
        }

        // Row locking makes a second call for the same driver re-check the
        // status after the first commits, and find it ON_CALL.
        let updated: Option<DriverRow> = sqlx::query_as(concat!(
            "UPDATE drivers SET status = 'ON_CALL', current_call_id = $2,
                 version = version + 1, updated_at = now()
             WHERE driver_id = $1 AND status = 'AVAILABLE' AND taxi_type = $3
             RETURNING ",
            driver_columns!()
        ))
        .bind(command.driver_id)
        .bind(command.call_id)
        .bind(command.taxi_type.as_str_name())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(driver) = driver_from(updated)? else {
            let refusal = match find_driver(&mut tx, command.driver_id).await? {
                Some(driver) => DispatchError::Refused(driver.assignment_refusal(command.taxi_type)),
                None => DispatchError::DriverNotFound(command.driver_id),
            };
            tx.rollback().await?;
            return Err(refusal);
        };
        let event = Payload::DriverAssigned(DriverAssigned {
            driver_id: command.driver_id.to_string(),
            call_id: command.call_id.to_string(),
        });
        record(&mut tx, &driver, event).await?;
        tx.commit().await?;
        Ok(driver)
    }

    /// Frees the driver of the call. True only for the request that actually
    /// released an assignment; repeats, strangers and early releases get false.
    #[tracing::instrument(skip_all, fields(call_id = %command.call_id, driver_id = %command.driver_id))]
    pub async fn release(&self, command: ReleaseCommand) -> Result<bool, DispatchError> {
        let mut tx = self.pool.begin().await?;
        // Without an assignment yet, a tombstone makes a late AssignDriver for
        // this call (say, a retry after a timeout) fail instead of winning.
        let tombstoned = sqlx::query(
            "INSERT INTO assignments (call_id, driver_id, released_at) VALUES ($1, $2, now())
             ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(command.call_id)
        .bind(command.driver_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if tombstoned {
            tx.commit().await?;
            tracing::info!("released before any assignment; the call can no longer be assigned");
            return Ok(false);
        }

        let assignment: AssignmentRow = sqlx::query_as(
            "SELECT call_id, driver_id, released_at IS NOT NULL AS released
             FROM assignments WHERE call_id = $1 FOR UPDATE",
        )
        .bind(command.call_id)
        .fetch_one(&mut *tx)
        .await?;
        if !Assignment::from(assignment).is_releasable_by(command.driver_id) {
            return Ok(false);
        }
        sqlx::query("UPDATE assignments SET released_at = now() WHERE call_id = $1")
            .bind(command.call_id)
            .execute(&mut *tx)
            .await?;
        let freed: Option<DriverRow> = sqlx::query_as(concat!(
            "UPDATE drivers SET status = 'AVAILABLE', current_call_id = NULL,
                 version = version + 1, updated_at = now()
             WHERE driver_id = $1 AND current_call_id = $2
             RETURNING ",
            driver_columns!()
        ))
        .bind(command.driver_id)
        .bind(command.call_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(driver) = driver_from(freed)? {
            let event = Payload::DriverReleased(DriverReleased {
                driver_id: command.driver_id.to_string(),
                call_id: command.call_id.to_string(),
            });
            record(&mut tx, &driver, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
