//! End-to-end tests of the command path: call-svc, dispatch-svc and
//! payment-svc (and query-svc where a test reads the read side) started
//! in-process on random ports against one fresh PostgreSQL database each
//! test, driven through their gRPC APIs.
#![allow(unreachable_pub)]

mod helpers;

mod accept;
mod cancel;
mod effects;
mod metrics;
mod money;
mod offers;
mod permissions;
mod read_side;
mod recovery;
mod request;
mod trip;
mod validation;
