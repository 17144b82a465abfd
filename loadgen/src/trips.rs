//! Whole trips against a running system, straight to the services.
//!
//! Each worker owns a driver waiting at the pickup and runs trips back to back:
//! request, accept, start, complete. After every command it asks query-svc for
//! the view at the command's version (`GetCallView(min_version)`), which
//! returns as soon as the projection has caught up: the time from the
//! command's answer (its commit) to that view is the projection lag. A plain
//! view read of an already projected call, measured in the same run, is the
//! baseline: it is what one query round trip costs with no lag at all.
//!

use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use svc_kit::identity::Caller;
use taxi_proto::{
    call::v1::{
        AcceptCallRequest, Call, CompleteTripRequest, RequestCallRequest, StartTripRequest,
        call_service_client::CallServiceClient,
    },
    common::v1::{LatLng, TaxiType},
    dispatch::v1::{
        RegisterDriverRequest, SetOnlineRequest, UpdateLocationRequest,
        dispatch_service_client::DispatchServiceClient,
    },
    query::v1::{GetCallViewRequest, query_service_client::QueryServiceClient},
};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::{as_caller, channel, micros, ms};

const PICKUP: LatLng = LatLng {
    latitude: 37.5547,
    longitude: 126.9707,
};
const DROPOFF: LatLng = LatLng {
    latitude: 37.4979,
    longitude: 127.0276,
};

struct Clients {
    call: CallServiceClient<Channel>,
    dispatch: DispatchServiceClient<Channel>,
    query: QueryServiceClient<Channel>,
}

/// What one worker measured, in microseconds.
struct Measured {
    trips: u64,
    commands: Histogram<u64>,
    lag: Histogram<u64>,
    read: Histogram<u64>,
}

impl Measured {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            trips: 0,
            commands: Histogram::new(3)?,
            lag: Histogram::new(3)?,
            read: Histogram::new(3)?,
        })
    }

    fn add(&mut self, other: &Self) -> anyhow::Result<()> {
        self.trips += other.trips;
        self.commands.add(&other.commands)?;
        self.lag.add(&other.lag)?;
        self.read.add(&other.read)?;
        Ok(())
    }
}

/// Times `command`, then the wait until query-svc shows its version.
async fn measured_command<F>(
    query: &mut QueryServiceClient<Channel>,
    customer: &Caller,
    measured: &mut Measured,
    command: F,
) -> anyhow::Result<Call>
where
    F: std::future::Future<Output = anyhow::Result<Option<Call>>>,
{
    let sent = Instant::now();
    let call = command.await?.context("the command answered without the call")?;
    measured.commands.record(micros(sent))?;
    let committed = Instant::now();
    let view = GetCallViewRequest {
        call_id: call.call_id.clone(),
        min_version: call.version,
    };
    query.get_call_view(as_caller(customer, view)).await?;
    measured.lag.record(micros(committed))?;
    Ok(call)
}

/// `at` moved `area` × 0.2° north (about 22 km a step): each worker's
/// driver and customers keep to an area of their own, beyond the widest
/// offer round of any other, so every call is offered to its own worker's
/// driver (with all of them at one spot, a call went to the first few of
/// them and the others waited out a round).
fn in_area(at: LatLng, area: usize) -> LatLng {
    LatLng {
        latitude: at.latitude + 0.2 * area as f64,
        longitude: at.longitude,
    }
}

async fn worker(clients: &mut Clients, until: Instant, area: usize) -> anyhow::Result<Measured> {
    let (pickup, dropoff) = (in_area(PICKUP, area), in_area(DROPOFF, area));
    let mut measured = Measured::new()?;
    let driver = Caller::Driver(Uuid::new_v4());
    let register = RegisterDriverRequest {
        name: "Load Gisa".into(),
        license_plate: "99가9999".into(),
        taxi_type: TaxiType::Normal.into(),
    };
    clients
        .dispatch
        .register_driver(as_caller(&driver, register))
        .await?;
    clients
        .dispatch
        .set_online(as_caller(&driver, SetOnlineRequest {}))
        .await?;
    let at = UpdateLocationRequest {
        location: Some(pickup),
    };
    clients.dispatch.update_location(as_caller(&driver, at)).await?;

    while Instant::now() < until {
        let customer = Caller::Customer(Uuid::new_v4());
        let request = RequestCallRequest {
            pickup: Some(pickup),
            dropoff: Some(dropoff),
            taxi_type: TaxiType::Normal.into(),
            idempotency_key: Uuid::new_v4().to_string(),
            payment_method: "tok_visa".into(),
        };
        let (calls, query) = (&mut clients.call, &mut clients.query);
        let call = measured_command(query, &customer, &mut measured, async {
            Ok(calls
                .request_call(as_caller(&customer, request))
                .await?
                .into_inner()
                .call)
        })
        .await?;
        let id = call.call_id;
        // The driver accepts once they hold the offer, which dispatch makes
        // from the request's event a moment later (as their app would see
        // it on WatchOffers): a refusal for want of one is tried again.
        let accept = AcceptCallRequest { call_id: id.clone() };
        measured_command(query, &customer, &mut measured, async {
            loop {
                match calls.accept_call(as_caller(&driver, accept.clone())).await {
                    Err(status)
                        if status.code() == tonic::Code::FailedPrecondition
                            && status.message().contains("no live offer") =>
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    answer => return Ok(answer?.into_inner().call),
                }
            }
        })
        .await?;
        let start = StartTripRequest { call_id: id.clone() };
        measured_command(query, &customer, &mut measured, async {
            Ok(calls
                .start_trip(as_caller(&driver, start))
                .await?
                .into_inner()
                .call)
        })
        .await?;
        let complete = CompleteTripRequest {
            call_id: id.clone(),
            distance_m: 9_000,
        };
        measured_command(query, &customer, &mut measured, async {
            Ok(calls
                .complete_trip(as_caller(&driver, complete))
                .await?
                .into_inner()
                .call)
        })
        .await?;

        // The baseline: reading a view that is already there.
        let sent = Instant::now();
        let view = GetCallViewRequest {
            call_id: id,
            min_version: 0,
        };
        clients.query.get_call_view(as_caller(&customer, view)).await?;
        measured.read.record(micros(sent))?;
        measured.trips += 1;
    }
    Ok(measured)
}

/// Runs `workers` trip loops for `seconds` and prints the figures.
pub(crate) async fn run(seconds: u64, workers: usize) -> anyhow::Result<()> {
    let (call, dispatch, query) = (
        channel(&crate::url("LOADGEN_CALL_URL", "http://127.0.0.1:50051")).await?,
        channel(&crate::url("LOADGEN_DISPATCH_URL", "http://127.0.0.1:50052")).await?,
        channel(&crate::url("LOADGEN_QUERY_URL", "http://127.0.0.1:50054")).await?,
    );

    println!("{workers} workers running whole trips for {seconds} s");
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for area in 1..=workers {
        let mut clients = Clients {
            call: CallServiceClient::new(call.clone()),
            dispatch: DispatchServiceClient::new(dispatch.clone()),
            query: QueryServiceClient::new(query.clone()),
        };
        running.spawn(async move { worker(&mut clients, until, area).await });
    }
    let mut total = Measured::new()?;
    while let Some(done) = running.join_next().await {
        total.add(&done??)?;
    }
    let elapsed = started.elapsed().as_secs_f64();

    println!(
        "trips: {} ({:.1}/s), commands: {} ({:.1}/s)",
        total.trips,
        total.trips as f64 / elapsed,
        total.commands.len(),
        total.commands.len() as f64 / elapsed
    );
    println!(
        "command latency       p50 {:>7.2} ms   p99 {:>7.2} ms",
        ms(&total.commands, 0.5),
        ms(&total.commands, 0.99)
    );
    println!(
        "projection lag        p50 {:>7.2} ms   p99 {:>7.2} ms",
        ms(&total.lag, 0.5),
        ms(&total.lag, 0.99)
    );
    println!(
        "baseline view read    p50 {:>7.2} ms   p99 {:>7.2} ms",
        ms(&total.read, 0.5),
        ms(&total.read, 0.99)
    );
    println!(
        "lag / baseline read:  p50 {:.1}x   p99 {:.1}x",
        ms(&total.lag, 0.5) / ms(&total.read, 0.5),
        ms(&total.lag, 0.99) / ms(&total.read, 0.99)
    );
    Ok(())
}
