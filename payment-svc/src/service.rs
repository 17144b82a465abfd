//! The payment use cases: charge an advance, settle a call to its final
//! amount, refund, read a call's ledger.
//!
//! Every money movement follows the same three steps, so that a crash or a
//! concurrent retry at any point neither loses nor doubles a payment:
//!
//! 1. In a transaction holding the call's lock: find the entry of this
//!    idempotency key (a finished one is replayed as is; a different request
//!    under the same key is refused), or check the ledger and write a PENDING
//!    entry.
//! 2. Outside any transaction: ask the provider, with the entry's key.
//! 3. In a transaction: record the outcome only if the entry is still PENDING,
//!    together with its events; otherwise a concurrent retry won, and its
//!    result is returned.
//!
//! If step 2 fails the entry stays PENDING; a retry with the same key (or any
//! later settlement of the call) resumes it at step 2.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, anyhow};
use sqlx::{PgConnection, PgPool};
use taxi_proto::events::v1::event_envelope::Payload;
use uuid::Uuid;

use crate::{
    domain::{Command, Entry, EntryKind, EntryStatus, Ledger, Request, Settlement},
    error::PaymentError,
    events,
    provider::{Outcome, PaymentProvider, ProviderError},
    store::{self, NewEntry, SettlementRecord},
};

/// Reason recorded on the refund a settlement makes.
const SETTLEMENT_REFUND_REASON: &str = "final settlement";

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

/// Bring what was paid for a call to `final_amount_krw`.
#[derive(Debug, Clone)]
pub struct SettleFinal {
    pub call_id: Uuid,
    pub final_amount_krw: i64,
    pub idempotency_key: String,
}

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

/// The movement a command made and the call's net paid afterwards.
#[derive(Debug, Clone)]
pub struct Moved {
    /// None when a settlement found nothing owed either way.
    pub entry: Option<Entry>,
    pub net_paid_krw: i64,
}

/// The ledger and its provider.
pub struct Payments {
    pool: PgPool,
    provider: Arc<dyn PaymentProvider>,
    provider_timeout: Duration,
}

impl Payments {
    pub fn new(pool: PgPool, provider: Arc<dyn PaymentProvider>, provider_timeout: Duration) -> Self {
        Self {
            pool,
            provider,
            provider_timeout,
        }
    }

    /// Charges the advance. A decline is an answer (a DECLINED entry), not an
    /// error.
    #[tracing::instrument(skip_all, fields(call_id = %cmd.call_id))]
    pub async fn charge_advance(&self, cmd: ChargeAdvance) -> Result<Entry, PaymentError> {
        let request = cmd.request();
        let mut tx = self.pool.begin().await?;
        lock(&mut tx, cmd.call_id, &cmd.idempotency_key).await?;
        let entry = match earlier_entry(&mut tx, &cmd.idempotency_key, &request).await? {
            Some(entry) => entry,
            None => {
                store::ledger(&mut *tx, cmd.call_id).await?.check_advance()?;
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
                store::insert_entry(&mut *tx, &new).await?
            }
        };
        tx.commit().await?;
        self.complete(entry).await
    }

    /// Charges the shortfall or refunds the excess so that the call's net paid
    /// becomes `final_amount_krw`; when it already is, records the settlement
    /// without an entry.
    #[tracing::instrument(skip_all, fields(call_id = %cmd.call_id))]
    pub async fn settle_final(&self, cmd: SettleFinal) -> Result<Moved, PaymentError> {
        // The net must be known: finish first what earlier commands left
        // PENDING (provider outage, crash), including this key's own entry.
        self.resume_pending(cmd.call_id).await?;

        let mut tx = self.pool.begin().await?;
        lock(&mut tx, cmd.call_id, &cmd.idempotency_key).await?;
        let entry = match store::settlement_by_key(&mut *tx, &cmd.idempotency_key).await? {
            Some(done) => {
                if done.call_id != cmd.call_id || done.final_amount_krw != cmd.final_amount_krw {
                    return Err(PaymentError::KeyReused);
                }
                match done.entry_id {
                    Some(entry_id) => Some(store::entry(&mut *tx, entry_id).await?),
                    None => None,
                }
            }
            None => {
                if store::entry_by_key(&mut *tx, &cmd.idempotency_key)
                    .await?
                    .is_some()
                {
                    return Err(PaymentError::KeyReused);
                }
                self.begin_settlement(&mut tx, &cmd).await?
            }
        };
        tx.commit().await?;

        let entry = match entry {
            Some(entry) => Some(self.complete(entry).await?),
            None => None,
        };
        let net_paid_krw = store::ledger(&self.pool, cmd.call_id).await?.net_paid_krw();
        Ok(Moved { entry, net_paid_krw })
    }

    /// Refunds up to what the customer has paid (minus refunds in flight).
    #[tracing::instrument(skip_all, fields(call_id = %cmd.call_id))]
    pub async fn refund(&self, cmd: Refund) -> Result<Moved, PaymentError> {
        let request = cmd.request();
        let mut tx = self.pool.begin().await?;
        lock(&mut tx, cmd.call_id, &cmd.idempotency_key).await?;
        let entry = match earlier_entry(&mut tx, &cmd.idempotency_key, &request).await? {
            Some(entry) => entry,
            None => {
                let ledger = store::ledger(&mut *tx, cmd.call_id).await?;
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
                store::insert_entry(&mut *tx, &new).await?
            }
        };
        tx.commit().await?;
        let entry = self.complete(entry).await?;
        let net_paid_krw = store::ledger(&self.pool, cmd.call_id).await?.net_paid_krw();
        Ok(Moved {
            entry: Some(entry),
            net_paid_krw,
        })
    }

    /// Every entry of a call, oldest first.
    pub async fn ledger(&self, call_id: Uuid) -> Result<Ledger, PaymentError> {
        Ok(store::ledger(&self.pool, call_id).await?)
    }

    /// Step 1 of a new settlement: the PENDING entry it needs, if any, and the
    /// settlement record. A settlement that moves no money is complete here,
    /// so its event is written here too.
    async fn begin_settlement(
        &self,
        tx: &mut PgConnection,
        cmd: &SettleFinal,
    ) -> Result<Option<Entry>, PaymentError> {
        let ledger = store::ledger(&mut *tx, cmd.call_id).await?;
        let (kind, amount_krw) = match ledger.settle(cmd.final_amount_krw)? {
            Settlement::Charge(amount) => (EntryKind::FinalCharge, amount),
            Settlement::Refund(amount) => (EntryKind::Refund, amount),
            Settlement::Nothing => {
                let record = SettlementRecord {
                    call_id: cmd.call_id,
                    final_amount_krw: cmd.final_amount_krw,
                    entry_id: None,
                };
                store::insert_settlement(&mut *tx, &cmd.idempotency_key, &record).await?;
                let customer_id = ledger.entries().first().map(|e| e.customer_id);
                let event = events::settled_without_entry(
                    cmd.call_id,
                    customer_id,
                    cmd.final_amount_krw,
                    ledger.net_paid_krw(),
                );
                append_event(tx, cmd.call_id, event).await?;
                return Ok(None);
            }
        };
        let payer = payer(&ledger)?;
        let new = NewEntry {
            call_id: cmd.call_id,
            customer_id: payer.customer_id,
            kind,
            amount_krw,
            payment_method: &payer.payment_method,
            idempotency_key: &cmd.idempotency_key,
            command: Command::SettleFinal,
            requested_amount_krw: cmd.final_amount_krw,
            reason: if kind == EntryKind::Refund {
                SETTLEMENT_REFUND_REASON
            } else {
                ""
            },
        };
        let entry = store::insert_entry(&mut *tx, &new).await?;
        let record = SettlementRecord {
            call_id: cmd.call_id,
            final_amount_krw: cmd.final_amount_krw,
            entry_id: Some(entry.entry_id),
        };
        store::insert_settlement(&mut *tx, &cmd.idempotency_key, &record).await?;
        Ok(Some(entry))
    }

    /// Steps 2 and 3 for an entry; a finished entry is returned unchanged.
    async fn complete(&self, entry: Entry) -> Result<Entry, PaymentError> {
        if entry.status != EntryStatus::Pending {
            return Ok(entry);
        }
        let (status, reference) = match self.ask_provider(&entry).await? {
            Outcome::Approved { reference } => (EntryStatus::Approved, reference),
            Outcome::Declined { reason } => (EntryStatus::Declined, reason),
        };

        let mut tx = self.pool.begin().await?;
        store::lock_call(&mut *tx, entry.call_id).await?;
        let Some(finished) = store::finish_entry(&mut *tx, entry.entry_id, status, &reference).await? else {
            // A concurrent retry recorded the outcome, and its events, first.
            drop(tx);
            return Ok(store::entry(&self.pool, entry.entry_id).await?);
        };
        let net_paid_krw = store::ledger(&mut *tx, finished.call_id).await?.net_paid_krw();
        for event in events::for_finished(&finished, net_paid_krw) {
            append_event(&mut tx, finished.call_id, event).await?;
        }
        tx.commit().await?;
        tracing::info!(
            entry_id = %finished.entry_id,
            kind = finished.kind.as_str(),
            status = finished.status.as_str(),
            amount_krw = finished.amount_krw,
            net_paid_krw,
            "payment recorded"
        );
        Ok(finished)
    }

    /// Finishes every PENDING entry of the call.
    async fn resume_pending(&self, call_id: Uuid) -> Result<(), PaymentError> {
        let ledger = store::ledger(&self.pool, call_id).await?;
        for entry in ledger.into_entries() {
            if entry.status == EntryStatus::Pending {
                tracing::info!(entry_id = %entry.entry_id, "resuming a pending payment");
                self.complete(entry).await?;
            }
        }
        Ok(())
    }

    /// Step 2: the provider's answer for an entry, under a deadline.
    async fn ask_provider(&self, entry: &Entry) -> Result<Outcome, ProviderError> {
        let operation = if entry.kind.is_charge() {
            self.provider
                .charge(&entry.payment_method, entry.amount_krw, &entry.idempotency_key)
        } else {
            self.provider
                .refund(entry.call_id, entry.amount_krw, &entry.idempotency_key)
        };
        tokio::time::timeout(self.provider_timeout, operation)
            .await
            .map_err(|_| ProviderError(format!("no answer within {:?}", self.provider_timeout)))?
    }
}

/// Takes the call's lock, then the key's (always in this order).
async fn lock(tx: &mut PgConnection, call_id: Uuid, idempotency_key: &str) -> Result<(), PaymentError> {
    store::lock_call(&mut *tx, call_id).await?;
    store::lock_key(&mut *tx, idempotency_key).await?;
    Ok(())
}

/// The entry an earlier identical request created under `idempotency_key`;
/// KeyReused when the key belongs to a different request.
async fn earlier_entry(
    tx: &mut PgConnection,
    idempotency_key: &str,
    request: &Request,
) -> Result<Option<Entry>, PaymentError> {
    if let Some(entry) = store::entry_by_key(&mut *tx, idempotency_key).await? {
        return if entry.was_created_by(request) {
            Ok(Some(entry))
        } else {
            Err(PaymentError::KeyReused)
        };
    }
    if store::settlement_by_key(&mut *tx, idempotency_key)
        .await?
        .is_some()
    {
        return Err(PaymentError::KeyReused);
    }
    Ok(None)
}

/// Whose card a new charge or refund uses. A positive net implies one.
fn payer(ledger: &Ledger) -> Result<&Entry, PaymentError> {
    ledger
        .payer()
        .ok_or_else(|| PaymentError::from(anyhow!("positive net paid without an approved charge")))
}

/// Appends one event of the call's payment aggregate, at its next version.
async fn append_event(tx: &mut PgConnection, call_id: Uuid, payload: Payload) -> Result<(), PaymentError> {
    let version = store::next_version(&mut *tx, call_id).await?;
    let event = outbox::envelope(call_id, version, svc_kit::clock::now(), payload);
    outbox::append(tx, &event)
        .await
        .context("cannot append an event")?;
    Ok(())
}
