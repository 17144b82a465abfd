//! Malformed requests are INVALID_ARGUMENT naming every bad field.

use svc_kit::identity::Caller;
use taxi_proto::query::v1::{
    Bucket, GetCallViewRequest, GetDashboardRequest, ListMyCallsRequest, WatchCallRequest,
};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

use crate::helpers::{analyst, as_caller, spawn_app, utc};

fn bad_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("bad request details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

#[tokio::test]
async fn a_call_id_that_is_not_a_uuid_and_a_negative_version_name_their_fields() {
    // Arrange
    let app = spawn_app().await;
    let who = Caller::Customer(Uuid::new_v4());

    // Act
    let view = app
        .client()
        .get_call_view(as_caller(
            &who,
            GetCallViewRequest {
                call_id: "call-1".into(),
                min_version: -1,
            },
        ))
        .await
        .expect_err("invalid");
    let watch = app
        .client()
        .watch_call(as_caller(
            &who,
            WatchCallRequest {
                call_id: String::new(),
                from_version: -3,
            },
        ))
        .await
        .expect_err("invalid");

    // Assert
    assert_eq!(bad_fields(&view), ["call_id", "min_version"]);
    assert_eq!(bad_fields(&watch), ["call_id", "from_version"]);
    app.cleanup().await;
}

#[tokio::test]
async fn a_page_size_out_of_range_or_a_foreign_page_token_is_invalid() {
    // Arrange
    let app = spawn_app().await;
    let who = Caller::Customer(Uuid::new_v4());
    let list = |page_size, page_token: &str| {
        as_caller(
            &who,
            ListMyCallsRequest {
                page_size,
                page_token: page_token.into(),
            },
        )
    };

    // Act
    let too_big = app
        .client()
        .list_my_calls(list(101, ""))
        .await
        .expect_err("too big");
    let garbage = app
        .client()
        .list_my_calls(list(10, "%%%"))
        .await
        .expect_err("garbage");
    let unknown = app
        .client()
        .list_my_calls(list(10, &format!("after:{}", Uuid::new_v4())))
        .await
        .expect_err("not one of the customer's calls");

    // Assert
    assert_eq!(bad_fields(&too_big), ["page_size"]);
    assert_eq!(bad_fields(&garbage), ["page_token"]);
    assert_eq!(bad_fields(&unknown), ["page_token"]);
    app.cleanup().await;
}

#[tokio::test]
async fn a_dashboard_range_that_is_missing_reversed_too_long_or_unbucketed_is_invalid() {
    // Arrange
    let app = spawn_app().await;
    let ts = |d| Some(svc_kit::clock::to_proto(utc(2031, 1, d, 0, 0)));
    let request = |from, to, bucket: Bucket| {
        as_caller(
            &analyst(),
            GetDashboardRequest {
                from,
                to,
                bucket: bucket.into(),
            },
        )
    };

    // Act
    let missing = app
        .client()
        .get_dashboard(request(None, None, Bucket::Unspecified))
        .await
        .expect_err("missing");
    let reversed = app
        .client()
        .get_dashboard(request(ts(5), ts(2), Bucket::Day))
        .await
        .expect_err("reversed");
    let too_long = app
        .client()
        .get_dashboard(request(
            ts(1),
            Some(svc_kit::clock::to_proto(utc(2031, 2, 2, 0, 1))),
            Bucket::Hour,
        ))
        .await
        .expect_err("more than 31 days of hours");

    // Assert
    assert_eq!(bad_fields(&missing), ["from", "to", "bucket"]);
    assert_eq!(bad_fields(&reversed), ["to"]);
    assert_eq!(bad_fields(&too_long), ["to"]);
    app.cleanup().await;
}

#[tokio::test]
async fn a_dashboard_range_near_the_end_of_time_is_invalid_and_the_service_keeps_serving() {
    // Arrange: chrono's last representable second, and an hour before it.
    let app = spawn_app().await;
    let max = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp();
    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    let request = |from, to| {
        as_caller(
            &analyst(),
            GetDashboardRequest {
                from,
                to,
                bucket: Bucket::Hour.into(),
            },
        )
    };

    // Act
    let end_of_time = app
        .client()
        .get_dashboard(request(at(max - 3_600), at(max)))
        .await
        .expect_err("beyond year 9999");
    let year_10000 = app
        .client()
        .get_dashboard(request(
            Some(svc_kit::clock::to_proto(utc(9999, 12, 31, 23, 0))),
            Some(svc_kit::clock::to_proto(utc(10_000, 1, 1, 1, 0))),
        ))
        .await
        .expect_err("to in year 10000");
    let before_2000 = app
        .client()
        .get_dashboard(request(
            Some(svc_kit::clock::to_proto(utc(1999, 12, 31, 23, 0))),
            Some(svc_kit::clock::to_proto(utc(2000, 1, 1, 1, 0))),
        ))
        .await
        .expect_err("from in 1999");
    let last_hours = app
        .client()
        .get_dashboard(request(
            Some(svc_kit::clock::to_proto(utc(9999, 12, 31, 20, 0))),
            Some(svc_kit::clock::to_proto(utc(9999, 12, 31, 23, 59))),
        ))
        .await;

    // Assert
    assert_eq!(bad_fields(&end_of_time), ["from", "to"]);
    assert_eq!(bad_fields(&year_10000), ["to"]);
    assert_eq!(bad_fields(&before_2000), ["from"]);
    let buckets = last_hours
        .expect("the last hours of 9999 are fine")
        .into_inner()
        .buckets;
    assert_eq!(buckets.len(), 4);
    app.cleanup().await;
}
