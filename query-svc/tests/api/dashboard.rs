//! GetDashboard: counters by event time, rates, waits and top customers.

use taxi_proto::{
    common::v1::TaxiType,
    query::v1::{Bucket, DashboardStats, TaxiTypeCounts},
};
use uuid::Uuid;

use crate::helpers::{mixed_day, spawn_app, utc};

fn by_type(stats: &DashboardStats, taxi_type: TaxiType) -> TaxiTypeCounts {
    stats
        .by_taxi_type
        .iter()
        .find(|t| t.taxi_type == taxi_type as i32)
        .cloned()
        .expect("every taxi type is listed")
}

#[tokio::test]
async fn the_dashboard_counts_statuses_taxi_types_revenue_rates_waits_and_top_customers() {
    // Arrange
    let app = spawn_app().await;
    let customers = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let (_, events) = mixed_day(customers);
    app.publish_all(&events).await;
    app.caught_up().await;

    // Act
    let dashboard = app
        .dashboard(utc(2031, 3, 4, 0, 0), utc(2031, 3, 6, 0, 0), Bucket::Day)
        .await;

    // Assert
    let totals = dashboard.totals.expect("totals");
    assert_eq!(
        (
            totals.requested,
            totals.rejected,
            totals.accepted,
            totals.started,
            totals.completed
        ),
        (6, 1, 3, 2, 2)
    );
    assert_eq!(
        (totals.canceled, totals.expired, totals.payment_declined),
        (3, 1, 1)
    );
    assert_eq!(totals.revenue_krw, 17_000 + 30_000 + 1_000);
    assert_eq!(
        totals.average_wait_ms,
        4 * 60 * 1000,
        "waits of 2, 4 and 6 minutes"
    );
    assert_eq!(totals.cancellation_rate, 0.5);
    assert_eq!(totals.rejection_rate, 1.0 / 7.0);
    assert_eq!(totals.expiry_rate, 1.0 / 6.0);
    let normal = by_type(&totals, TaxiType::Normal);
    assert_eq!((normal.requested, normal.completed, normal.canceled), (4, 1, 2));
    let van = by_type(&totals, TaxiType::Van);
    assert_eq!(
        (van.requested, van.rejected, van.accepted, van.canceled),
        (1, 1, 1, 1)
    );
    assert_eq!(by_type(&totals, TaxiType::Premium).completed, 1);

    let [a, b, c] = customers.map(|c| c.to_string());
    let top: Vec<(String, i64)> = dashboard
        .top_customers
        .iter()
        .map(|t| (t.customer_id.clone(), t.calls))
        .collect();
    assert_eq!(top, [(a, 3), (b, 2), (c, 1)]);
    let latest = dashboard.top_customers[0].latest_call_at.expect("latest call");
    assert_eq!(latest.seconds, utc(2031, 3, 5, 8, 0).timestamp());
    app.cleanup().await;
}

#[tokio::test]
async fn the_dashboard_returns_every_bucket_of_the_range_including_empty_ones() {
    // Arrange
    let app = spawn_app().await;
    let (_, events) = mixed_day([Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()]);
    app.publish_all(&events).await;
    app.caught_up().await;

    // Act
    let hours = app
        .dashboard(utc(2031, 3, 4, 8, 0), utc(2031, 3, 4, 13, 0), Bucket::Hour)
        .await;
    let days = app
        .dashboard(utc(2031, 3, 4, 0, 0), utc(2031, 3, 7, 0, 0), Bucket::Day)
        .await;

    // Assert
    let starts: Vec<i64> = hours
        .buckets
        .iter()
        .map(|b| b.start.expect("start").seconds)
        .collect();
    assert_eq!(
        starts,
        (8..13)
            .map(|h| utc(2031, 3, 4, h, 0).timestamp())
            .collect::<Vec<_>>()
    );
    let stats: Vec<DashboardStats> = hours
        .buckets
        .iter()
        .map(|b| b.stats.clone().expect("stats"))
        .collect();
    assert_eq!(stats[0].requested, 0, "08:00 is empty");
    assert_eq!(
        (
            stats[1].requested,
            stats[1].accepted,
            stats[1].completed,
            stats[1].rejected
        ),
        (2, 2, 1, 1),
        "09:00: two requests and one trip completed in the hour"
    );
    assert_eq!(stats[1].revenue_krw, 17_000);
    assert_eq!(stats[1].average_wait_ms, 3 * 60 * 1000);
    assert_eq!(
        (
            stats[2].requested,
            stats[2].completed,
            stats[2].canceled,
            stats[2].expired
        ),
        (2, 1, 2, 1),
        "10:00: the 09:20 trip completes at 10:10"
    );
    assert_eq!(stats[2].revenue_krw, 31_000);
    assert_eq!((stats[3].canceled, stats[3].payment_declined), (1, 1));
    assert_eq!(
        stats[4],
        DashboardStats {
            by_taxi_type: stats[4].by_taxi_type.clone(),
            ..Default::default()
        }
    );
    assert_eq!(hours.totals.expect("totals").requested, 5);

    let requested: Vec<i64> = days
        .buckets
        .iter()
        .map(|b| b.stats.as_ref().expect("stats").requested)
        .collect();
    assert_eq!(requested, [5, 1, 0]);
    app.cleanup().await;
}
