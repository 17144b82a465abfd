//! One trace from the phone to the ledger: the five services run as the
//! processes an operator deploys, exporting spans over OTLP to a receiver in
//! this test, and a customer's RequestCall and a driver's AcceptCall, sent
//! with the phone's `traceparent`, come back as one trace spanning the
//! gateway, call-svc, dispatch-svc, payment-svc, the outbox relays, the
//! consumers and the customer's live WatchCall stream.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value,
    trace::v1::span::SpanKind,
};
use system_tests::{
    System,
    processes::{Processes, Replicas},
    trip,
};
use taxi_proto::{
    call::v1::call_service_client::CallServiceClient,
    common::v1::TaxiType,
    dispatch::v1::dispatch_service_client::DispatchServiceClient,
    query::v1::{WatchCallRequest, query_service_client::QueryServiceClient},
};
use tokio_stream::StreamExt as _;
use tonic::{Request, metadata::MetadataValue};
use uuid::Uuid;

use crate::helpers::{User, bearer, call_request};

/// One exported span, flattened with the name of the service that made it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    kind: SpanKind,
    trace_id: String,
    span_id: String,
    parent: String,
}

/// An OTLP/gRPC trace receiver keeping every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("spans");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
                .map(|value| match value {
                    any_value::Value::StringValue(name) => name.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                spans.push(Span {
                    service: service.clone(),
                    kind: span.kind(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    async fn start() -> (Self, SocketAddr) {
        let collector = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        (collector, addr)
    }

    fn trace(&self, trace_id: &str) -> Vec<Span> {
        let spans = self.spans.lock().expect("spans");
        spans
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A random id of `bytes` bytes in lower-case hex, as W3C Trace Context
/// spells trace and span ids.
fn random_id(bytes: usize) -> String {
    let id = Uuid::new_v4().simple().to_string() + &Uuid::new_v4().simple().to_string();
    id[..bytes * 2].to_owned()
}

/// `message` as the user's phone sends it: with their token and the phone's
/// span `span_id` of trace `trace_id`.
fn from_phone<T>(user: &User, message: T, trace_id: &str, span_id: &str) -> Request<T> {
    let mut request = bearer(user, message);
    let traceparent: MetadataValue<_> = format!("00-{trace_id}-{span_id}-01").parse().expect("ASCII");
    request.metadata_mut().insert("traceparent", traceparent);
    request
}

/// Every service's kind of span the trip's trace must hold: (service, name).
const EXPECTED: [(&str, &str); 12] = [
    ("gateway-grpc-web", "taxi.call.v1.CallService/RequestCall"),
    ("gateway-grpc-web", "taxi.call.v1.CallService/AcceptCall"),
    ("call-svc", "taxi.call.v1.CallService/RequestCall"),
    ("call-svc", "taxi.call.v1.CallService/AcceptCall"),
    ("call-svc", "publish call.requested"),
    ("call-svc", "publish call.accepted"),
    (
        "dispatch-svc",
        "taxi.dispatch.v1.DispatchService/CheckAvailability",
    ),
    ("dispatch-svc", "taxi.dispatch.v1.DispatchService/AssignDriver"),
    ("dispatch-svc", "process dispatch-offers"),
    ("payment-svc", "taxi.payment.v1.PaymentService/ChargeAdvance"),
    ("query-svc", "process query-projector"),
    ("query-svc", "taxi.query.v1.QueryService/WatchCall send"),
];

#[tokio::test]
async fn a_request_and_an_accept_are_one_trace_from_the_phone_to_the_ledger() {
    // Arrange: the platform as processes exporting to this test's receiver.
    let (collector, otlp) = Collector::start().await;
    let system = System::builder().stores().await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let platform = Processes::start(&system, Replicas::ONE, &env)
        .await
        .expect("the platform starts");
    let user = |role: &str| User::new(&platform.gateway_config, role);
    let (customer, driver) = (user("customer"), user("driver"));
    let calls = CallServiceClient::new(platform.gateway.clone());
    let dispatch = DispatchServiceClient::new(platform.gateway.clone());
    let mut query = QueryServiceClient::new(platform.gateway.clone());
    trip::online_driver(&dispatch, &driver, TaxiType::Normal, system_tests::PICKUP).await;
    let trace_id = random_id(16);
    let (tap_request, tap_accept) = (random_id(8), random_id(8));

    // Act: the customer requests and watches; the driver accepts.
    let call = calls
        .clone()
        .request_call(from_phone(&customer, call_request(), &trace_id, &tap_request))
        .await
        .expect("request")
        .into_inner()
        .call
        .expect("call");
    let mut watch = query
        .watch_call(bearer(
            &customer,
            WatchCallRequest {
                call_id: call.call_id.clone(),
                from_version: call.version,
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    let accept = taxi_proto::call::v1::AcceptCallRequest {
        call_id: call.call_id.clone(),
    };
    // The driver accepts once the offer has reached them.
    let _accepted = loop {
        let request = from_phone(&driver, accept.clone(), &trace_id, &tap_accept);
        match calls.clone().accept_call(request).await {
            Err(status) if trip::is_no_live_offer(&status) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answer => break answer.expect("accept"),
        }
    };
    let heard = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("the watch hears the accept")
        .expect("a message")
        .expect("a view");
    assert_eq!(heard.view.expect("view").version, call.version + 1);

    // Assert: every expected span arrives, in the phone's trace.
    // Complete once every expected span has come and none waits for its
    // parent (a span is exported when it ends, so children come first).
    let complete = |spans: &Vec<Span>| {
        let seen: BTreeSet<(&str, &str)> = spans
            .iter()
            .map(|s| (s.service.as_str(), s.name.as_str()))
            .collect();
        let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        EXPECTED.iter().all(|expected| seen.contains(expected))
            && spans
                .iter()
                .all(|s| ids.contains(s.parent.as_str()) || s.parent == tap_request || s.parent == tap_accept)
    };
    let spans = system_tests::poll(
        Duration::from_secs(20),
        || async { collector.trace(&trace_id) },
        complete,
    )
    .await;
    assert!(complete(&spans), "the trace lacks spans; it holds {spans:#?}");
    print_trace(&spans, &[&tap_request, &tap_accept]);

    let by_id: BTreeMap<&str, &Span> = spans.iter().map(|span| (span.span_id.as_str(), span)).collect();
    let parent_of = |span: &Span| by_id.get(span.parent.as_str()).copied();
    for span in &spans {
        assert!(
            parent_of(span).is_some() || [&tap_request, &tap_accept].contains(&&span.parent),
            "{span:?} hangs off a span outside the trace"
        );
    }
    let only = |service: &str, name: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.service == service && s.name == name)
            .collect()
    };
    // The gateway continues the phone's spans ...
    for (name, tap) in [("RequestCall", &tap_request), ("AcceptCall", &tap_accept)] {
        let served: Vec<&Span> = only("gateway-grpc-web", &format!("taxi.call.v1.CallService/{name}"))
            .into_iter()
            .filter(|span| span.kind == SpanKind::Server)
            .collect();
        // (an accept sent before the offer arrived is sent again)
        assert!(!served.is_empty(), "no {name} at the gateway");
        for span in served {
            assert_eq!(&span.parent, tap, "the gateway's {name} continues the phone's");
        }
    }
    // ... call-svc continues the gateway's call to it ...
    for span in only("call-svc", "taxi.call.v1.CallService/AcceptCall") {
        let client = parent_of(span).expect("a parent");
        assert_eq!(
            (client.service.as_str(), client.kind),
            ("gateway-grpc-web", SpanKind::Client)
        );
    }
    // ... payment-svc its charge, made while call-svc handled the accept ...
    for span in only("payment-svc", "taxi.payment.v1.PaymentService/ChargeAdvance") {
        let client = parent_of(span).expect("a parent");
        assert_eq!(
            (client.service.as_str(), client.kind),
            ("call-svc", SpanKind::Client)
        );
        // (through the handler's own spans)
        let mut handler = client;
        while handler.kind != SpanKind::Server {
            handler = parent_of(handler).expect("a server span above");
        }
        assert_eq!(handler.name, "taxi.call.v1.CallService/AcceptCall");
    }
    // ... the relay publishes within the command's trace, the consumers
    // continue from the publish, and the watch from the projection.
    for name in ["process dispatch-offers", "process query-projector"] {
        for span in spans.iter().filter(|s| s.name == name) {
            let publish = parent_of(span).expect("a parent");
            assert!(publish.name.starts_with("publish "), "{span:?} under {publish:?}");
            assert_eq!(publish.kind, SpanKind::Producer);
        }
    }
    for span in only("query-svc", "taxi.query.v1.QueryService/WatchCall send") {
        let projection = parent_of(span).expect("a parent");
        assert_eq!(projection.name, "process query-projector");
    }
}

/// Prints the trace as a tree, one JSON object per span, for the record.
fn print_trace(spans: &[Span], roots: &[&String]) {
    fn print(spans: &[Span], parent: &str, depth: usize) {
        for span in spans.iter().filter(|span| span.parent == parent) {
            println!(
                "{}{}",
                "  ".repeat(depth),
                serde_json::json!({
                    "service": span.service,
                    "span": span.name,
                    "kind": format!("{:?}", span.kind),
                    "span_id": span.span_id,
                    "parent": span.parent,
                })
            );
            print(spans, &span.span_id, depth + 1);
        }
    }
    println!(
        "trace {}",
        spans.first().map_or("", |span| span.trace_id.as_str())
    );
    for root in roots {
        println!("phone span {root}");
        print(spans, root, 1);
    }
}
