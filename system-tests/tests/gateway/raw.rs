//! Requests of any bytes to any method: every method of the four services
//! with a valid request of its own, and a client that sends a payload as it
//! is, directly to the service (with the identity token the gateway would
//! sign) or through the gateway over gRPC or gRPC-web (with a
//! token for a fresh subject, so no test meets the per-subject limits).

use bytes::{Buf as _, BufMut as _, Bytes};
use prost::Message;
use prost_types::Timestamp;
use taxi_proto::{
    call::v1::{
        AcceptCallRequest, CancelCallRequest, CompleteTripRequest, GetCallRequest, QuoteFareRequest,
        SettleBalanceRequest, StartTripRequest,
    },
    common::v1::TaxiType,
    dispatch::v1::{
        AssignDriverRequest, CheckAvailabilityRequest, GetDriverRequest, RegisterDriverRequest,
        ReleaseDriverRequest, SetOfflineRequest, SetOnlineRequest, UpdateLocationRequest, WatchOffersRequest,
    },
    payment::v1::{ChargeAdvanceRequest, ListPaymentsRequest, RefundRequest, SettleFinalRequest},
    query::v1::{Bucket, GetCallViewRequest, GetDashboardRequest, ListMyCallsRequest, WatchCallRequest},
};
use tonic::{
    Request, Status,
    client::Grpc,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};
use uuid::Uuid;

use crate::{
    grpc_web::{GrpcWebClient, GrpcWebStream},
    helpers::{DROPOFF, PICKUP, TestApp, call_request, with_token},
};
use system_tests::System;

/// The service a method belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Call,
    Dispatch,
    Payment,
    Query,
}

/// One method, as a client would call it.
#[derive(Clone)]
pub struct Method {
    pub path: &'static str,
    pub service: Service,
    /// The role that may call it (`service` for the internal methods).
    pub role: &'static str,
    pub streaming: bool,
    /// An encoded valid request.
    pub valid: Bytes,
    /// Whether bytes decode as this method's request message.
    pub decodes: fn(&[u8]) -> bool,
}

impl Method {
    /// Only services may call it; the gateway refuses it.
    pub fn internal(&self) -> bool {
        self.role == "service"
    }

    /// The message the service names when the request does not decode.
    pub fn request_type(&self) -> String {
        let (package, rpc) = self
            .path
            .trim_start_matches('/')
            .split_once('/')
            .expect("/package.Service/Method");
        let package = package.rsplit_once('.').expect("package.Service").0;
        format!("{package}.{rpc}Request")
    }
}

fn decodes<T: Message + Default>(bytes: &[u8]) -> bool {
    T::decode(bytes).is_ok()
}

fn method<T: Message + Default>(
    path: &'static str,
    service: Service,
    role: &'static str,
    valid: T,
) -> Method {
    Method {
        path,
        service,
        role,
        streaming: path.contains("/Watch"),
        valid: valid.encode_to_vec().into(),
        decodes: decodes::<T>,
    }
}

/// Every method of the four services, each with a valid request.
pub fn methods() -> Vec<Method> {
    use Service::{Call, Dispatch, Payment, Query};
    let id = || Uuid::new_v4().to_string();
    let hour = |seconds| Timestamp { seconds, nanos: 0 };
    vec![
        method(
            "/taxi.call.v1.CallService/QuoteFare",
            Call,
            "customer",
            QuoteFareRequest {
                pickup: Some(PICKUP),
                dropoff: Some(DROPOFF),
                taxi_type: TaxiType::Normal.into(),
            },
        ),
        method(
            "/taxi.call.v1.CallService/RequestCall",
            Call,
            "customer",
            call_request(),
        ),
        method(
            "/taxi.call.v1.CallService/AcceptCall",
            Call,
            "driver",
            AcceptCallRequest { call_id: id() },
        ),
        method(
            "/taxi.call.v1.CallService/StartTrip",
            Call,
            "driver",
            StartTripRequest { call_id: id() },
        ),
        method(
            "/taxi.call.v1.CallService/CompleteTrip",
            Call,
            "driver",
            CompleteTripRequest {
                call_id: id(),
                distance_m: 7_000,
            },
        ),
        method(
            "/taxi.call.v1.CallService/CancelCall",
            Call,
            "customer",
            CancelCallRequest {
                call_id: id(),
                expected_version: 1,
            },
        ),
        method(
            "/taxi.call.v1.CallService/GetCall",
            Call,
            "customer",
            GetCallRequest { call_id: id() },
        ),
        method(
            "/taxi.call.v1.CallService/SettleBalance",
            Call,
            "customer",
            SettleBalanceRequest {
                call_id: id(),
                payment_method: "tok_visa".into(),
            },
        ),
        method(
            "/taxi.dispatch.v1.DispatchService/RegisterDriver",
            Dispatch,
            "driver",
            RegisterDriverRequest {
                name: "Kim Gisa".into(),
                license_plate: "12가3456".into(),
                taxi_type: TaxiType::Normal.into(),
            },
        ),
        method(
            "/taxi.dispatch.v1.DispatchService/SetOnline",
            Dispatch,
            "driver",
            SetOnlineRequest {},
        ),
        method(
            "/taxi.dispatch.v1.DispatchService/SetOffline",
            Dispatch,
            "driver",
            SetOfflineRequest {},
        ),
        method(
            "/taxi.dispatch.v1.DispatchService/UpdateLocation",
            Dispatch,
            "driver",
            UpdateLocationRequest {
                location: Some(PICKUP),
            },
        ),
        method(
            "/taxi.dispatch.v1.DispatchService/GetDriver",
            Dispatch,
            "driver",
            GetDriverRequest {},
        ),
        method(
            "/taxi.dispatch.v1.DispatchService/WatchOffers",
            Dispatch,
            "driver",
            WatchOffersRequest {},
        ),
        method(
            "/taxi.dispatch.v1.DispatchService/CheckAvailability",
            Dispatch,
            "service",
            CheckAvailabilityRequest {
                taxi_type: TaxiType::Normal.into(),
                pickup: Some(PICKUP),
                radius_m: 3_000,
            },
        ),
        method(
            "/taxi.dispatch.v1.DispatchService/AssignDriver",
            Dispatch,
            "service",
            AssignDriverRequest {
                call_id: id(),
                driver_id: id(),
                taxi_type: TaxiType::Normal.into(),
            },
        ),
        method(
            "/taxi.dispatch.v1.DispatchService/ReleaseDriver",
            Dispatch,
            "service",
            ReleaseDriverRequest {
                call_id: id(),
                driver_id: id(),
            },
        ),
        method(
            "/taxi.payment.v1.PaymentService/ChargeAdvance",
            Payment,
            "service",
            ChargeAdvanceRequest {
                call_id: id(),
                customer_id: id(),
                amount_krw: 12_000,
                payment_method: "tok_visa".into(),
                idempotency_key: id(),
            },
        ),
        method(
            "/taxi.payment.v1.PaymentService/SettleFinal",
            Payment,
            "service",
            SettleFinalRequest {
                call_id: id(),
                final_amount_krw: 15_000,
                idempotency_key: id(),
                payment_method: String::new(),
            },
        ),
        method(
            "/taxi.payment.v1.PaymentService/Refund",
            Payment,
            "service",
            RefundRequest {
                call_id: id(),
                amount_krw: 3_000,
                idempotency_key: id(),
                reason: "canceled".into(),
            },
        ),
        method(
            "/taxi.payment.v1.PaymentService/ListPayments",
            Payment,
            "customer",
            ListPaymentsRequest { call_id: id() },
        ),
        method(
            "/taxi.query.v1.QueryService/GetCallView",
            Query,
            "customer",
            GetCallViewRequest {
                call_id: id(),
                min_version: 0,
            },
        ),
        method(
            "/taxi.query.v1.QueryService/ListMyCalls",
            Query,
            "customer",
            ListMyCallsRequest {
                page_size: 10,
                page_token: String::new(),
            },
        ),
        method(
            "/taxi.query.v1.QueryService/WatchCall",
            Query,
            "customer",
            WatchCallRequest {
                call_id: id(),
                from_version: 0,
            },
        ),
        method(
            "/taxi.query.v1.QueryService/GetDashboard",
            Query,
            "analyst",
            GetDashboardRequest {
                from: Some(hour(1_767_225_600)),
                to: Some(hour(1_767_229_200)),
                bucket: Bucket::Hour.into(),
            },
        ),
    ]
}

/// The method at `path`.
pub fn by_path(path: &str) -> Method {
    methods()
        .into_iter()
        .find(|method| method.path == path)
        .expect("a method of the table")
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// To the service itself, over gRPC.
    Direct,
    /// Through the gateway over gRPC (HTTP/2).
    Gateway,
    /// Through the gateway over gRPC-web (HTTP/1.1).
    GatewayWeb,
}

pub const TARGETS: [Target; 3] = [Target::Direct, Target::Gateway, Target::GatewayWeb];

/// Clients of the gateway and of each service, made once per test.
pub struct Clients<'a> {
    app: &'a TestApp,
    call: Channel,
    dispatch: Channel,
    payment: Channel,
    query: Channel,
    web: GrpcWebClient,
}

impl<'a> Clients<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        let backends = &app.backends;
        Self {
            app,
            call: System::channel(&backends.call),
            dispatch: System::channel(&backends.dispatch),
            payment: System::channel(&backends.payment),
            query: System::channel(&backends.query),
            web: app.grpc_web(),
        }
    }

    /// Sends `payload` as the request of `method` to `target` and gives the
    /// answer's status (OK for an answer, or a stream that opened).
    pub async fn send(&self, method: &Method, target: Target, payload: Bytes) -> Status {
        let outcome = match target {
            Target::Direct => {
                let channel = match method.service {
                    Service::Call => &self.call,
                    Service::Dispatch => &self.dispatch,
                    Service::Payment => &self.payment,
                    Service::Query => &self.query,
                };
                grpc(channel.clone(), method, direct_request(method.role, payload)).await
            }
            Target::Gateway => {
                let request = with_token(&self.token(method), payload);
                grpc(self.app.channel.clone(), method, request).await
            }
            Target::GatewayWeb => self.grpc_web(method, payload).await,
        };
        outcome.err().unwrap_or_else(|| Status::ok(""))
    }

    /// A token for a fresh subject in the method's role; customers stand in
    /// for services, which hold no tokens.
    fn token(&self, method: &Method) -> String {
        let role = if method.internal() {
            "customer"
        } else {
            method.role
        };
        self.app.token(role, Uuid::new_v4())
    }

    async fn grpc_web(&self, method: &Method, payload: Bytes) -> Result<(), Status> {
        let request = self
            .web
            .raw_request(method.path, Some(&self.token(method)), &payload);
        let mut stream = GrpcWebStream::from_response(self.web.send(request).await)?;
        if !method.streaming {
            // Any answer is a valid message; only its status matters here.
            while stream.message::<()>().await?.is_some() {}
        }
        Ok(())
    }
}

/// A request carrying the signed identity the gateway would have forwarded.
fn direct_request(role: &str, payload: Bytes) -> Request<Bytes> {
    use svc_kit::identity::Caller;

    let subject = Uuid::new_v4();
    let caller = match role {
        "service" => Caller::Service("test".into()),
        "driver" => Caller::Driver(subject),
        "analyst" => Caller::Analyst(subject),
        _ => Caller::Customer(subject),
    };
    svc_kit::testing::as_caller(&caller, payload)
}

async fn grpc(channel: Channel, method: &Method, request: Request<Bytes>) -> Result<(), Status> {
    let mut grpc = Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not connected: {e}")))?;
    let path = http::uri::PathAndQuery::from_static(method.path);
    if method.streaming {
        // A stream that opened counts as an answer; dropping it closes it.
        grpc.server_streaming(request, path, RawCodec).await.map(drop)
    } else {
        grpc.unary(request, path, RawCodec).await.map(drop)
    }
}

/// Sends bytes as they are and takes answers as bytes.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self
    }

    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}
