//! End-to-end tests of the command path: call-svc, dispatch-svc and
#![allow(unreachable_pub)]
//! payment-svc started in-process on random ports against one fresh
//! PostgreSQL database each test, driven through their gRPC APIs.

mod helpers;

mod accept;
mod cancel;
mod effects;
mod offers;
mod permissions;
mod read_side;
mod recovery;
mod request;
mod trip;
mod validation;
