//! ChargeAdvance: step 1 of taking a call's advance (see the protocol in the
//! parent module). A decline is an answer (a DECLINED entry), not an error.

use uuid::Uuid;

use super::Payments;
use crate::{
    domain::{Command, Entry, EntryKind, Request},
    error::PaymentError,
    store::NewEntry,
};

/// Take the advance for a call.
#[derive(Debug, Clone)]
pub struct ChargeAdvance {
    pub call_id: Uuid,
    pub customer_id: Uuid,
    pub amount_krw: i64,
    pub payment_method: String,
    pub idempotency_key: String,
}

impl ChargeAdvance {
    fn request(&self) -> Request {
        Request::ChargeAdvance {
            call_id: self.call_id,
            customer_id: self.customer_id,
            amount_krw: self.amount_krw,
            payment_method: self.payment_method.clone(),
        }
    }
}

impl Payments {
    /// Charges the advance. A decline is an answer (a DECLINED entry), not an
    /// error.
    #[tracing::instrument(skip_all, fields(call_id = %cmd.call_id))]
    pub async fn charge_advance(&self, cmd: ChargeAdvance) -> Result<Entry, PaymentError> {
        let request = cmd.request();
        let mut tx = self.store.begin().await?;
        self.lock(&mut tx, cmd.call_id, &cmd.idempotency_key).await?;
        let entry = match self
            .earlier_entry(&mut tx, &cmd.idempotency_key, &request)
            .await?
        {
            Some(entry) => entry,
            None => {
                self.store
                    .ledger_in(&mut tx, cmd.call_id)
                    .await?
                    .check_advance()?;
                let new = NewEntry {
                    call_id: cmd.call_id,
                    customer_id: cmd.customer_id,
                    kind: EntryKind::Advance,
                    amount_krw: cmd.amount_krw,
                    payment_method: &cmd.payment_method,
                    idempotency_key: &cmd.idempotency_key,
                    command: Command::ChargeAdvance,
                    requested_amount_krw: cmd.amount_krw,
                    reason: "",
                };
                self.store.insert_entry(&mut tx, &new).await?
            }
        };
        tx.commit().await?;
        self.complete(entry).await
    }
}
