//! Tests that span services live here, so that no service crate depends on
//! another, not even as a dev-dependency (linkerd2-proxy keeps its
//! integration tests in a crate of their own for the same reason).
//!
//! - `tests/command_path/`: call-svc's API with the dispatch-svc, payment-svc
//!   and query-svc it needs, each started through its `App::build` on a random
//!   port against one fresh database per test: the trip saga, its recovery
//!   and compensations, and the read side it feeds.
//! - `tests/gateway/`: the gateway in front of all four services, over gRPC
//!   and gRPC-web: authentication, routing, limits, breakers, CORS, bad bytes
//!   and whole trips.
//!
//! Tests of one service alone stay in that service's `tests/api/`.
#![forbid(unsafe_code)]
