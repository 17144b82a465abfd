//! Bad bytes are bad input: a request that is not its method's message is
//! INVALID_ARGUMENT and one over the size limit RESOURCE_EXHAUSTED, on every
//! service and through the gateway over gRPC and gRPC-web; either way nothing
//! is written and the services go on answering.

use bytes::Bytes;
use prost::Message as _;
use taxi_proto::call::v1::RequestCallRequest;
use tonic::Code;

use crate::{
    helpers::*,
    raw::{Clients, Method, TARGETS, Target, by_path, methods},
};

/// Payloads that are no protobuf message at all, whatever the type.
const MALFORMED: [&[u8]; 5] = [
    // Field number 0.
    &[0x00],
    // A tag whose varint never ends.
    &[0xff; 11],
    // Field 1 announces 5 bytes and has 1.
    &[0x0a, 0x05, 0x01],
    // Wire type 7 does not exist.
    &[0x0f],
    // A group that ends without having started.
    &[0x0c],
];

/// Larger than the services' limit, 4 MiB, and the gateway's for buffered
/// reads, 256 KiB; a valid RequestCallRequest but for its size.
fn oversized() -> Bytes {
    RequestCallRequest {
        idempotency_key: "k".repeat(4 * 1024 * 1024 + 1),
        ..call_request()
    }
    .encode_to_vec()
    .into()
}

/// What a client should hear for bytes the method cannot decode.
pub fn expected_for_undecodable(method: &Method, target: Target) -> Code {
    if method.internal() && target != Target::Direct {
        // The gateway refuses internal methods before anything reads the body.
        Code::PermissionDenied
    } else {
        Code::InvalidArgument
    }
}

/// Every service answers valid requests, directly and through the gateway.
pub async fn assert_every_service_answers(clients: &Clients<'_>) {
    for target in TARGETS {
        for (path, expected) in [
            ("/taxi.call.v1.CallService/QuoteFare", Code::Ok),
            ("/taxi.dispatch.v1.DispatchService/GetDriver", Code::NotFound),
            ("/taxi.payment.v1.PaymentService/ListPayments", Code::Ok),
            ("/taxi.query.v1.QueryService/ListMyCalls", Code::Ok),
        ] {
            let method = by_path(path);
            let status = clients.send(&method, target, method.valid.clone()).await;
            assert_eq!(status.code(), expected, "{path} via {target:?}: {status:?}");
        }
    }
}

#[tokio::test]
async fn undecodable_requests_are_invalid_argument_on_every_method_directly_and_through_the_gateway() {
    // Arrange
    let app = spawn_app().await;
    let clients = Clients::new(&app);
    let before = app.stored().await;

    // Act / Assert
    for method in methods() {
        for payload in MALFORMED {
            assert!(
                !(method.decodes)(payload),
                "{payload:?} decodes for {}",
                method.path
            );
            for target in TARGETS {
                let status = clients.send(&method, target, Bytes::from_static(payload)).await;

                let expected = expected_for_undecodable(&method, target);
                assert_eq!(
                    status.code(),
                    expected,
                    "{} via {target:?} with {payload:?}: {status:?}",
                    method.path
                );
                if expected == Code::InvalidArgument {
                    let names = format!("the request is not a valid {} message", method.request_type());
                    assert!(status.message().starts_with(&names), "{status:?}");
                }
            }
        }
    }
    assert_eq!(app.stored().await, before, "nothing is written");
    assert_every_service_answers(&clients).await;
}

#[tokio::test]
async fn a_call_request_whose_key_is_not_utf8_is_invalid_argument_and_stores_nothing() {
    // Arrange
    let app = spawn_app().await;
    let clients = Clients::new(&app);
    let method = by_path("/taxi.call.v1.CallService/RequestCall");
    let mut payload = call_request().encode_to_vec();
    // Field 4 (idempotency_key), two bytes that are not UTF-8.
    payload.extend_from_slice(&[0x22, 0x02, 0xc3, 0x28]);

    for target in TARGETS {
        // Act
        let status = clients.send(&method, target, payload.clone().into()).await;

        // Assert
        assert_eq!(status.code(), Code::InvalidArgument, "via {target:?}: {status:?}");
        assert!(
            status
                .message()
                .starts_with("the request is not a valid taxi.call.v1.RequestCallRequest message"),
            "{status:?}"
        );
    }
    assert_eq!(app.calls_stored().await, 0);
}

#[tokio::test]
async fn oversized_requests_are_resource_exhausted_directly_and_through_the_gateway() {
    // Arrange
    let app = spawn_app().await;
    let clients = Clients::new(&app);
    let before = app.stored().await;
    let payload = oversized();
    let one_per_service = [
        "/taxi.call.v1.CallService/RequestCall",
        "/taxi.dispatch.v1.DispatchService/RegisterDriver",
        "/taxi.payment.v1.PaymentService/ChargeAdvance",
        "/taxi.query.v1.QueryService/WatchCall",
    ];
    // A command goes on to its service, which applies its limit; a read is
    // buffered by the gateway for retries, which applies its own.
    let through_the_gateway = [
        "/taxi.call.v1.CallService/RequestCall",
        "/taxi.call.v1.CallService/GetCall",
    ];

    // Act
    let mut answers = Vec::new();
    for path in one_per_service {
        let status = clients
            .send(&by_path(path), Target::Direct, payload.clone())
            .await;
        answers.push((path, Target::Direct, status));
    }
    for path in through_the_gateway {
        for target in [Target::Gateway, Target::GatewayWeb] {
            let status = clients.send(&by_path(path), target, payload.clone()).await;
            answers.push((path, target, status));
        }
    }

    // Assert
    for (path, target, status) in answers {
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{path} via {target:?}: {status:?}"
        );
    }
    assert_eq!(app.stored().await, before, "nothing is written");
    assert_every_service_answers(&clients).await;
}
