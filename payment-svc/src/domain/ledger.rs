//! A call's ledger and its arithmetic: the net paid, what a settlement must
//! charge or refund, and which new money movements it allows.

use uuid::Uuid;

use super::entry::{Entry, EntryKind, EntryStatus};

/// The money movements a call's ledger refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("the call already has an advance; a second one is not allowed")]
    AdvanceExists,
    #[error("a refund of {requested_krw} KRW exceeds the {refundable_krw} KRW refundable")]
    RefundExceedsNet { requested_krw: i64, refundable_krw: i64 },
    #[error("the call has no approved payment to charge {0} KRW to")]
    NoPaymentMethod(i64),
    /// Another payment of the call is in flight, so its net is not known.
    #[error("another payment for the call is in progress")]
    PaymentInProgress,
}

/// What settling a call to a final amount takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The customer owes this much more.
    Charge(i64),
    /// The customer paid this much too much.
    Refund(i64),
    /// The net already equals the final amount.
    Nothing,
}

impl Settlement {
    /// The movement that brings `net_paid_krw` to `final_amount_krw`.
    pub fn between(net_paid_krw: i64, final_amount_krw: i64) -> Self {
        let diff = final_amount_krw - net_paid_krw;
        match diff.signum() {
            1 => Self::Charge(diff),
            -1 => Self::Refund(-diff),
            _ => Self::Nothing,
        }
    }

    /// The movement as a signed amount: positive charges, negative refunds.
    pub fn signed_krw(self) -> i64 {
        match self {
            Self::Charge(amount) => amount,
            Self::Refund(amount) => -amount,
            Self::Nothing => 0,
        }
    }
}

/// Every entry of one call, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: Vec<Entry>,
}

impl Ledger {
    pub fn new(entries: Vec<Entry>) -> Self {
        Self { entries }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// Approved advance and final charges minus approved refunds.
    pub fn net_paid_krw(&self) -> i64 {
        self.entries.iter().map(Entry::paid_krw).sum()
    }

    /// Entries whose outcome is not recorded yet.
    pub fn pending(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.status == EntryStatus::Pending)
    }

    /// What may still be refunded: the net minus refunds already in flight.
    pub fn refundable_krw(&self) -> i64 {
        let in_flight: i64 = self
            .pending()
            .filter(|e| e.kind == EntryKind::Refund)
            .map(|e| e.amount_krw)
            .sum();
        self.net_paid_krw() - in_flight
    }

    /// The latest approved charge: whose card further charges and refunds use.
    pub fn payer(&self) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.kind.is_charge() && e.status == EntryStatus::Approved)
    }

    /// Whether `customer_id` paid (or tried to pay) for this call.
    pub fn involves_customer(&self, customer_id: Uuid) -> bool {
        self.entries.iter().any(|e| e.customer_id == customer_id)
    }

    /// A call has at most one advance that is pending or approved; after a
    /// decline the customer may try again.
    pub fn check_advance(&self) -> Result<(), LedgerError> {
        let live = self.entries.iter().any(|e| {
            e.kind == EntryKind::Advance && matches!(e.status, EntryStatus::Pending | EntryStatus::Approved)
        });
        if live {
            Err(LedgerError::AdvanceExists)
        } else {
            Ok(())
        }
    }

    /// A refund may give back at most what is refundable.
    pub fn check_refund(&self, amount_krw: i64) -> Result<(), LedgerError> {
        let refundable_krw = self.refundable_krw();
        if amount_krw > refundable_krw {
            Err(LedgerError::RefundExceedsNet {
                requested_krw: amount_krw,
                refundable_krw: refundable_krw.max(0),
            })
        } else {
            Ok(())
        }
    }

    /// What settling to `final_amount_krw` takes. The net must be known (no
    /// entry pending), and a charge needs an approved payment to charge again.
    pub fn settle(&self, final_amount_krw: i64) -> Result<Settlement, LedgerError> {
        if self.pending().next().is_some() {
            return Err(LedgerError::PaymentInProgress);
        }
        let settlement = Settlement::between(self.net_paid_krw(), final_amount_krw);
        match settlement {
            Settlement::Charge(amount) if self.payer().is_none() => Err(LedgerError::NoPaymentMethod(amount)),
            Settlement::Refund(_) | Settlement::Charge(_) | Settlement::Nothing => Ok(settlement),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entry::tests::entry;

    use EntryKind::{Advance, FinalCharge, Refund};
    use EntryStatus::{Approved, Declined, Pending};

    fn ledger(entries: &[(EntryKind, EntryStatus, i64)]) -> Ledger {
        Ledger::new(entries.iter().map(|&(k, s, a)| entry(k, s, a)).collect())
    }

    #[test]
    fn net_is_approved_charges_minus_approved_refunds() {
        let ledger = ledger(&[
            (Advance, Approved, 10_000),
            (FinalCharge, Approved, 2_500),
            (Refund, Approved, 1_000),
            (Refund, Declined, 500),
            (Refund, Pending, 700),
        ]);
        assert_eq!(ledger.net_paid_krw(), 11_500);
        assert_eq!(ledger.refundable_krw(), 10_800);
    }

    #[test]
    fn an_empty_ledger_has_paid_nothing() {
        assert_eq!(Ledger::default().net_paid_krw(), 0);
        assert_eq!(Ledger::default().settle(0), Ok(Settlement::Nothing));
    }

    #[test]
    fn settlement_charges_the_shortfall_and_refunds_the_excess() {
        assert_eq!(Settlement::between(10_000, 12_300), Settlement::Charge(2_300));
        assert_eq!(Settlement::between(10_000, 8_000), Settlement::Refund(2_000));
        assert_eq!(Settlement::between(10_000, 0), Settlement::Refund(10_000));
        assert_eq!(Settlement::between(10_000, 10_000), Settlement::Nothing);
        assert_eq!(Settlement::Refund(2_000).signed_krw(), -2_000);
        assert_eq!(Settlement::Charge(2_300).signed_krw(), 2_300);
    }

    #[test]
    fn after_settlement_the_net_equals_the_final_amount() {
        for (advance, final_amount) in [(10_000, 12_300), (10_000, 7_000), (10_000, 0), (5_000, 5_000)] {
            let before = ledger(&[(Advance, Approved, advance)]);
            let after = match before.settle(final_amount).expect("settleable") {
                Settlement::Charge(a) => ledger(&[(Advance, Approved, advance), (FinalCharge, Approved, a)]),
                Settlement::Refund(a) => ledger(&[(Advance, Approved, advance), (Refund, Approved, a)]),
                Settlement::Nothing => before.clone(),
            };
            assert_eq!(after.net_paid_krw(), final_amount);
        }
    }

    #[test]
    fn settling_a_charge_needs_an_approved_payment() {
        let declined = ledger(&[(Advance, Declined, 10_000)]);
        assert_eq!(declined.settle(3_000), Err(LedgerError::NoPaymentMethod(3_000)));
        assert_eq!(declined.settle(0), Ok(Settlement::Nothing));
    }

    #[test]
    fn settling_waits_for_pending_payments() {
        let pending = ledger(&[(Advance, Pending, 10_000)]);
        assert_eq!(pending.settle(0), Err(LedgerError::PaymentInProgress));
    }

    #[test]
    fn refunds_are_bounded_by_the_net_minus_refunds_in_flight() {
        let ledger = ledger(&[(Advance, Approved, 10_000), (Refund, Pending, 4_000)]);
        assert_eq!(ledger.check_refund(6_000), Ok(()));
        assert_eq!(
            ledger.check_refund(6_001),
            Err(LedgerError::RefundExceedsNet {
                requested_krw: 6_001,
                refundable_krw: 6_000
            })
        );
    }

    #[test]
    fn one_live_advance_per_call() {
        assert_eq!(
            ledger(&[(Advance, Approved, 1)]).check_advance(),
            Err(LedgerError::AdvanceExists)
        );
        assert_eq!(
            ledger(&[(Advance, Pending, 1)]).check_advance(),
            Err(LedgerError::AdvanceExists)
        );
        assert_eq!(ledger(&[(Advance, Declined, 1)]).check_advance(), Ok(()));
    }

    #[test]
    fn the_payer_is_the_latest_approved_charge() {
        let mut entries = vec![entry(Advance, Declined, 1), entry(Advance, Approved, 1)];
        entries[1].payment_method = "tok_second".into();
        let ledger = Ledger::new(entries);
        assert_eq!(
            ledger.payer().map(|e| e.payment_method.as_str()),
            Some("tok_second")
        );
    }
}
