//! Ledger entries: one money movement each (an advance, a final charge or a
//! refund), and the request that created it so a retried idempotency key can be
//! told apart from a reused one.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Which way an entry moves money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Taken when a driver accepts the call.
    Advance,
    /// Charged at settlement when the final fare exceeds what was paid.
    FinalCharge,
    /// Money given back to the customer.
    Refund,
}

impl EntryKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Advance => "ADVANCE",
            Self::FinalCharge => "FINAL_CHARGE",
            Self::Refund => "REFUND",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ADVANCE" => Some(Self::Advance),
            "FINAL_CHARGE" => Some(Self::FinalCharge),
            "REFUND" => Some(Self::Refund),
            _ => None,
        }
    }

    /// Charges take money from the customer; refunds give it back.
    pub fn is_charge(self) -> bool {
        matches!(self, Self::Advance | Self::FinalCharge)
    }
}

/// Where an entry stands with the payment provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    /// Recorded and (perhaps) sent to the provider; the outcome is not known yet.
    Pending,
    Approved,
    Declined,
}

impl EntryStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Declined => "DECLINED",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PENDING" => Some(Self::Pending),
            "APPROVED" => Some(Self::Approved),
            "DECLINED" => Some(Self::Declined),
            _ => None,
        }
    }
}

/// The command that created an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    ChargeAdvance,
    SettleFinal,
    Refund,
}

impl Command {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChargeAdvance => "CHARGE_ADVANCE",
            Self::SettleFinal => "SETTLE_FINAL",
            Self::Refund => "REFUND",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "CHARGE_ADVANCE" => Some(Self::ChargeAdvance),
            "SETTLE_FINAL" => Some(Self::SettleFinal),
            "REFUND" => Some(Self::Refund),
            _ => None,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller asked for, minus the idempotency key: two requests with the
/// same key must be equal here, or the key is being reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    ChargeAdvance {
        call_id: Uuid,
        customer_id: Uuid,
        amount_krw: i64,
        payment_method: String,
    },
    SettleFinal {
        call_id: Uuid,
        final_amount_krw: i64,
    },
    Refund {
        call_id: Uuid,
        amount_krw: i64,
    },
}

impl Request {
    /// The call the request is about.
    pub fn call_id(&self) -> Uuid {
        match self {
            Self::ChargeAdvance { call_id, .. }
            | Self::SettleFinal { call_id, .. }
            | Self::Refund { call_id, .. } => *call_id,
        }
    }

    /// Which command this is.
    pub fn command(&self) -> Command {
        match self {
            Self::ChargeAdvance { .. } => Command::ChargeAdvance,
            Self::SettleFinal { .. } => Command::SettleFinal,
            Self::Refund { .. } => Command::Refund,
        }
    }

    /// The amount the caller named: the advance, the final amount or the refund.
    pub fn amount_krw(&self) -> i64 {
        match self {
            Self::ChargeAdvance { amount_krw, .. } | Self::Refund { amount_krw, .. } => *amount_krw,
            Self::SettleFinal { final_amount_krw, .. } => *final_amount_krw,
        }
    }
}

/// One row of a call's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub entry_id: Uuid,
    pub call_id: Uuid,
    pub customer_id: Uuid,
    pub kind: EntryKind,
    pub status: EntryStatus,
    /// Always positive; `kind` says which way the money went.
    pub amount_krw: i64,
    /// The card token charged, or refunded to.
    pub payment_method: String,
    pub idempotency_key: String,
    /// The provider's reference when approved, its reason when declined.
    pub provider_reference: Option<String>,
    /// The command that created the entry.
    pub command: Command,
    /// The amount that command named (for a settlement, the final amount).
    pub requested_amount_krw: i64,
    /// Why money was refunded; empty for charges.
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

impl Entry {
    /// Whether `request` is the one that created this entry, so that repeating
    /// its idempotency key is a retry rather than a reuse.
    pub fn was_created_by(&self, request: &Request) -> bool {
        let same_command = self.command == request.command()
            && self.call_id == request.call_id()
            && self.requested_amount_krw == request.amount_krw();
        match request {
            Request::ChargeAdvance {
                customer_id,
                payment_method,
                ..
            } => same_command && self.customer_id == *customer_id && self.payment_method == *payment_method,
            Request::SettleFinal { .. } | Request::Refund { .. } => same_command,
        }
    }

    /// The entry's effect on what the customer has paid: approved charges
    /// count up, approved refunds count down, anything else counts nothing.
    pub fn paid_krw(&self) -> i64 {
        match (self.status, self.kind.is_charge()) {
            (EntryStatus::Approved, true) => self.amount_krw,
            (EntryStatus::Approved, false) => -self.amount_krw,
            (EntryStatus::Pending | EntryStatus::Declined, _) => 0,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(kind: EntryKind, status: EntryStatus, amount_krw: i64) -> Entry {
        Entry {
            entry_id: Uuid::new_v4(),
            call_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            kind,
            status,
            amount_krw,
            payment_method: "tok_visa".into(),
            idempotency_key: Uuid::new_v4().to_string(),
            provider_reference: None,
            command: match kind {
                EntryKind::Advance => Command::ChargeAdvance,
                EntryKind::FinalCharge => Command::SettleFinal,
                EntryKind::Refund => Command::Refund,
            },
            requested_amount_krw: amount_krw,
            reason: String::new(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn only_approved_entries_move_the_net() {
        assert_eq!(
            entry(EntryKind::Advance, EntryStatus::Approved, 100).paid_krw(),
            100
        );
        assert_eq!(
            entry(EntryKind::FinalCharge, EntryStatus::Approved, 30).paid_krw(),
            30
        );
        assert_eq!(
            entry(EntryKind::Refund, EntryStatus::Approved, 40).paid_krw(),
            -40
        );
        assert_eq!(entry(EntryKind::Advance, EntryStatus::Pending, 100).paid_krw(), 0);
        assert_eq!(entry(EntryKind::Refund, EntryStatus::Declined, 40).paid_krw(), 0);
    }

    #[test]
    fn a_retry_matches_but_a_changed_request_does_not() {
        let advance = entry(EntryKind::Advance, EntryStatus::Approved, 100);
        let same = Request::ChargeAdvance {
            call_id: advance.call_id,
            customer_id: advance.customer_id,
            amount_krw: 100,
            payment_method: "tok_visa".into(),
        };
        assert!(advance.was_created_by(&same));

        let other_amount = Request::ChargeAdvance {
            call_id: advance.call_id,
            customer_id: advance.customer_id,
            amount_krw: 101,
            payment_method: "tok_visa".into(),
        };
        assert!(!advance.was_created_by(&other_amount));

        let other_call = Request::ChargeAdvance {
            call_id: Uuid::new_v4(),
            customer_id: advance.customer_id,
            amount_krw: 100,
            payment_method: "tok_visa".into(),
        };
        assert!(!advance.was_created_by(&other_call));

        let other_command = Request::Refund {
            call_id: advance.call_id,
            amount_krw: 100,
        };
        assert!(!advance.was_created_by(&other_command));
    }

    #[test]
    fn stored_names_round_trip() {
        for kind in [EntryKind::Advance, EntryKind::FinalCharge, EntryKind::Refund] {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
        }
        for status in [EntryStatus::Pending, EntryStatus::Approved, EntryStatus::Declined] {
            assert_eq!(EntryStatus::parse(status.as_str()), Some(status));
        }
        for command in [Command::ChargeAdvance, Command::SettleFinal, Command::Refund] {
            assert_eq!(Command::parse(command.as_str()), Some(command));
        }
        assert_eq!(EntryKind::parse("advance"), None);
    }
}
