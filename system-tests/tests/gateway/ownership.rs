//! Who may touch what: the identity the services see is the token's, so a
//! customer cannot reach another's call, a driver another's trip, and nobody
//! becomes someone else by sending identity metadata of their own.

use std::time::{Duration, SystemTime};

use taxi_proto::{
    call::v1::{CallStatus, CancelCallRequest, CompleteTripRequest},
    query::v1::{
        Bucket, GetCallViewRequest, GetCallViewResponse, GetDashboardRequest, ListMyCallsRequest,
        WatchCallRequest,
    },
};
use tonic::{Code, Request, Status};
use uuid::Uuid;

use crate::{grpc_web::GrpcWebStream, helpers::*};

/// How a watch of `call_id` ends for `user`: refused at once or on its first message.
async fn watch_refusal(app: &TestApp, user: &User, call_id: &str) -> Status {
    let watch = WatchCallRequest {
        call_id: call_id.into(),
        from_version: 0,
    };
    match app.query_client().watch_call(bearer(user, watch)).await {
        Err(status) => status,
        Ok(stream) => {
            let first = tokio::time::timeout(Duration::from_secs(10), stream.into_inner().message())
                .await
                .expect("an answer within 10 s");
            first.expect_err("someone else's call is not streamed")
        }
    }
}

fn cancel(call_id: &str) -> CancelCallRequest {
    CancelCallRequest {
        call_id: call_id.into(),
        expected_version: 0,
    }
}

/// `message` with `user`'s token and identity metadata claiming to be `subject` as a service.
fn with_forged_identity<T>(user: &User, subject: &str, message: T) -> Request<T> {
    let mut request = bearer(user, message);
    let metadata = request.metadata_mut();
    metadata.insert("x-taxi-subject", subject.parse().expect("ascii"));
    metadata.insert("x-taxi-role", "service".parse().expect("ascii"));
    request
}

#[tokio::test]
async fn another_customers_call_is_read_watched_and_canceled_as_if_it_did_not_exist() {
    // Arrange: a short read-your-writes bound, which is how long a watch of
    // a call nobody may see (like one that does not exist) waits.
    let query = QuerySettings {
        read_your_writes_timeout_ms: 1_000,
        ..QuerySettings::default()
    };
    let app = spawn_app_with_query(query, |_| {}).await;
    app.online_driver().await;
    let owner = app.customer();
    let stranger = app.customer();
    let call = app.request_call(&owner).await;
    app.call_view(&owner, &call.call_id, call.version)
        .await
        .expect("projected");

    // Act
    let read = app
        .call_view(&stranger, &call.call_id, 0)
        .await
        .expect_err("not theirs");
    let watched = watch_refusal(&app, &stranger, &call.call_id).await;
    let canceled = app
        .call_client()
        .cancel_call(bearer(&stranger, cancel(&call.call_id)))
        .await
        .expect_err("not theirs");

    let unknown = Uuid::new_v4().to_string();
    let read_unknown = app.call_view(&stranger, &unknown, 0).await.expect_err("none");
    let watched_unknown = watch_refusal(&app, &stranger, &unknown).await;
    let canceled_unknown = app
        .call_client()
        .cancel_call(bearer(&stranger, cancel(&unknown)))
        .await
        .expect_err("none");

    // Assert: word for word what a call that does not exist gets.
    let masked = |status: &Status, id: &str| (status.code(), status.message().replace(id, "<id>"));
    for (theirs, nobodys) in [
        (&read, &read_unknown),
        (&watched, &watched_unknown),
        (&canceled, &canceled_unknown),
    ] {
        assert_eq!(theirs.code(), Code::NotFound, "{theirs:?}");
        assert_eq!(masked(theirs, &call.call_id), masked(nobodys, &unknown));
    }
    let unchanged = app.backends.get_call(&call.call_id).await;
    assert_eq!(
        (unchanged.status(), unchanged.version),
        (CallStatus::Requested, 1)
    );
    let own = app
        .call_view(&owner, &call.call_id, 0)
        .await
        .expect("the owner still reads it");
    assert_eq!(own.status(), CallStatus::Requested);
}

#[tokio::test]
async fn a_driver_cannot_complete_another_drivers_trip() {
    // Arrange
    let app = spawn_app().await;
    let customer = app.customer();
    let (call, driver) = app.accepted_call(&customer).await;
    app.start_trip(&driver, &call.call_id)
        .await
        .expect("the assigned driver starts");
    let intruder = app.online_driver().await;

    // Act
    let complete = CompleteTripRequest {
        call_id: call.call_id.clone(),
        distance_m: 1_000,
    };
    let completed = app
        .call_client()
        .complete_trip(bearer(&intruder, complete))
        .await
        .expect_err("not their trip");

    // Assert: to the intruder, the trip does not exist.
    assert_eq!(completed.code(), Code::NotFound, "{completed:?}");
    assert_eq!(
        app.backends.get_call(&call.call_id).await.status(),
        CallStatus::InTrip
    );
    assert_eq!(
        app.backends.ledger(&call.call_id).await.entries.len(),
        1,
        "only the advance, nothing settled"
    );
}

#[tokio::test]
async fn only_analysts_read_the_dashboard() {
    // Arrange
    let app = spawn_app().await;
    let now = SystemTime::now();
    let dashboard = GetDashboardRequest {
        from: Some((now - Duration::from_secs(3_600)).into()),
        to: Some((now + Duration::from_secs(3_600)).into()),
        bucket: Bucket::Hour.into(),
    };

    // Act
    let customer = app
        .query_client()
        .get_dashboard(bearer(&app.customer(), dashboard))
        .await
        .expect_err("customers do not read the dashboard");
    let driver = app
        .query_client()
        .get_dashboard(bearer(&app.driver(), dashboard))
        .await
        .expect_err("drivers do not read the dashboard");
    let analyst = app
        .query_client()
        .get_dashboard(bearer(&app.analyst(), dashboard))
        .await;

    // Assert
    assert_eq!(customer.code(), Code::PermissionDenied, "{customer:?}");
    assert_eq!(driver.code(), Code::PermissionDenied, "{driver:?}");
    let analyst = analyst.expect("analysts do").into_inner();
    assert!(
        !analyst.buckets.is_empty() && analyst.totals.is_some(),
        "{analyst:?}"
    );
}

#[tokio::test]
async fn identity_metadata_sent_by_a_client_is_replaced_by_the_tokens() {
    // Arrange
    let app = spawn_app().await;
    app.online_driver().await;
    let owner = app.customer();
    let stranger = app.customer();
    let call = app.request_call(&owner).await;
    app.call_view(&owner, &call.call_id, call.version)
        .await
        .expect("projected");
    let owner_id = owner.id.to_string();
    let view = GetCallViewRequest {
        call_id: call.call_id.clone(),
        min_version: 0,
    };

    // Act: the stranger's token, claiming in metadata to be the owner, or a service.
    let read = app
        .query_client()
        .get_call_view(with_forged_identity(&stranger, &owner_id, view.clone()))
        .await
        .expect_err("still the stranger");
    let canceled = app
        .call_client()
        .cancel_call(with_forged_identity(&stranger, &owner_id, cancel(&call.call_id)))
        .await
        .expect_err("still the stranger");
    let listed = app
        .query_client()
        .list_my_calls(with_forged_identity(
            &stranger,
            &owner_id,
            ListMyCallsRequest::default(),
        ))
        .await
        .expect("the stranger lists their own calls")
        .into_inner();
    let web = app.grpc_web();
    let mut over_web = web.request(
        "/taxi.query.v1.QueryService/GetCallView",
        Some(&stranger.token),
        &view,
    );
    over_web
        .headers_mut()
        .insert("x-taxi-subject", owner_id.parse().expect("ascii"));
    over_web
        .headers_mut()
        .insert("x-taxi-role", "service".parse().expect("ascii"));
    let read_over_web = GrpcWebStream::read_all::<GetCallViewResponse>(web.send(over_web).await)
        .await
        .expect_err("still the stranger over gRPC-web");
    let mut anonymous = Request::new(cancel(&call.call_id));
    anonymous
        .metadata_mut()
        .insert("x-taxi-subject", owner_id.parse().expect("ascii"));
    anonymous
        .metadata_mut()
        .insert("x-taxi-role", "customer".parse().expect("ascii"));
    let anonymous = app
        .call_client()
        .cancel_call(anonymous)
        .await
        .expect_err("no token");

    // Assert
    assert_eq!(read.code(), Code::NotFound, "{read:?}");
    assert_eq!(canceled.code(), Code::NotFound, "{canceled:?}");
    assert!(
        listed.calls.is_empty(),
        "none of the owner's calls: {:?}",
        listed.calls
    );
    assert_eq!(read_over_web.code(), Code::NotFound, "{read_over_web:?}");
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    let unchanged = app.backends.get_call(&call.call_id).await;
    assert_eq!(
        (unchanged.status(), unchanged.version),
        (CallStatus::Requested, 1)
    );
    let owners = app
        .query_client()
        .list_my_calls(bearer(&owner, ListMyCallsRequest::default()))
        .await
        .expect("the owner lists")
        .into_inner();
    assert_eq!(owners.calls.len(), 1, "the owner's call is listed for the owner");
}
