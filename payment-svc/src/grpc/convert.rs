//! Protobuf ↔ domain: request validation (every bad field reported at once,
//! nothing parsed half-way) and ledger entries on the wire.

use svc_kit::validate::{InvalidArgument, Violations};
use taxi_proto::payment::v1 as pb;
use uuid::Uuid;

use crate::{
    domain::{Entry, EntryKind, EntryStatus},
    service::{ChargeAdvance, Refund, SettleFinal},
};

/// Longest card token accepted.
const MAX_PAYMENT_METHOD_LEN: usize = 64;
/// Longest refund reason accepted.
const MAX_REASON_LEN: usize = 200;

/// What `finish` reports when a parser left a field unset without recording
/// why; every `Violations` check records one, so this is never sent.
fn incomplete() -> InvalidArgument {
    InvalidArgument::field("request", "is malformed")
}

pub(crate) fn charge_advance(
    req: &pb::ChargeAdvanceRequest,
    max_amount_krw: i64,
) -> Result<ChargeAdvance, InvalidArgument> {
    let mut v = Violations::new();
    let call_id = v.uuid("call_id", &req.call_id);
    let customer_id = v.uuid("customer_id", &req.customer_id);
    let amount_krw = v.within("amount_krw", req.amount_krw, 1, max_amount_krw);
    let payment_method = v.text("payment_method", &req.payment_method, MAX_PAYMENT_METHOD_LEN);
    let idempotency_key = v.idempotency_key("idempotency_key", &req.idempotency_key);
    v.finish()?;
    match (call_id, customer_id, amount_krw, payment_method, idempotency_key) {
        (Some(call_id), Some(customer_id), Some(amount_krw), Some(payment_method), Some(idempotency_key)) => {
            Ok(ChargeAdvance {
                call_id,
                customer_id,
                amount_krw,
                payment_method,
                idempotency_key,
            })
        }
        _ => Err(incomplete()),
    }
}

pub(crate) fn settle_final(
    req: &pb::SettleFinalRequest,
    max_amount_krw: i64,
) -> Result<SettleFinal, InvalidArgument> {
    let mut v = Violations::new();
    let call_id = v.uuid("call_id", &req.call_id);
    let final_amount_krw = v.within("final_amount_krw", req.final_amount_krw, 0, max_amount_krw);
    let idempotency_key = v.idempotency_key("idempotency_key", &req.idempotency_key);
    let payment_method = v.optional_text("payment_method", &req.payment_method, MAX_PAYMENT_METHOD_LEN);
    v.finish()?;
    match (call_id, final_amount_krw, idempotency_key, payment_method) {
        (Some(call_id), Some(final_amount_krw), Some(idempotency_key), Some(payment_method)) => {
            Ok(SettleFinal {
                call_id,
                final_amount_krw,
                idempotency_key,
                payment_method: Some(payment_method).filter(|card| !card.is_empty()),
            })
        }
        _ => Err(incomplete()),
    }
}

pub(crate) fn refund(req: &pb::RefundRequest, max_amount_krw: i64) -> Result<Refund, InvalidArgument> {
    let mut v = Violations::new();
    let call_id = v.uuid("call_id", &req.call_id);
    let amount_krw = v.within("amount_krw", req.amount_krw, 1, max_amount_krw);
    let idempotency_key = v.idempotency_key("idempotency_key", &req.idempotency_key);
    let reason = v.optional_text("reason", &req.reason, MAX_REASON_LEN);
    v.finish()?;
    match (call_id, amount_krw, idempotency_key, reason) {
        (Some(call_id), Some(amount_krw), Some(idempotency_key), Some(reason)) => Ok(Refund {
            call_id,
            amount_krw,
            idempotency_key,
            reason,
        }),
        _ => Err(incomplete()),
    }
}

pub(crate) fn call_id(req: &pb::ListPaymentsRequest) -> Result<Uuid, InvalidArgument> {
    let mut v = Violations::new();
    let call_id = v.uuid("call_id", &req.call_id);
    v.finish()?;
    call_id.ok_or_else(incomplete)
}

pub(crate) fn ledger_entry(entry: &Entry) -> pb::LedgerEntry {
    let kind = match entry.kind {
        EntryKind::Advance => pb::EntryKind::Advance,
        EntryKind::FinalCharge => pb::EntryKind::FinalCharge,
        EntryKind::Refund => pb::EntryKind::Refund,
    };
    let status = match entry.status {
        EntryStatus::Pending => pb::EntryStatus::Pending,
        EntryStatus::Approved => pb::EntryStatus::Approved,
        EntryStatus::Declined => pb::EntryStatus::Declined,
    };
    pb::LedgerEntry {
        entry_id: entry.entry_id.to_string(),
        call_id: entry.call_id.to_string(),
        customer_id: entry.customer_id.to_string(),
        kind: kind.into(),
        status: status.into(),
        amount_krw: entry.amount_krw,
        idempotency_key: entry.idempotency_key.clone(),
        provider_reference: entry.provider_reference.clone().unwrap_or_default(),
        created_at: Some(svc_kit::clock::to_proto(entry.created_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: InvalidArgument) -> Vec<String> {
        err.0.into_iter().map(|(field, _)| field).collect()
    }

    #[test]
    fn every_bad_advance_field_is_named() {
        let req = pb::ChargeAdvanceRequest {
            call_id: "nope".into(),
            customer_id: String::new(),
            amount_krw: 0,
            payment_method: "x".repeat(65),
            idempotency_key: String::new(),
        };
        let err = charge_advance(&req, 1_000).expect_err("all bad");
        assert_eq!(
            fields(err),
            [
                "call_id",
                "customer_id",
                "amount_krw",
                "payment_method",
                "idempotency_key"
            ]
        );
    }

    #[test]
    fn amounts_are_bounded_by_the_configured_maximum() {
        let req = pb::SettleFinalRequest {
            call_id: Uuid::new_v4().to_string(),
            final_amount_krw: 1_001,
            idempotency_key: "k".into(),
            payment_method: String::new(),
        };
        assert_eq!(
            fields(settle_final(&req, 1_000).expect_err("too much")),
            ["final_amount_krw"]
        );
        let zero = pb::SettleFinalRequest {
            final_amount_krw: 0,
            ..req
        };
        assert!(settle_final(&zero, 1_000).is_ok());
    }

    #[test]
    fn a_long_refund_reason_is_rejected() {
        let req = pb::RefundRequest {
            call_id: Uuid::new_v4().to_string(),
            amount_krw: 1,
            idempotency_key: "k".into(),
            reason: "r".repeat(201),
        };
        assert_eq!(fields(refund(&req, 1_000).expect_err("long")), ["reason"]);
    }
}
