//! The business figures of the ledger an operator watches: revenue settled,
//! money refunded, charges by kind and result, declined payments.
//!
//! Each is counted by the process that recorded the outcome, right after the
//! transaction that recorded it (a concurrent retry that finds the outcome
//! already recorded counts nothing), so replicas' series add up without
//! double counting, and a replayed idempotency key never counts twice.
//! Labels are bounded: an entry kind and a result, from the closed lists
//! below.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::domain::{Command, Entry, EntryKind, EntryStatus};

/// What asking the provider for a charge came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChargeResult {
    Approved,
    Declined,
    /// No answer (unreachable or past the deadline); the entry stays PENDING
    /// and a retry asks again.
    ProviderUnavailable,
}

impl ChargeResult {
    const ALL: [Self; 3] = [Self::Approved, Self::Declined, Self::ProviderUnavailable];

    fn label(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::ProviderUnavailable => "provider_unavailable",
        }
    }
}

/// The `kind` label of a charge; `None` for a refund.
fn charge_kind(kind: EntryKind) -> Option<&'static str> {
    match kind {
        EntryKind::Advance => Some("advance"),
        EntryKind::FinalCharge => Some("final"),
        EntryKind::Refund => None,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChargeLabels {
    kind: &'static str,
    result: &'static str,
}

/// The ledger's metric handles, recording from the start whether or not
/// they are registered anywhere. Clones share the same series.
#[derive(Debug, Clone)]
pub struct PaymentMetrics {
    settled_krw: Counter,
    refunded_krw: Counter,
    charges: Family<ChargeLabels, Counter>,
    declined: Counter,
}

impl Default for PaymentMetrics {
    fn default() -> Self {
        let charges = Family::<ChargeLabels, Counter>::default();
        // Every series exists from the start, at 0, so that a rate or an
        // alert over it has a series before the first charge.
        for kind in [EntryKind::Advance, EntryKind::FinalCharge]
            .into_iter()
            .filter_map(charge_kind)
        {
            for result in ChargeResult::ALL {
                drop(charges.get_or_create(&ChargeLabels {
                    kind,
                    result: result.label(),
                }));
            }
        }
        Self {
            settled_krw: Counter::default(),
            refunded_krw: Counter::default(),
            charges,
            declined: Counter::default(),
        }
    }
}

impl PaymentMetrics {
    /// Registers every family in `registry`. Once per registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "payment_settled_krw",
            "Revenue settled, in KRW: the final amount of every settlement completed (the trip's \
             fare, or the cancel fee), once its charge or refund was approved",
            self.settled_krw.clone(),
        );
        registry.register(
            "payment_refunded_krw",
            "Money given back to customers, in KRW: approved refunds, those a settlement makes \
             and explicit ones",
            self.refunded_krw.clone(),
        );
        registry.register(
            "payment_charges",
            "Charges the provider was asked for, by kind (advance, final) and result (approved, \
             declined, provider_unavailable: no answer, asked again on retry)",
            self.charges.clone(),
        );
        registry.register(
            "payment_declined",
            "Payments the provider declined (charges, and refunds should it ever decline one)",
            self.declined.clone(),
        );
    }

    /// The provider gave no answer for `entry`.
    pub(crate) fn provider_unavailable(&self, entry: &Entry) {
        self.charged(entry.kind, ChargeResult::ProviderUnavailable);
    }

    /// The outcome of `entry` was just committed by this process.
    pub(crate) fn finished(&self, entry: &Entry) {
        match entry.status {
            EntryStatus::Approved => {
                self.charged(entry.kind, ChargeResult::Approved);
                if entry.kind == EntryKind::Refund {
                    self.refunded_krw.inc_by(krw(entry.amount_krw));
                }
                if entry.command == Command::SettleFinal {
                    self.settled(entry.requested_amount_krw);
                }
            }
            EntryStatus::Declined => {
                self.charged(entry.kind, ChargeResult::Declined);
                self.declined.inc();
            }
            EntryStatus::Pending => {}
        }
    }

    /// A settlement to `final_amount_krw` completed.
    pub(crate) fn settled(&self, final_amount_krw: i64) {
        self.settled_krw.inc_by(krw(final_amount_krw));
    }

    fn charged(&self, kind: EntryKind, result: ChargeResult) {
        if let Some(kind) = charge_kind(kind) {
            self.charges
                .get_or_create(&ChargeLabels {
                    kind,
                    result: result.label(),
                })
                .inc();
        }
    }
}

/// An amount as a counter's increment (amounts are never negative).
fn krw(amount: i64) -> u64 {
    u64::try_from(amount).unwrap_or(0)
}
