//! The Call aggregate, the fare table and the effects' retry schedule: pure
//! rules, no I/O.

pub mod backoff;
pub mod call;
pub mod fare;

pub use backoff::effect_backoff;
pub use call::{Applied, Call, CallRequest, CallStatus, CancelReason, Claim, Effects, TransitionError};
pub use fare::{FareRule, FareTable, Quote};
