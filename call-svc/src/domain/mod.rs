//! The Call aggregate and the fare table: pure rules, no I/O.
//!
//! - [`call`]: the Call, its state machine, the claim an accept holds and the
//!   [`Effects`] a transition owes other services; its status and cancel
//!   reason convert to the `taxi.call.v1` enums (`From`), the one mapping the
//!   API and the events share.
//! - [`fare`]: the fare table and the quote of a route.

pub mod call;
pub mod fare;

pub use call::{
    Applied, Call, CallRequest, CallStatus, CancelReason, Claim, Effects, SearchPolicy, TransitionError,
};
pub use fare::{FareRule, FareTable, Quote};
