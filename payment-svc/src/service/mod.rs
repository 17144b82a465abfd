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
//!
//! Step 1 differs per command and lives with it: `charge` (ChargeAdvance),
//! `settle` (SettleFinal) and `refund` (Refund), each an `impl Payments`
//! block. This file holds [`Payments`], the ledger read, and steps 2 and 3,
//! which every command shares. [`metrics`] holds the business figures
//! ([`PaymentMetrics`]) the commands record right after their commits, which
//! [`Payments::register_metrics`] registers.

mod charge;
pub mod metrics;
mod refund;
mod settle;

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, anyhow};
use sqlx::PgConnection;
use svc_kit::metrics::Registry;
use taxi_proto::events::v1::event_envelope::Payload;
use uuid::Uuid;

pub use charge::ChargeAdvance;
pub use metrics::PaymentMetrics;
pub use refund::Refund;
pub use settle::SettleFinal;

use crate::{
    domain::{Entry, EntryStatus, Ledger, Request},
    error::PaymentError,
    events,
    provider::{Outcome, PaymentProvider, ProviderError},
    store::Store,
};

/// The movement a command made and the call's net paid afterwards.
#[derive(Debug, Clone)]
pub struct Moved {
    /// None when a settlement found nothing owed either way.
    pub entry: Option<Entry>,
    pub net_paid_krw: i64,
}

/// The ledger and its provider.
pub struct Payments {
    store: Store,
    provider: Arc<dyn PaymentProvider>,
    provider_timeout: Duration,
    metrics: PaymentMetrics,
}

impl Payments {
    pub fn new(store: Store, provider: Arc<dyn PaymentProvider>, provider_timeout: Duration) -> Self {
        Self {
            store,
            provider,
            provider_timeout,
            metrics: PaymentMetrics::default(),
        }
    }

    /// Registers the ledger's business figures (see [`metrics`]) in
    /// `registry`. Once per registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(registry);
    }

    /// Every entry of a call, oldest first.
    pub async fn ledger(&self, call_id: Uuid) -> Result<Ledger, PaymentError> {
        Ok(self.store.ledger(call_id).await?)
    }

    /// Steps 2 and 3 for an entry; a finished entry is returned unchanged.
    async fn complete(&self, entry: Entry) -> Result<Entry, PaymentError> {
        if entry.status != EntryStatus::Pending {
            return Ok(entry);
        }
        let outcome = self.ask_provider(&entry).await.inspect_err(|_| {
            self.metrics.provider_unavailable(&entry);
        })?;
        let (status, reference) = match outcome {
            Outcome::Approved { reference } => (EntryStatus::Approved, reference),
            Outcome::Declined { reason } => (EntryStatus::Declined, reason),
        };

        let mut tx = self.store.begin().await?;
        self.store.lock_call(&mut tx, entry.call_id).await?;
        let Some(finished) = self
            .store
            .finish_entry(&mut tx, entry.entry_id, status, &reference)
            .await?
        else {
            // A concurrent retry recorded the outcome, and its events, first.
            drop(tx);
            return Ok(self.store.entry(entry.entry_id).await?);
        };
        let net_paid_krw = self
            .store
            .ledger_in(&mut tx, finished.call_id)
            .await?
            .net_paid_krw();
        for event in events::for_finished(&finished, net_paid_krw) {
            self.append_event(&mut tx, finished.call_id, event).await?;
        }
        tx.commit().await?;
        self.metrics.finished(&finished);
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
        let ledger = self.store.ledger(call_id).await?;
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

    /// Takes the call's lock, then the key's (always in this order).
    async fn lock(
        &self,
        tx: &mut PgConnection,
        call_id: Uuid,
        idempotency_key: &str,
    ) -> Result<(), PaymentError> {
        self.store.lock_call(tx, call_id).await?;
        self.store.lock_key(tx, idempotency_key).await?;
        Ok(())
    }

    /// The entry an earlier identical request created under `idempotency_key`;
    /// KeyReused when the key belongs to a different request.
    async fn earlier_entry(
        &self,
        tx: &mut PgConnection,
        idempotency_key: &str,
        request: &Request,
    ) -> Result<Option<Entry>, PaymentError> {
        if let Some(entry) = self.store.entry_by_key(tx, idempotency_key).await? {
            return if entry.was_created_by(request) {
                Ok(Some(entry))
            } else {
                Err(PaymentError::KeyReused)
            };
        }
        if self.store.settlement_by_key(tx, idempotency_key).await?.is_some() {
            return Err(PaymentError::KeyReused);
        }
        Ok(None)
    }

    /// Appends one event of the call's payment aggregate, at its next version.
    async fn append_event(
        &self,
        tx: &mut PgConnection,
        call_id: Uuid,
        payload: Payload,
    ) -> Result<(), PaymentError> {
        let version = self.store.next_version(tx, call_id).await?;
        let event = outbox::envelope(call_id, version, svc_kit::clock::now(), payload);
        outbox::append(tx, &event)
            .await
            .context("cannot append an event")?;
        Ok(())
    }
}

/// Whose card a new charge or refund uses. A positive net implies one.
fn payer(ledger: &Ledger) -> Result<&Entry, PaymentError> {
    ledger
        .payer()
        .ok_or_else(|| PaymentError::from(anyhow!("positive net paid without an approved charge")))
}
