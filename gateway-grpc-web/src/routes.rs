//! The public API: which backend owns each method, how it is called, and which
//! methods are internal. Built from the protobuf descriptors, so a new public
//! method is routed without touching the gateway.

use std::{collections::HashMap, time::Duration};

use prost::Message as _;
use prost_types::FileDescriptorSet;

use taxi_proto::{
    call::v1::call_service_server, dispatch::v1::dispatch_service_server,
    payment::v1::payment_service_server, query::v1::query_service_server,
};

use crate::config::LimitsConfig;

/// Methods only services may call; from outside they are PERMISSION_DENIED,
/// and reflection does not show them.
pub const INTERNAL_METHODS: [&str; 6] = [
    "/taxi.dispatch.v1.DispatchService/CheckAvailability",
    "/taxi.dispatch.v1.DispatchService/AssignDriver",
    "/taxi.dispatch.v1.DispatchService/ReleaseDriver",
    "/taxi.payment.v1.PaymentService/ChargeAdvance",
    "/taxi.payment.v1.PaymentService/SettleFinal",
    "/taxi.payment.v1.PaymentService/Refund",
];

/// A service the gateway forwards to. The one list of backends: their names,
/// the public service each one serves, and (in the config) where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Call,
    Dispatch,
    Payment,
    Query,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Self; 4] = [Self::Call, Self::Dispatch, Self::Payment, Self::Query];

    /// The name in logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Call => "call-svc",
            Self::Dispatch => "dispatch-svc",
            Self::Payment => "payment-svc",
            Self::Query => "query-svc",
        }
    }

    /// The gRPC service it owns (`pkg.Service`), which the gateway serves
    /// under the same name and which its health is reported as.
    pub fn service(self) -> &'static str {
        match self {
            Self::Call => call_service_server::SERVICE_NAME,
            Self::Dispatch => dispatch_service_server::SERVICE_NAME,
            Self::Payment => payment_service_server::SERVICE_NAME,
            Self::Query => query_service_server::SERVICE_NAME,
        }
    }

    /// The backend owning the service named `name`, if it is public.
    pub fn serving(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|backend| backend.service() == name)
    }
}

/// How one method is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub backend: Backend,
    pub internal: bool,
    /// A server stream: no deadline, no retry.
    pub streaming: bool,
    /// `Get*` and `List*`: safe to retry.
    pub idempotent_read: bool,
    /// None for streams.
    pub deadline: Option<Duration>,
}

/// Every method of the public services, by its HTTP path `/pkg.Service/Method`.
#[derive(Debug, Clone)]
pub struct RouteTable(HashMap<String, Route>);

impl RouteTable {
    pub fn from_descriptors(limits: &LimitsConfig) -> anyhow::Result<Self> {
        let set = FileDescriptorSet::decode(taxi_proto::FILE_DESCRIPTOR_SET)?;
        let mut routes = HashMap::new();
        for file in &set.file {
            for service in &file.service {
                let full = format!("{}.{}", file.package(), service.name());
                let Some(backend) = Backend::serving(&full) else {
                    continue;
                };
                for method in &service.method {
                    let path = format!("/{full}/{}", method.name());
                    let streaming = method.server_streaming();
                    let idempotent_read =
                        !streaming && (method.name().starts_with("Get") || method.name().starts_with("List"));
                    let deadline = match (streaming, idempotent_read) {
                        (true, _) => None,
                        (false, true) => Some(Duration::from_millis(limits.read_deadline_ms)),
                        (false, false) => Some(Duration::from_millis(limits.command_deadline_ms)),
                    };
                    let route = Route {
                        backend,
                        internal: INTERNAL_METHODS.contains(&path.as_str()),
                        streaming,
                        idempotent_read,
                        deadline,
                    };
                    routes.insert(path, route);
                }
            }
        }
        anyhow::ensure!(
            INTERNAL_METHODS.iter().all(|m| routes.contains_key(*m)),
            "an internal method is missing from the descriptors"
        );
        Ok(Self(routes))
    }

    pub fn get(&self, path: &str) -> Option<&Route> {
        self.0.get(path)
    }
}

/// The descriptors as clients may see them: the public services without their
/// internal methods, plus every message type they use.
pub fn public_descriptors() -> anyhow::Result<FileDescriptorSet> {
    let mut set = FileDescriptorSet::decode(taxi_proto::FILE_DESCRIPTOR_SET)?;
    for file in &mut set.file {
        let package = file.package().to_owned();
        file.service
            .retain(|s| Backend::serving(&format!("{package}.{}", s.name())).is_some());
        for service in &mut file.service {
            let prefix = format!("/{package}.{}/", service.name());
            service
                .method
                .retain(|m| !INTERNAL_METHODS.contains(&format!("{prefix}{}", m.name()).as_str()));
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::from_descriptors(&LimitsConfig::default()).expect("descriptors")
    }

    #[test]
    fn every_public_method_is_routed_to_its_backend() {
        let table = table();
        let request = table
            .get("/taxi.call.v1.CallService/RequestCall")
            .expect("routed");
        assert_eq!(
            (request.backend, request.internal, request.idempotent_read),
            (Backend::Call, false, false)
        );
        let view = table
            .get("/taxi.query.v1.QueryService/GetCallView")
            .expect("routed");
        assert!(view.idempotent_read);
        assert_eq!(view.deadline, Some(Duration::from_millis(3_000)));
    }

    #[test]
    fn streams_have_no_deadline_and_no_retry() {
        let table = table();
        for path in [
            "/taxi.query.v1.QueryService/WatchCall",
            "/taxi.dispatch.v1.DispatchService/WatchOffers",
        ] {
            let route = table.get(path).expect("routed");
            assert!(
                route.streaming && !route.idempotent_read && route.deadline.is_none(),
                "{path}"
            );
        }
    }

    #[test]
    fn internal_methods_are_marked_and_hidden_from_reflection() {
        let table = table();
        assert!(
            table
                .get("/taxi.payment.v1.PaymentService/ChargeAdvance")
                .expect("known")
                .internal
        );
        assert!(table.get("/taxi.events.v1.Nothing/X").is_none());
        let public = public_descriptors().expect("public");
        let methods: Vec<String> = public
            .file
            .iter()
            .flat_map(|f| {
                f.service
                    .iter()
                    .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
            })
            .collect();
        assert!(methods.contains(&"ListPayments".to_owned()));
        assert!(
            !methods
                .iter()
                .any(|m| m == "ChargeAdvance" || m == "AssignDriver")
        );
    }
}
