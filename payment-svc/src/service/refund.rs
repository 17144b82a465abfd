//! Refund: step 1 of giving back part of what was paid for a call (see the
//! protocol in the parent module), to the card that paid.

use uuid::Uuid;

use super::{Moved, Payments, payer};
use crate::{
    domain::{Command, EntryKind, Request},
    error::PaymentError,
    store::NewEntry,
};

/// Give back part of what was paid for a call.
#[derive(Debug, Clone)]
pub struct Refund {
    pub call_id: Uuid,
    pub amount_krw: i64,
    pub idempotency_key: String,
    pub reason: String,
}

impl Refund {
    fn request(&self) -> Request {
        Request::Refund {
            call_id: self.call_id,
            amount_krw: self.amount_krw,
        }
    }
}

impl Payments {
    /// Refunds up to what the customer has paid (minus refunds in flight).
    #[tracing::instrument(skip_all, fields(call_id = %cmd.call_id))]
    pub async fn refund(&self, cmd: Refund) -> Result<Moved, PaymentError> {
        let request = cmd.request();
        let mut tx = self.store.begin().await?;
        self.lock(&mut tx, cmd.call_id, &cmd.idempotency_key).await?;
        let entry = match self
            .earlier_entry(&mut tx, &cmd.idempotency_key, &request)
            .await?
        {
            Some(entry) => entry,
            None => {
                let ledger = self.store.ledger_in(&mut tx, cmd.call_id).await?;
                ledger.check_refund(cmd.amount_krw)?;
                let payer = payer(&ledger)?;
                let new = NewEntry {
                    call_id: cmd.call_id,
                    customer_id: payer.customer_id,
                    kind: EntryKind::Refund,
                    amount_krw: cmd.amount_krw,
                    payment_method: &payer.payment_method,
                    idempotency_key: &cmd.idempotency_key,
                    command: Command::Refund,
                    requested_amount_krw: cmd.amount_krw,
                    reason: &cmd.reason,
                };
                self.store.insert_entry(&mut tx, &new).await?
            }
        };
        tx.commit().await?;
        let entry = self.complete(entry).await?;
        let net_paid_krw = self.store.ledger(cmd.call_id).await?.net_paid_krw();
        Ok(Moved {
            entry: Some(entry),
            net_paid_krw,
        })
    }
}
