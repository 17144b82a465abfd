//! Tests that span services live here, so that no service crate depends on
//! another, not even as a dev-dependency (linkerd2-proxy keeps its
//! integration tests in a crate of their own for the same reason).
//!
//! The library starts what the tests run against; the test binaries hold the
//! tests and what only their suite needs:
//!
//! - [`system`]: the backends of one test ([`System`], started through
//!   [`SystemBuilder`]): a fresh database, an isolated NATS prefix, a Redis
//!   key prefix, and dispatch-svc, payment-svc, call-svc (and, when asked,
//!   query-svc) each started through its `App::build` on a random port with
//!   the test trust keys. A test can stop, restart or kill one service, run a
//!   second call-svc replica, and ask the backends directly as a service.
//! - [`gateway`]: the gateway in front of a [`System`] ([`Gateway`]), with
//!   the test settings it runs with.
//! - [`identity`]: requests sent directly to a backend on behalf of a
//!   customer, a driver or a service, signed as the gateway or call-svc would;
//!   [`identity::Credentials`], whatever proves who sends a request.
//! - [`booking`]: the trip every test books (pickup, drop-off, the request).
//! - [`trip`]: its steps (a driver online, the request, accept, start,
//!   complete), sent straight to a backend or through the gateway alike.
//! - [`metrics`]: scraping an admin port and reading its samples.
//! - [`processes`]: the five services as separate processes of their own
//!   binaries, configured by environment variables, as deployed.
//! - [`poll`](mod@poll): waiting for something the services do in the background.
//!
//! The suites:
//!
//! - `tests/command_path/`: call-svc's API with the dispatch-svc, payment-svc
//!   and query-svc it needs, against one fresh database per test: the trip
//!   saga, its recovery and compensations, and the read side it feeds.
//! - `tests/gateway/`: the gateway in front of all four services, over gRPC
//!   and gRPC-web: authentication, routing, limits, breakers, CORS, bad bytes
//!   and whole trips.
//! - `tests/architecture.rs`: the one service shape, checked in the sources.
//!
//! Tests of one service alone stay in that service's `tests/api/`.
#![forbid(unsafe_code)]

pub mod booking;
pub mod gateway;
pub mod identity;
pub mod metrics;
pub mod poll;
pub mod processes;
pub mod system;
pub mod trip;

pub use booking::{DROPOFF, PICKUP, call_request};
pub use gateway::Gateway;
pub use identity::{as_customer, as_driver, as_service, with_identity};
pub use poll::poll;
pub use system::{QuerySettings, System, SystemBuilder, test_call_config};
