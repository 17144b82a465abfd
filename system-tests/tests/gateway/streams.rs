//! Server streams through the gateway: a watch lives as long as the call, not
//! as long as a request deadline, and when query-svc drains the client is told
//! where to resume.

use std::time::Duration;

use taxi_proto::{
    call::v1::CallStatus,
    query::v1::{WatchCallRequest, WatchCallResponse},
};
use tonic::Code;

use crate::{grpc_web::GrpcWebStream, helpers::*};

const WATCH: &str = "/taxi.query.v1.QueryService/WatchCall";

async fn watch(app: &TestApp, customer: &User, call_id: &str, from_version: i64) -> GrpcWebStream {
    let request = WatchCallRequest {
        call_id: call_id.into(),
        from_version,
    };
    app.grpc_web()
        .server_stream(WATCH, Some(&customer.token), &request)
        .await
        .expect("watch")
}

/// The next (status, version) on a watch, within 10 s.
async fn next_view(watch: &mut GrpcWebStream) -> Result<Option<(CallStatus, i64)>, tonic::Status> {
    let message = tokio::time::timeout(Duration::from_secs(10), watch.message::<WatchCallResponse>())
        .await
        .expect("an answer within 10 s")?;
    Ok(message.map(|m| {
        let view = m.view.expect("view");
        (view.status(), view.version)
    }))
}

#[tokio::test]
async fn a_watch_stays_open_longer_than_any_request_deadline() {
    // Arrange: the default limits (reads 3 s) and backend timeouts (2 s).
    let app = spawn_app_with(|config| config.limits.read_deadline_ms = 3_000).await;
    let driver = app.online_driver().await;
    let customer = app.customer();
    let call = app.request_call(&customer).await;
    let mut watch = watch(&app, &customer, &call.call_id, 0).await;
    let first = next_view(&mut watch).await;

    // Act: the driver takes a while to accept.
    tokio::time::sleep(Duration::from_millis(3_300)).await;
    app.accept(&driver, &call.call_id).await.expect("accept");
    let after_a_while = next_view(&mut watch).await;

    // Assert
    assert_eq!(first.expect("open"), Some((CallStatus::Requested, 1)));
    assert_eq!(
        after_a_while.expect("still open"),
        Some((CallStatus::Accepted, 2))
    );
}

#[tokio::test]
async fn a_watch_cut_by_a_query_svc_restart_is_resumed_where_it_stopped() {
    // Arrange: query-svc on a fixed port, a customer watching a call.
    let mut app = spawn_app_with_query_on(free_local_addr(), |_| {}).await;
    let driver = app.online_driver().await;
    let customer = app.customer();
    let call = app.request_call(&customer).await;
    let mut first_watch = watch(&app, &customer, &call.call_id, 0).await;
    let first = next_view(&mut first_watch).await;

    // Act: query-svc restarts; meanwhile the call is accepted.
    app.backends.stop_query().await;
    let cut = next_view(&mut first_watch).await;
    app.accept(&driver, &call.call_id).await.expect("accept");
    app.backends.start_query().await;
    let mut resumed = watch(&app, &customer, &call.call_id, 1).await;
    let next = next_view(&mut resumed).await;

    // Assert
    assert_eq!(first.expect("open"), Some((CallStatus::Requested, 1)));
    let cut = cut.expect_err("the watch ends when query-svc drains");
    assert_eq!(cut.code(), Code::Unavailable, "{cut:?}");
    assert!(
        cut.message().contains("from_version 1"),
        "says where to resume: {cut:?}"
    );
    assert_eq!(
        next.expect("resumed"),
        Some((CallStatus::Accepted, 2)),
        "nothing missed, nothing repeated"
    );
}
