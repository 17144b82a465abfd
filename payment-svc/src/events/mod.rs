//! The events payment-svc appends to its outbox, all about the "payment"
//! aggregate of one call (aggregate id = call id): AdvancePaid,
//! PaymentDeclined, FinalSettled and PaymentRefunded.
//!
//! These build the payloads from domain values; the service numbers them with
//! the call's payment version and appends them in the transaction that
//! records the outcome. payment-svc publishes only: it consumes no events.

use taxi_proto::events::v1::{
    AdvancePaid, FinalSettled, PaymentDeclined, PaymentFacts, PaymentRefunded, event_envelope::Payload,
};
use uuid::Uuid;

use crate::domain::{Command, Entry, EntryKind, EntryStatus};

/// The events recording that `entry` was approved or declined, given the
/// call's net paid afterwards. A settlement's refund yields FinalSettled and
/// PaymentRefunded; a PENDING entry yields nothing.
pub fn for_finished(entry: &Entry, net_paid_krw: i64) -> Vec<Payload> {
    let facts = |amount_krw| PaymentFacts {
        entry_id: entry.entry_id.to_string(),
        call_id: entry.call_id.to_string(),
        customer_id: entry.customer_id.to_string(),
        amount_krw,
        net_paid_krw,
    };
    let refunded = || {
        Payload::PaymentRefunded(PaymentRefunded {
            payment: Some(facts(entry.amount_krw)),
            reason: entry.reason.clone(),
        })
    };
    match (entry.status, entry.kind, entry.command) {
        (EntryStatus::Pending, ..) => Vec::new(),
        (EntryStatus::Declined, ..) => vec![Payload::PaymentDeclined(PaymentDeclined {
            payment: Some(facts(entry.amount_krw)),
            reason: entry.provider_reference.clone().unwrap_or_default(),
        })],
        (EntryStatus::Approved, EntryKind::Advance, _) => vec![Payload::AdvancePaid(AdvancePaid {
            payment: Some(facts(entry.amount_krw)),
        })],
        (EntryStatus::Approved, EntryKind::Refund, Command::SettleFinal) => vec![
            Payload::FinalSettled(FinalSettled {
                payment: Some(facts(-entry.amount_krw)),
                final_amount_krw: entry.requested_amount_krw,
            }),
            refunded(),
        ],
        (EntryStatus::Approved, EntryKind::Refund, _) => vec![refunded()],
        (EntryStatus::Approved, EntryKind::FinalCharge, _) => vec![Payload::FinalSettled(FinalSettled {
            payment: Some(facts(entry.amount_krw)),
            final_amount_krw: entry.requested_amount_krw,
        })],
    }
}

/// FinalSettled for a settlement that moved no money (the net already was the
/// final amount): no entry, amount 0.
pub fn settled_without_entry(
    call_id: Uuid,
    customer_id: Option<Uuid>,
    final_amount_krw: i64,
    net_paid_krw: i64,
) -> Payload {
    Payload::FinalSettled(FinalSettled {
        payment: Some(PaymentFacts {
            entry_id: String::new(),
            call_id: call_id.to_string(),
            customer_id: customer_id.map(|id| id.to_string()).unwrap_or_default(),
            amount_krw: 0,
            net_paid_krw,
        }),
        final_amount_krw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entry::tests::entry;

    fn amounts(payloads: &[Payload]) -> Vec<(&'static str, i64)> {
        payloads
            .iter()
            .map(|p| match p {
                Payload::AdvancePaid(e) => ("advance_paid", e.payment.as_ref().map_or(0, |f| f.amount_krw)),
                Payload::PaymentDeclined(e) => ("declined", e.payment.as_ref().map_or(0, |f| f.amount_krw)),
                Payload::FinalSettled(e) => ("final_settled", e.payment.as_ref().map_or(0, |f| f.amount_krw)),
                Payload::PaymentRefunded(e) => ("refunded", e.payment.as_ref().map_or(0, |f| f.amount_krw)),
                _ => ("other", 0),
            })
            .collect()
    }

    #[test]
    fn a_settlement_refund_is_a_negative_final_settlement_and_a_refund() {
        let mut refund = entry(EntryKind::Refund, EntryStatus::Approved, 2_000);
        refund.command = Command::SettleFinal;
        refund.requested_amount_krw = 8_000;
        let events = for_finished(&refund, 8_000);
        assert_eq!(amounts(&events), [("final_settled", -2_000), ("refunded", 2_000)]);
        assert!(matches!(&events[0], Payload::FinalSettled(e) if e.final_amount_krw == 8_000));
    }

    #[test]
    fn a_final_charge_is_a_positive_final_settlement() {
        let mut charge = entry(EntryKind::FinalCharge, EntryStatus::Approved, 2_300);
        charge.requested_amount_krw = 12_300;
        assert_eq!(
            amounts(&for_finished(&charge, 12_300)),
            [("final_settled", 2_300)]
        );
    }

    #[test]
    fn approvals_declines_and_plain_refunds_have_one_event_each() {
        let advance = entry(EntryKind::Advance, EntryStatus::Approved, 10_000);
        assert_eq!(
            amounts(&for_finished(&advance, 10_000)),
            [("advance_paid", 10_000)]
        );

        let mut declined = entry(EntryKind::Advance, EntryStatus::Declined, 10_000);
        declined.provider_reference = Some("card declined".into());
        let events = for_finished(&declined, 0);
        assert!(matches!(&events[..], [Payload::PaymentDeclined(e)] if e.reason == "card declined"));

        let refund = entry(EntryKind::Refund, EntryStatus::Approved, 500);
        assert_eq!(amounts(&for_finished(&refund, 9_500)), [("refunded", 500)]);

        let pending = entry(EntryKind::Advance, EntryStatus::Pending, 10_000);
        assert!(for_finished(&pending, 0).is_empty());
    }
}
