//! The Call aggregate and the fare table: pure rules, no I/O.

pub mod call;
pub mod fare;

pub use call::{Applied, Call, CallRequest, CallStatus, CancelReason, Claim, Effects, TransitionError};
pub use fare::{FareRule, FareTable, Quote};
