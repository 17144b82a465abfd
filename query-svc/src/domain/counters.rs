//! The dashboard's counters: their field names in a bucket hash, the bucket
//! names, and the statistics computed from them at read time.

use chrono::{DateTime, Datelike as _, Duration, Timelike as _, Utc};
use std::collections::HashMap;
use taxi_proto::{
    common::v1::TaxiType,
    query::v1::{DashboardStats, TaxiTypeCounts},
};

/// One counter of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    Requested,
    Rejected,
    Accepted,
    Started,
    Completed,
    Canceled,
    Expired,
    PaymentDeclined,
    RevenueKrw,
    WaitMsSum,
    Waits,
}

impl Counter {
    /// The field in a bucket hash.
    pub(crate) fn field(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Rejected => "rejected",
            Self::Accepted => "accepted",
            Self::Started => "started",
            Self::Completed => "completed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::PaymentDeclined => "payment_declined",
            Self::RevenueKrw => "revenue_krw",
            Self::WaitMsSum => "wait_ms_sum",
            Self::Waits => "waits",
        }
    }
}

/// The per-type field of a status counter: `requested:2` for premium.
fn typed_field(counter: Counter, taxi_type: i32) -> String {
    format!("{}:{taxi_type}", counter.field())
}

/// `amount` on a status counter, overall and for `taxi_type`.
pub(crate) fn for_status(counter: Counter, taxi_type: i32, amount: i64) -> Vec<(String, i64)> {
    vec![
        (counter.field().to_owned(), amount),
        (typed_field(counter, taxi_type), amount),
    ]
}

/// The width of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Width {
    Hour,
    Day,
}

impl Width {
    /// The bucket name of `at`: `YYYYMMDDHH` or `YYYYMMDD` (UTC).
    pub(crate) fn name(self, at: DateTime<Utc>) -> String {
        match self {
            Self::Hour => format!("{:04}{:02}{:02}{:02}", at.year(), at.month(), at.day(), at.hour()),
            Self::Day => format!("{:04}{:02}{:02}", at.year(), at.month(), at.day()),
        }
    }

    /// The short tag in the bucket's key: `h` or `d`.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Self::Hour => "h",
            Self::Day => "d",
        }
    }

    fn step(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }

    /// The start of the bucket holding `at`. (Calendar fields rather than
    /// `DurationRound`, which counts in nanoseconds and so fails after 2262.)
    fn start_of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let hour = match self {
            Self::Hour => at.hour(),
            Self::Day => 0,
        };
        at.date_naive()
            .and_hms_opt(hour, 0, 0)
            .map_or(at, |start| start.and_utc())
    }

    /// The start of every bucket that overlaps `[from, to)`, oldest first.
    pub(crate) fn starts(self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        // Stepping only fails near chrono's limits, which the request
        // validation already excludes; stop there rather than panic.
        let first = self.start_of(from);
        let mut starts = Vec::new();
        let mut at = Some(first);
        while let Some(start) = at.filter(|start| *start < to) {
            starts.push(start);
            at = start.checked_add_signed(self.step());
        }
        starts
    }
}

/// The taxi types the dashboard breaks counts down by.
const TAXI_TYPES: [TaxiType; 3] = [TaxiType::Normal, TaxiType::Premium, TaxiType::Van];

/// Summed raw counters of one or more buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally(HashMap<String, i64>);

impl Tally {
    /// From a bucket hash as Redis returns it; unparseable values count 0.
    pub(crate) fn from_hash(hash: HashMap<String, String>) -> Self {
        Self(
            hash.into_iter()
                .map(|(k, v)| (k, v.parse().unwrap_or(0)))
                .collect(),
        )
    }

    pub(crate) fn add(&mut self, other: &Self) {
        for (field, value) in &other.0 {
            *self.0.entry(field.clone()).or_default() += value;
        }
    }

    fn get(&self, field: &str) -> i64 {
        self.0.get(field).copied().unwrap_or(0)
    }

    fn count(&self, counter: Counter) -> i64 {
        self.get(counter.field())
    }

    /// The statistics, with rates computed now (0 when nothing to divide by).
    pub(crate) fn stats(&self) -> DashboardStats {
        let c = |counter| self.count(counter);
        let rate = |num: i64, den: i64| if den > 0 { num as f64 / den as f64 } else { 0.0 };
        let waits = c(Counter::Waits);
        DashboardStats {
            requested: c(Counter::Requested),
            rejected: c(Counter::Rejected),
            accepted: c(Counter::Accepted),
            started: c(Counter::Started),
            completed: c(Counter::Completed),
            canceled: c(Counter::Canceled),
            expired: c(Counter::Expired),
            payment_declined: c(Counter::PaymentDeclined),
            revenue_krw: c(Counter::RevenueKrw),
            average_wait_ms: if waits > 0 {
                c(Counter::WaitMsSum) / waits
            } else {
                0
            },
            cancellation_rate: rate(c(Counter::Canceled), c(Counter::Requested)),
            rejection_rate: rate(c(Counter::Rejected), c(Counter::Requested) + c(Counter::Rejected)),
            expiry_rate: rate(c(Counter::Expired), c(Counter::Requested)),
            by_taxi_type: TAXI_TYPES
                .iter()
                .map(|&t| {
                    let typed = |counter| self.get(&typed_field(counter, t as i32));
                    TaxiTypeCounts {
                        taxi_type: t.into(),
                        requested: typed(Counter::Requested),
                        rejected: typed(Counter::Rejected),
                        accepted: typed(Counter::Accepted),
                        started: typed(Counter::Started),
                        completed: typed(Counter::Completed),
                        canceled: typed(Counter::Canceled),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("valid")
    }

    #[test]
    fn bucket_names_are_utc_hours_and_days() {
        let at = utc(2030, 1, 2, 3, 45);
        assert_eq!(Width::Hour.name(at), "2030010203");
        assert_eq!(Width::Day.name(at), "20300102");
    }

    #[test]
    fn a_range_covers_every_bucket_it_touches_and_no_more() {
        let hours = Width::Hour.starts(utc(2030, 1, 1, 10, 30), utc(2030, 1, 1, 13, 0));
        assert_eq!(
            hours,
            [
                utc(2030, 1, 1, 10, 0),
                utc(2030, 1, 1, 11, 0),
                utc(2030, 1, 1, 12, 0)
            ]
        );
        let days = Width::Day.starts(utc(2030, 1, 1, 0, 0), utc(2030, 1, 3, 0, 1));
        assert_eq!(days.len(), 3);
    }

    #[test]
    fn buckets_after_2262_start_on_the_hour_and_day_too() {
        let hours = Width::Hour.starts(utc(9999, 12, 31, 10, 30), utc(9999, 12, 31, 12, 15));
        assert_eq!(
            hours,
            [
                utc(9999, 12, 31, 10, 0),
                utc(9999, 12, 31, 11, 0),
                utc(9999, 12, 31, 12, 0)
            ]
        );
        let days = Width::Day.starts(utc(9999, 12, 30, 10, 30), utc(9999, 12, 31, 0, 1));
        assert_eq!(days, [utc(9999, 12, 30, 0, 0), utc(9999, 12, 31, 0, 0)]);
    }

    #[test]
    fn a_range_ending_at_chronos_last_instant_does_not_overflow() {
        let to = DateTime::<Utc>::MAX_UTC;
        let from = to - Duration::hours(3);
        assert_eq!(Width::Hour.starts(from, to).len(), 4);
        assert_eq!(Width::Day.starts(from, to).len(), 1);
    }

    #[test]
    fn rates_are_zero_without_demand_and_divide_otherwise() {
        assert_eq!(Tally::default().stats().cancellation_rate, 0.0);
        let mut tally = Tally::default();
        for (field, amount) in for_status(Counter::Requested, 1, 4)
            .into_iter()
            .chain(for_status(Counter::Rejected, 1, 4))
            .chain(for_status(Counter::Canceled, 1, 1))
            .chain([
                ("expired".to_owned(), 1),
                ("wait_ms_sum".to_owned(), 900),
                ("waits".to_owned(), 3),
            ])
        {
            tally.0.insert(field, amount);
        }
        let stats = tally.stats();
        assert_eq!(stats.cancellation_rate, 0.25);
        assert_eq!(stats.rejection_rate, 0.5);
        assert_eq!(stats.expiry_rate, 0.25);
        assert_eq!(stats.average_wait_ms, 300);
        assert_eq!(stats.by_taxi_type[0].requested, 4);
        assert_eq!(stats.by_taxi_type[1].requested, 0);
    }
}
