//! The read side's pure rules, decided without I/O.
//!
//! - [`projection`]: what each event means for the read models (the view it
//!   carries, the customer activity, the counters it bumps), or why it can
//!   never be projected.
//! - `counters`: the dashboard's counter fields, bucket widths and names, and
//!   the statistics computed from a bucket's counters at read time.
//!
//! The store applies a [`Projection`] and keeps the counters; the service
//! reads them back through the same names.

pub(crate) mod counters;
pub mod projection;

pub use projection::{
    Counters, CustomerCall, Projection, Uninterpretable, ViewUpdate, interpret, is_terminal,
};
