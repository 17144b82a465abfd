//! Request parsing: every bad field is named at once (INVALID_ARGUMENT with
//! `google.rpc.BadRequest`), the page token format, and a watch's items on
//! the wire.

use chrono::{DateTime, Datelike as _, Duration, Utc};
use svc_kit::validate::{InvalidArgument, Violations};
use taxi_proto::query::v1::{
    Bucket, CallView, GetCallViewRequest, GetDashboardRequest, ListMyCallsRequest, WatchCallRequest,
    WatchCallResponse,
};
use tonic::Status;
use uuid::Uuid;

use svc_kit::clock::from_proto;

use crate::{domain::counters::Width, error::QueryError};

const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: i32 = 100;
/// Prefix of a page token, so a token is not mistaken for a bare call id.
const PAGE_TOKEN_PREFIX: &str = "after:";
/// The years a dashboard range may lie in: far from chrono's limits, and
/// every bucket name has a four-digit year.
const DASHBOARD_YEARS: std::ops::RangeInclusive<i32> = 2000..=9999;

fn version(v: &mut Violations, field: &str, value: i64) -> i64 {
    if value < 0 {
        v.add(field, "must not be negative");
    }
    value
}

/// One item of a watch on the wire.
pub(super) fn watched(item: Result<CallView, QueryError>) -> Result<WatchCallResponse, Status> {
    item.map(|view| WatchCallResponse { view: Some(view) })
        .map_err(Status::from)
}

pub(super) fn get_call_view(req: &GetCallViewRequest) -> Result<(Uuid, i64), InvalidArgument> {
    let mut v = Violations::new();
    let call_id = v.uuid("call_id", &req.call_id);
    let min_version = version(&mut v, "min_version", req.min_version);
    v.finish()?;
    Ok((call_id.unwrap_or_default(), min_version))
}

pub(super) fn watch_call(req: &WatchCallRequest) -> Result<(Uuid, i64), InvalidArgument> {
    let mut v = Violations::new();
    let call_id = v.uuid("call_id", &req.call_id);
    let from_version = version(&mut v, "from_version", req.from_version);
    v.finish()?;
    Ok((call_id.unwrap_or_default(), from_version))
}

/// Page size and the call after which the page starts.
pub(super) fn list_my_calls(req: &ListMyCallsRequest) -> Result<(usize, Option<Uuid>), InvalidArgument> {
    let mut v = Violations::new();
    let size = match req.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n @ 1..=MAX_PAGE_SIZE => usize::try_from(n).unwrap_or(DEFAULT_PAGE_SIZE),
        _ => {
            v.add("page_size", format!("must be within 0..={MAX_PAGE_SIZE}"));
            DEFAULT_PAGE_SIZE
        }
    };
    let after = if req.page_token.is_empty() {
        None
    } else {
        let parsed = req
            .page_token
            .strip_prefix(PAGE_TOKEN_PREFIX)
            .and_then(|id| Uuid::parse_str(id).ok());
        if parsed.is_none() {
            v.add("page_token", "is not a token this service issued");
        }
        parsed
    };
    v.finish()?;
    Ok((size, after))
}

pub(super) fn page_token(after: Uuid) -> String {
    format!("{PAGE_TOKEN_PREFIX}{after}")
}

pub(super) fn unknown_page_token() -> InvalidArgument {
    InvalidArgument::field("page_token", "does not match any of your calls")
}

fn instant(v: &mut Violations, field: &str, value: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    match value {
        None => {
            v.add(field, "must be set");
            None
        }
        Some(at) => {
            let parsed = from_proto(at);
            if parsed.is_none() {
                v.add(field, "is not a valid timestamp");
            }
            parsed
        }
    }
}

/// An instant within [`DASHBOARD_YEARS`].
fn dashboard_instant(
    v: &mut Violations,
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Option<DateTime<Utc>> {
    let at = instant(v, field, value)?;
    if !DASHBOARD_YEARS.contains(&at.year()) {
        v.add(
            field,
            format!(
                "must be within the years {}..={}",
                DASHBOARD_YEARS.start(),
                DASHBOARD_YEARS.end()
            ),
        );
        return None;
    }
    Some(at)
}

pub(super) fn get_dashboard(
    req: &GetDashboardRequest,
) -> Result<(DateTime<Utc>, DateTime<Utc>, Width), InvalidArgument> {
    let mut v = Violations::new();
    let from = dashboard_instant(&mut v, "from", req.from.as_ref());
    let to = dashboard_instant(&mut v, "to", req.to.as_ref());
    let width = match Bucket::try_from(req.bucket) {
        Ok(Bucket::Hour) => Some(Width::Hour),
        Ok(Bucket::Day) => Some(Width::Day),
        Ok(Bucket::Unspecified) => {
            v.add("bucket", "must be specified");
            None
        }
        Err(_) => {
            v.add("bucket", format!("unknown bucket {}", req.bucket));
            None
        }
    };
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            v.add("to", "must be after from");
        } else if let Some(width) = width {
            let (limit, what) = match width {
                Width::Hour => (Duration::days(31), "31 days for hourly buckets"),
                Width::Day => (Duration::days(366), "366 days for daily buckets"),
            };
            if to - from > limit {
                v.add("to", format!("the range may span at most {what}"));
            }
        }
    }
    v.finish()?;
    match (from, to, width) {
        (Some(from), Some(to), Some(width)) => Ok((from, to, width)),
        _ => Err(InvalidArgument::field("from", "must be set")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: InvalidArgument) -> Vec<String> {
        err.0.into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn page_size_zero_means_twenty_and_over_a_hundred_is_invalid() {
        let req = |page_size| ListMyCallsRequest {
            page_size,
            page_token: String::new(),
        };
        assert_eq!(list_my_calls(&req(0)).expect("valid").0, 20);
        assert_eq!(list_my_calls(&req(100)).expect("valid").0, 100);
        assert_eq!(
            fields(list_my_calls(&req(101)).expect_err("too big")),
            ["page_size"]
        );
        assert_eq!(
            fields(list_my_calls(&req(-1)).expect_err("negative")),
            ["page_size"]
        );
    }

    #[test]
    fn a_page_token_round_trips_and_garbage_is_rejected() {
        let id = Uuid::new_v4();
        let req = ListMyCallsRequest {
            page_size: 5,
            page_token: page_token(id),
        };
        assert_eq!(list_my_calls(&req).expect("valid"), (5, Some(id)));
        let bad = ListMyCallsRequest {
            page_size: 5,
            page_token: id.to_string(),
        };
        assert_eq!(fields(list_my_calls(&bad).expect_err("bare id")), ["page_token"]);
    }

    #[test]
    fn a_dashboard_range_must_be_ordered_bounded_and_bucketed() {
        // 2030-01-01T00:00:00Z
        let base: i64 = 1_893_456_000;
        let ts = |seconds| {
            Some(prost_types::Timestamp {
                seconds: base + seconds,
                nanos: 0,
            })
        };
        let day = 86_400;
        let req = |from, to, bucket: Bucket| GetDashboardRequest {
            from,
            to,
            bucket: bucket.into(),
        };
        assert!(get_dashboard(&req(ts(0), ts(day), Bucket::Hour)).is_ok());
        assert_eq!(
            fields(get_dashboard(&req(None, None, Bucket::Unspecified)).expect_err("empty")),
            ["from", "to", "bucket"]
        );
        assert_eq!(
            fields(get_dashboard(&req(ts(day), ts(0), Bucket::Day)).expect_err("reversed")),
            ["to"]
        );
        assert_eq!(
            fields(get_dashboard(&req(ts(0), ts(32 * day), Bucket::Hour)).expect_err("long")),
            ["to"]
        );
        assert!(get_dashboard(&req(ts(0), ts(32 * day), Bucket::Day)).is_ok());
        assert_eq!(
            fields(get_dashboard(&req(ts(0), ts(367 * day), Bucket::Day)).expect_err("long")),
            ["to"]
        );
    }

    #[test]
    fn a_dashboard_range_outside_the_years_2000_to_9999_is_invalid() {
        let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        let req = |from, to| GetDashboardRequest {
            from,
            to,
            bucket: Bucket::Day.into(),
        };
        // chrono's last representable second, and the hour before it.
        let max = DateTime::<Utc>::MAX_UTC.timestamp();
        assert_eq!(
            fields(get_dashboard(&req(at(max - 3_600), at(max))).expect_err("far future")),
            ["from", "to"]
        );
        let last_second = utc_seconds(9999, 12, 31, 23, 59, 59);
        assert_eq!(
            fields(
                get_dashboard(&req(at(last_second - 86_400), at(last_second + 1))).expect_err("year 10000")
            ),
            ["to"]
        );
        assert!(get_dashboard(&req(at(last_second - 86_400), at(last_second))).is_ok());
        assert_eq!(
            fields(
                get_dashboard(&req(
                    at(utc_seconds(1999, 12, 31, 0, 0, 0)),
                    at(utc_seconds(2000, 1, 2, 0, 0, 0))
                ))
                .expect_err("1999")
            ),
            ["from"]
        );
    }

    fn utc_seconds(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        use chrono::TimeZone as _;
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid time")
            .timestamp()
    }
}
