//! Who may read what.

use svc_kit::identity::Caller;
use taxi_proto::query::v1::{Bucket, GetCallViewRequest, GetDashboardRequest, ListMyCallsRequest};
use tonic::{Code, Request};
use uuid::Uuid;

use crate::helpers::{Trip, as_caller, spawn_app, utc};

#[tokio::test]
async fn a_customer_cannot_read_or_watch_another_customers_call() {
    // Arrange
    let app = spawn_app().await;
    let (owner, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    let trip = Trip::completed_at(owner, utc(2031, 5, 1, 7, 0));
    app.publish_all(&trip.events).await;
    app.view(&Caller::Customer(owner), trip.id(), 4)
        .await
        .expect("the owner reads it");

    // Act
    let read = app.view(&Caller::Customer(stranger), trip.id(), 0).await;
    let watch = app.watch(&Caller::Customer(stranger), trip.id(), 0).await;
    let driver = Caller::Driver(Uuid::parse_str(&trip.call.driver_id).expect("uuid"));
    let by_driver = app.view(&driver, trip.id(), 0).await;

    // Assert
    assert_eq!(read.expect_err("not theirs").code(), Code::PermissionDenied);
    assert_eq!(watch.expect_err("not theirs").code(), Code::PermissionDenied);
    assert!(by_driver.is_ok(), "the assigned driver reads the call");
    app.cleanup().await;
}

#[tokio::test]
async fn only_analysts_read_the_dashboard_and_only_customers_list_their_calls() {
    // Arrange
    let app = spawn_app().await;
    let dashboard = || GetDashboardRequest {
        from: Some(svc_kit::outbox::timestamp(utc(2031, 1, 1, 0, 0))),
        to: Some(svc_kit::outbox::timestamp(utc(2031, 1, 2, 0, 0))),
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
