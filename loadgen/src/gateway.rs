//! The gateway's overhead: the same cheap read (GetCallView of one call) made
//! directly to query-svc and through the gateway, at a fixed concurrency, in
//! alternating phases of one run so that both see the same machine.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use svc_kit::identity::Caller;
use taxi_proto::{
    call::v1::{RequestCallRequest, call_service_client::CallServiceClient},
    common::v1::{LatLng, TaxiType},
    dispatch::v1::{
        RegisterDriverRequest, SetOnlineRequest, UpdateLocationRequest,
        dispatch_service_client::DispatchServiceClient,
    },
    query::v1::{GetCallViewRequest, query_service_client::QueryServiceClient},
};
use tonic::{Request, transport::Channel};
use uuid::Uuid;

use crate::{as_caller, channel, micros, ms, token::dev_token};

const PICKUP: LatLng = LatLng {
    latitude: 37.5547,
    longitude: 126.9707,
};

/// How a read reaches query-svc.
#[derive(Clone, Copy)]
enum Path {
    Direct,
    Gateway,
}

fn bearer<T>(token: &str, message: T) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

/// Makes one call through the gateway and waits until query-svc shows it.
async fn a_projected_call(gateway: &Channel, sign_in: &str) -> anyhow::Result<(String, Uuid, String)> {
    let driver = Uuid::new_v4();
    let driver_token = dev_token(sign_in, "driver", driver).await?;
    let mut dispatch = DispatchServiceClient::new(gateway.clone());
    let register = RegisterDriverRequest {
        name: "Bench Gisa".into(),
        license_plate: "11가1111".into(),
        taxi_type: TaxiType::Normal.into(),
    };
    dispatch.register_driver(bearer(&driver_token, register)?).await?;
    dispatch
        .set_online(bearer(&driver_token, SetOnlineRequest {})?)
        .await?;
    let at = UpdateLocationRequest {
        location: Some(PICKUP),
    };
    dispatch.update_location(bearer(&driver_token, at)?).await?;

    let customer = Uuid::new_v4();
    let token = dev_token(sign_in, "customer", customer).await?;
    let request = RequestCallRequest {
        pickup: Some(PICKUP),
        dropoff: Some(PICKUP),
        taxi_type: TaxiType::Normal.into(),
        idempotency_key: Uuid::new_v4().to_string(),
        payment_method: "tok_visa".into(),
    };
    let call = CallServiceClient::new(gateway.clone())
        .request_call(bearer(&token, request)?)
        .await?
        .into_inner()
        .call
        .context("RequestCall answered without the call")?;
    let view = GetCallViewRequest {
        call_id: call.call_id.clone(),
        min_version: 1,
    };
    QueryServiceClient::new(gateway.clone())
        .get_call_view(bearer(&token, view)?)
        .await?;
    Ok((call.call_id, customer, token))
}

/// `concurrency` loops reading the view for `seconds`; latencies in µs.
async fn phase(
    path: Path,
    channel: &Channel,
    call_id: &str,
    customer: Uuid,
    token: &str,
    seconds: u64,
    concurrency: usize,
) -> anyhow::Result<Histogram<u64>> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let mut client = QueryServiceClient::new(channel.clone());
        let (call_id, token) = (call_id.to_owned(), token.to_owned());
        loops.spawn(async move {
            let mut latencies = Histogram::<u64>::new(3)?;
            while Instant::now() < until {
                let view = GetCallViewRequest {
                    call_id: call_id.clone(),
                    min_version: 0,
                };
                let request = match path {
                    Path::Direct => as_caller(&Caller::Customer(customer), view),
                    Path::Gateway => bearer(&token, view)?,
                };
                let sent = Instant::now();
                client.get_call_view(request).await?;
                latencies.record(micros(sent))?;
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut total = Histogram::<u64>::new(3)?;
    while let Some(done) = loops.join_next().await {
        total.add(done??)?;
    }
    Ok(total)
}

pub(crate) async fn run(seconds: u64, concurrency: usize) -> anyhow::Result<()> {
    let sign_in = crate::url("LOADGEN_GATEWAY_HTTP_URL", "http://127.0.0.1:8081");
    let gateway = channel(&crate::url("LOADGEN_GATEWAY_URL", "http://127.0.0.1:8080")).await?;
    let query = channel(&crate::url("LOADGEN_QUERY_URL", "http://127.0.0.1:50054")).await?;
    let (call_id, customer, token) = a_projected_call(&gateway, &sign_in).await?;
    println!("GetCallView at concurrency {concurrency}, 2 rounds of {seconds} s per path");

    let (mut direct, mut through) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
    let (mut direct_secs, mut through_secs) = (0.0, 0.0);
    for _round in 0..2 {
        for path in [Path::Direct, Path::Gateway] {
            let started = Instant::now();
            let (channel, total, secs) = match path {
                Path::Direct => (&query, &mut direct, &mut direct_secs),
                Path::Gateway => (&gateway, &mut through, &mut through_secs),
            };
            total.add(phase(path, channel, &call_id, customer, &token, seconds, concurrency).await?)?;
            *secs += started.elapsed().as_secs_f64();
        }
    }
    let (direct_rate, through_rate) = (
        direct.len() as f64 / direct_secs,
        through.len() as f64 / through_secs,
    );
    println!(
        "direct to query-svc   {direct_rate:>8.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} requests)",
        ms(&direct, 0.5),
        ms(&direct, 0.99),
        direct.len()
    );
    println!(
        "through the gateway   {through_rate:>8.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} requests)",
        ms(&through, 0.5),
        ms(&through, 0.99),
        through.len()
    );
    println!(
        "gateway / direct:     throughput {:.2}x   p50 {:.2}x   p99 {:.2}x",
        through_rate / direct_rate,
        ms(&through, 0.5) / ms(&direct, 0.5),
        ms(&through, 0.99) / ms(&direct, 0.99)
    );
    Ok(())
}
