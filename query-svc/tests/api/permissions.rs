//! Who may read what.

use std::time::Duration;

use svc_kit::identity::Caller;
use taxi_proto::call::v1::CancelReason;
use taxi_proto::common::v1::TaxiType;
use taxi_proto::query::v1::{Bucket, GetCallViewRequest, GetDashboardRequest, ListMyCallsRequest};
use tonic::{Code, Request, Status};
use uuid::Uuid;

use crate::helpers::{Trip, as_caller, collect_watch, spawn_app, spawn_app_with, test_config, utc};

/// A refusal with the asked-for id masked, so that the answers about two
/// different ids can be compared word for word.
fn answer(status: Status, call_id: &str) -> (Code, String) {
    (status.code(), status.message().replace(call_id, "<id>"))
}

#[tokio::test]
async fn someone_elses_call_answers_exactly_like_a_call_that_does_not_exist() {
    // Arrange: a short read-your-writes bound, as a watch of an unknown call
    // waits that long before it answers.
    let mut config = test_config();
    config.read_your_writes_timeout_ms = 1_000;
    let app = spawn_app_with(config).await;
    let (owner, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    let trip = Trip::completed_at(owner, utc(2031, 5, 1, 7, 0));
    app.publish_all(&trip.events).await;
    app.view(&Caller::Customer(owner), trip.id(), 4)
        .await
        .expect("the owner reads it");
    let unknown = Uuid::new_v4().to_string();
    let other_driver = Caller::Driver(Uuid::new_v4());

    for who in [Caller::Customer(stranger), other_driver] {
        // Act
        let mut theirs = Vec::new();
        let mut nobodys = Vec::new();
        for (call_id, answers) in [(trip.id(), &mut theirs), (unknown.as_str(), &mut nobodys)] {
            for min_version in [0, 4] {
                let read = app
                    .view(&who, call_id, min_version)
                    .await
                    .expect_err("not visible");
                answers.push(answer(read, call_id));
            }
            for from_version in [0, 2] {
                let watch = app
                    .watch(&who, call_id, from_version)
                    .await
                    .expect_err("not visible");
                answers.push(answer(watch, call_id));
            }
        }

        // Assert
        assert_eq!(theirs, nobodys, "{who:?}");
        assert_eq!(theirs[0], (Code::NotFound, "call <id> not found".to_owned()));
    }
    let driver = Caller::Driver(Uuid::parse_str(&trip.call.driver_id).expect("uuid"));
    assert!(
        app.view(&driver, trip.id(), 0).await.is_ok(),
        "the assigned driver reads the call"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn only_analysts_read_the_dashboard_and_only_customers_list_their_calls() {
    // Arrange
    let app = spawn_app().await;
    let dashboard = || GetDashboardRequest {
        from: Some(svc_kit::clock::to_proto(utc(2031, 1, 1, 0, 0))),
        to: Some(svc_kit::clock::to_proto(utc(2031, 1, 2, 0, 0))),
        bucket: Bucket::Hour.into(),
    };

    // Act
    let by_customer = app
        .client()
        .get_dashboard(as_caller(&Caller::Customer(Uuid::new_v4()), dashboard()))
        .await;
    let by_analyst = app
        .client()
        .get_dashboard(as_caller(&Caller::Analyst(Uuid::new_v4()), dashboard()))
        .await;
    let by_driver = app
        .client()
        .list_my_calls(as_caller(
            &Caller::Driver(Uuid::new_v4()),
            ListMyCallsRequest::default(),
        ))
        .await;

    // Assert
    assert_eq!(by_customer.expect_err("customer").code(), Code::PermissionDenied);
    assert_eq!(by_analyst.expect("analyst").into_inner().buckets.len(), 24);
    assert_eq!(by_driver.expect_err("driver").code(), Code::PermissionDenied);
    app.cleanup().await;
}

#[tokio::test]
async fn a_request_without_identity_is_unauthenticated() {
    // Arrange
    let app = spawn_app().await;
    let request = Request::new(GetCallViewRequest {
        call_id: Uuid::new_v4().to_string(),
        min_version: 0,
    });

    // Act
    let err = app.client().get_call_view(request).await.expect_err("anonymous");
    let list = app
        .client()
        .list_my_calls(Request::new(ListMyCallsRequest::default()))
        .await
        .expect_err("anonymous");

    // Assert
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(list.code(), Code::Unauthenticated);
    app.cleanup().await;
}

#[tokio::test]
async fn a_driver_who_just_accepted_reads_and_watches_the_call_once_the_read_model_catches_up() {
    // Arrange: the read model has the request; the accept (version 2) is on
    // its way, and its driver asks for the call right after accepting.
    let app = spawn_app().await;
    let customer = Uuid::new_v4();
    let mut trip = Trip::request(customer, TaxiType::Normal, utc(2031, 5, 1, 7, 0));
    app.publish(&trip.events[0]).await;
    app.view(&Caller::Customer(customer), trip.id(), 1)
        .await
        .expect("requested");
    trip.accept(utc(2031, 5, 1, 7, 2));
    trip.cancel(utc(2031, 5, 1, 7, 3), CancelReason::Customer, 0);
    let driver = Caller::Driver(Uuid::parse_str(&trip.call.driver_id).expect("uuid"));

    // Act
    let read = app.view(&driver, trip.id(), 2);
    let watched = async {
        let stream = app.watch(&driver, trip.id(), 2).await?;
        Ok::<_, tonic::Status>(collect_watch(stream).await)
    };
    let publish = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.publish_all(&trip.events[1..]).await;
    };
    let (read, watched, ()) = tokio::join!(read, watched, publish);
    let other_driver = app.view(&Caller::Driver(Uuid::new_v4()), trip.id(), 0).await;

    // Assert
    let read = read.expect("the assigned driver's read");
    assert!(read.version >= 2, "at least the accept: {read:?}");
    assert_eq!(read.driver_id, trip.call.driver_id);
    let versions: Vec<i64> = watched
        .expect("the assigned driver's watch")
        .iter()
        .map(|view| view.version)
        .collect();
    assert_eq!(versions, [3], "the cancel, after the accept the driver has");
    assert_eq!(
        other_driver.expect_err("not their call").code(),
        Code::NotFound,
        "to another driver the call does not exist"
    );
    app.cleanup().await;
}
