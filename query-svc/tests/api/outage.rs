//! A Redis outage delays the read models but loses nothing from them: the
//! projector retries an event for as long as Redis is down (far past the
//! consumer's old delivery limit) and never dead-letters it.

use std::{ffi::OsString, time::Duration};

use futures::StreamExt as _;
use svc_kit::{identity::Caller, testing::ServerProcess};
use taxi_proto::{call::v1::CallStatus, query::v1::Bucket};
use uuid::Uuid;

use crate::helpers::{Trip, spawn_app_with, test_config, utc};

/// A `redis-server` of the test's own, without persistence, that can be
/// stopped and started again on the same port.
async fn redis_server() -> ServerProcess {
    ServerProcess::start("redis-server", |port, log| {
        let port = port.to_string();
        let mut args: Vec<OsString> = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(OsString::from)
        .into();
        args.extend(["--logfile".into(), log.into()]);
        args
    })
    .await
    .expect("redis-server")
}

#[tokio::test]
async fn an_event_projected_while_redis_is_down_is_retried_until_it_is_back_and_never_dead_lettered() {
    // Arrange: query-svc on a Redis of its own; a short ack wait makes each
    // delivery's own retries short (a third of it).
    let mut redis = redis_server().await;
    let mut config = test_config();
    config.redis.url = format!("redis://127.0.0.1:{}", redis.port()).into();
    config.consumer.ack_wait_ms = 1_500;
    config.consumer.retry_delay_ms = 100;
    config.consumer.max_retry_delay_ms = 300;
    let app = spawn_app_with(config).await;
    let customer = Uuid::new_v4();
    let trip = Trip::completed_at(customer, utc(2031, 5, 1, 7, 0));
    redis.stop();

    // Act: the request arrives while Redis is down and fails more often than
    // the old delivery limit (5) allowed. Each failed delivery is handed back
    // with a Nak, which the server announces as an advisory.
    let mut naks = app
        .js
        .client()
        .subscribe(format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.{}.{}",
            app.config.nats.subjects().stream(),
            query_svc::PROJECTOR_DURABLE
        ))
        .await
        .expect("subscribe to Nak advisories");
    app.publish(&trip.events[0]).await;
    let failed = tokio::time::timeout(Duration::from_secs(60), async {
        for _ in 0..6 {
            naks.next().await.expect("advisories");
        }
    })
    .await;
    assert!(failed.is_ok(), "6 failed deliveries within 60 s");
    redis.resume().await.expect("redis-server again");
    app.publish_all(&trip.events[1..]).await;
    app.caught_up().await;

    // Assert: the view and the counters have everything, nothing was given up.
    let view = app
        .view(&Caller::Customer(customer), trip.id(), 4)
        .await
        .expect("projected");
    assert_eq!(view.status, CallStatus::Completed as i32);
    let totals = app
        .dashboard(utc(2031, 5, 1, 0, 0), utc(2031, 5, 2, 0, 0), Bucket::Day)
        .await
        .totals
        .expect("totals");
    assert_eq!((totals.requested, totals.completed), (1, 1));
    assert_eq!(app.dead_letters().await, 0);
    app.cleanup().await;
}
