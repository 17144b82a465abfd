//! Requests sent directly to a backend, past the gateway, carrying the
//! identity token the gateway (for people) or call-svc (for the `service`
//! role) would have signed with the test keys.

use svc_kit::identity::Caller;
use tonic::Request;
use uuid::Uuid;

/// `message` on behalf of `caller`.
pub fn with_identity<T>(caller: Caller, message: T) -> Request<T> {
    svc_kit::testing::as_caller(&caller, message)
}

/// `message` on behalf of the customer `customer`.
pub fn as_customer<T>(customer: Uuid, message: T) -> Request<T> {
    with_identity(Caller::Customer(customer), message)
}

/// `message` on behalf of the driver `driver`.
pub fn as_driver<T>(driver: Uuid, message: T) -> Request<T> {
    with_identity(Caller::Driver(driver), message)
}

/// `message` from another service: how a test reads what a backend holds
/// whoever it belongs to.
pub fn as_service<T>(message: T) -> Request<T> {
    with_identity(Caller::Service("test".into()), message)
}

/// Whoever sends a request, however they prove it: a [`Caller`] signs its
/// identity as the gateway or call-svc would (straight to a backend); the
/// gateway tests' users carry a bearer token (through the gateway). The
/// steps of a trip in [`crate::trip`] take either.
pub trait Credentials {
    /// `message`, sent by this one.
    fn attach<T>(&self, message: T) -> Request<T>;
}

impl Credentials for Caller {
    fn attach<T>(&self, message: T) -> Request<T> {
        svc_kit::testing::as_caller(self, message)
    }
}
