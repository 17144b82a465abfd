//! The methods that get labels of their own: every method in the taxi
//! protos, `grpc.health.v1` and reflection (v1 and v1alpha), read once from
//! their encoded descriptor sets.
//!
//! Any other path, a scanner's or a typo's, is labelled `unknown`, so a
//! caller cannot grow the label sets by inventing paths.

use std::{collections::HashMap, sync::OnceLock};

use prost::Message as _;
use prost_types::FileDescriptorSet;

/// The labels of one method, borrowed from the catalogue, which lives as
/// long as the process.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) struct Method {
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`, as
    /// go-grpc-prometheus names them.
    pub(crate) kind: &'static str,
    /// The fully qualified service, e.g. `taxi.call.v1.CallService`.
    pub(crate) service: &'static str,
    /// The method's name, e.g. `RequestCall`.
    pub(crate) method: &'static str,
}

/// What every path outside the catalogue is counted as.
pub(crate) const UNKNOWN: Method = Method {
    kind: "unknown",
    service: "unknown",
    method: "unknown",
};

impl Method {
    /// Whether either side sends a stream of messages, so the call is
    /// counted among the open streams while it lasts.
    pub(crate) fn streams(&self) -> bool {
        matches!(self.kind, "client_stream" | "server_stream" | "bidi_stream")
    }
}

/// Each known method's names, by its HTTP/2 path (`/service/method`).
struct Catalogue {
    by_path: HashMap<String, (String, String, &'static str)>,
}

/// The labels for a request to `path`.
pub(crate) fn lookup(path: &str) -> Method {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    let catalogue = CATALOGUE.get_or_init(Catalogue::load);
    match catalogue.by_path.get(path) {
        Some((service, method, kind)) => Method {
            kind,
            service,
            method,
        },
        None => UNKNOWN,
    }
}

impl Catalogue {
    fn load() -> Self {
        let sets = [
            taxi_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut by_path = HashMap::new();
        for encoded in sets {
            // These sets are compiled into the binary by build scripts, so
            // one that does not decode is a build fault; its methods are
            // then counted as unknown rather than stopping the service.
            let set = match FileDescriptorSet::decode(encoded) {
                Ok(set) => set,
                Err(error) => {
                    tracing::error!(%error, "a compiled-in descriptor set does not decode");
                    continue;
                }
            };
            for file in set.file {
                let package = file.package();
                for service in &file.service {
                    let service_name = if package.is_empty() {
                        service.name().to_owned()
                    } else {
                        format!("{package}.{}", service.name())
                    };
                    for method in &service.method {
                        let kind = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                        by_path.insert(
                            format!("/{service_name}/{}", method.name()),
                            (service_name.clone(), method.name().to_owned(), kind),
                        );
                    }
                }
            }
        }
        Self { by_path }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_taxi_health_and_reflection_methods_are_known_with_their_kind() {
        let check = lookup("/grpc.health.v1.Health/Check");
        assert_eq!(
            (check.kind, check.service, check.method),
            ("unary", "grpc.health.v1.Health", "Check")
        );
        assert_eq!(lookup("/grpc.health.v1.Health/Watch").kind, "server_stream");
        assert_eq!(
            lookup("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").kind,
            "bidi_stream"
        );
        assert_eq!(
            lookup("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo").kind,
            "bidi_stream"
        );
        let request = lookup("/taxi.call.v1.CallService/RequestCall");
        assert_eq!(
            (request.kind, request.service),
            ("unary", "taxi.call.v1.CallService")
        );
        let watch = lookup("/taxi.query.v1.QueryService/WatchCall");
        assert_eq!((watch.kind, watch.method), ("server_stream", "WatchCall"));
    }

    #[test]
    fn anything_else_is_unknown() {
        for path in [
            "/grpc.health.v1.Health/Nope",
            "/taxi.call.v1.CallService",
            "/",
            "/wp-login.php",
            "",
        ] {
            assert_eq!(lookup(path), UNKNOWN, "{path}");
        }
    }
}
