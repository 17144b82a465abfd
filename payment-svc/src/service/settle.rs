//! SettleFinal: step 1 of bringing what was paid for a call to its final
//! amount (see the protocol in the parent module). It charges the shortfall
//! or refunds the excess, and records the settlement under its key, even
//! when nothing was owed either way.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{Moved, Payments, payer};
use crate::{
    domain::{Command, Entry, EntryKind, Settlement},
    error::PaymentError,
    events,
    store::{NewEntry, SettlementRecord},
};

/// Reason recorded on the refund a settlement makes.
const SETTLEMENT_REFUND_REASON: &str = "final settlement";

/// Bring what was paid for a call to `final_amount_krw`.
#[derive(Debug, Clone)]
pub struct SettleFinal {
    pub call_id: Uuid,
    pub final_amount_krw: i64,
    pub idempotency_key: String,
    /// The card a shortfall is charged to; `None`: the advance's card.
    pub payment_method: Option<String>,
}

impl Payments {
    /// Charges the shortfall or refunds the excess so that the call's net paid
    /// becomes `final_amount_krw`; when it already is, records the settlement
    /// without an entry.
    #[tracing::instrument(skip_all, fields(call_id = %cmd.call_id))]
    pub async fn settle_final(&self, cmd: SettleFinal) -> Result<Moved, PaymentError> {
        // The net must be known: finish first what earlier commands left
        // PENDING (provider outage, crash), including this key's own entry.
        self.resume_pending(cmd.call_id).await?;

        let mut tx = self.store.begin().await?;
        self.lock(&mut tx, cmd.call_id, &cmd.idempotency_key).await?;
        // A new settlement that moves no money is complete at this commit.
        let mut complete_now = false;
        let entry = match self
            .store
            .settlement_by_key(&mut tx, &cmd.idempotency_key)
            .await?
        {
            Some(done) => {
                if done.call_id != cmd.call_id || done.final_amount_krw != cmd.final_amount_krw {
                    return Err(PaymentError::KeyReused);
                }
                match done.entry_id {
                    Some(entry_id) => Some(self.store.entry_in(&mut tx, entry_id).await?),
                    None => None,
                }
            }
            None => {
                if self
                    .store
                    .entry_by_key(&mut tx, &cmd.idempotency_key)
                    .await?
                    .is_some()
                {
                    return Err(PaymentError::KeyReused);
                }
                let entry = self.begin_settlement(&mut tx, &cmd).await?;
                complete_now = entry.is_none();
                entry
            }
        };
        tx.commit().await?;
        if complete_now {
            self.metrics.settled(cmd.final_amount_krw);
        }

        let entry = match entry {
            Some(entry) => Some(self.complete(entry).await?),
            None => None,
        };
        let net_paid_krw = self.store.ledger(cmd.call_id).await?.net_paid_krw();
        Ok(Moved { entry, net_paid_krw })
    }

    /// Step 1 of a new settlement: the PENDING entry it needs, if any, and the
    /// settlement record. A settlement that moves no money is complete here,
    /// so its event is written here too.
    async fn begin_settlement(
        &self,
        tx: &mut PgConnection,
        cmd: &SettleFinal,
    ) -> Result<Option<Entry>, PaymentError> {
        let ledger = self.store.ledger_in(tx, cmd.call_id).await?;
        let (kind, amount_krw) = match ledger.settle(cmd.final_amount_krw)? {
            Settlement::Charge(amount) => (EntryKind::FinalCharge, amount),
            Settlement::Refund(amount) => (EntryKind::Refund, amount),
            Settlement::Nothing => {
                let record = SettlementRecord {
                    call_id: cmd.call_id,
                    final_amount_krw: cmd.final_amount_krw,
                    entry_id: None,
                };
                self.store
                    .insert_settlement(tx, &cmd.idempotency_key, &record)
                    .await?;
                let customer_id = ledger.entries().first().map(|e| e.customer_id);
                let event = events::settled_without_entry(
                    cmd.call_id,
                    customer_id,
                    cmd.final_amount_krw,
                    ledger.net_paid_krw(),
                );
                self.append_event(tx, cmd.call_id, event).await?;
                return Ok(None);
            }
        };
        let payer = payer(&ledger)?;
        let new = NewEntry {
            call_id: cmd.call_id,
            customer_id: payer.customer_id,
            kind,
            amount_krw,
            // A customer paying a declined balance with another card.
            payment_method: cmd.payment_method.as_deref().unwrap_or(&payer.payment_method),
            idempotency_key: &cmd.idempotency_key,
            command: Command::SettleFinal,
            requested_amount_krw: cmd.final_amount_krw,
            reason: if kind == EntryKind::Refund {
                SETTLEMENT_REFUND_REASON
            } else {
                ""
            },
        };
        let entry = self.store.insert_entry(tx, &new).await?;
        let record = SettlementRecord {
            call_id: cmd.call_id,
            final_amount_krw: cmd.final_amount_krw,
            entry_id: Some(entry.entry_id),
        };
        self.store
            .insert_settlement(tx, &cmd.idempotency_key, &record)
            .await?;
        Ok(Some(entry))
    }
}
