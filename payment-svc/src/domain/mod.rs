//! The payment ledger's rules, free of I/O: what an entry is, what a call's
//! customer has paid (net), what a settlement must charge or refund, and
//! whether a repeated idempotency key carries the same request.

pub mod entry;
pub mod ledger;

pub use entry::{Command, Entry, EntryKind, EntryStatus, Request};
pub use ledger::{Ledger, LedgerError, Settlement};
