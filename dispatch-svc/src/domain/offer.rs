//! Offers: which drivers a requested call goes to, how long an offer stays
//! open, and what one driver's offer stream has shown so far.
//!
//! A call is offered in rounds (call-svc starts each one and says when it
//! ends): round `n` goes to the nearest available drivers not offered the call
//! before, within `n` times the base radius (up to the widest), and its offers
//! expire with the round. While a round is open, a driver who comes online or
//! moves within its radius gets the call too.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use svc_kit::geo::GeoPoint;
use taxi_proto::common::v1::TaxiType;
use uuid::Uuid;

use super::SearchArea;

/// A requested call, as far as offering it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedCall {
    pub call_id: Uuid,
    pub taxi_type: TaxiType,
    pub pickup: GeoPoint,
    pub dropoff: Option<GeoPoint>,
    pub quoted_fare_krw: i64,
    /// The round of offers this event starts (1 for the first).
    pub round: i32,
    /// When the round ends, as call-svc decided; `None` when the event does
    /// not say (the policy's offer lifetime applies).
    pub round_expires_at: Option<DateTime<Utc>>,
}

/// What a call event means for offers.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// Offer the call to the nearest available drivers.
    Requested(RequestedCall),
    /// The call is no longer open: withdraw its offers. `taken_by` is the
    /// driver who accepted it, whose offers of other calls go as well.
    Closed { call_id: Uuid, taken_by: Option<Uuid> },
    /// Nothing to do.
    Ignored,
}

/// An offer taken back: the call is no longer open to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Withdrawal {
    pub call_id: Uuid,
    pub driver_id: Uuid,
}

/// How calls are offered: each round to the `fanout` nearest drivers within
/// `radius_m` times the round of the pickup (at most `max_radius_m`); an
/// offer whose event does not say when its round ends stays open for `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferPolicy {
    pub radius_m: u32,
    pub max_radius_m: u32,
    pub fanout: u32,
    pub ttl: TimeDelta,
}

/// A call offered to one driver.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub call_id: Uuid,
    pub driver_id: Uuid,
    pub taxi_type: TaxiType,
    pub pickup: GeoPoint,
    pub dropoff: Option<GeoPoint>,
    pub quoted_fare_krw: i64,
    /// Straight-line distance from the driver to the pickup when offered.
    pub distance_to_pickup_m: i32,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl OfferPolicy {
    /// Where drivers are looked for in the call's round: wider each round.
    pub fn area(&self, call: &RequestedCall) -> SearchArea {
        let round = u32::try_from(call.round.max(1)).unwrap_or(1);
        SearchArea {
            center: call.pickup,
            radius_m: self
                .radius_m
                .saturating_mul(round)
                .min(self.max_radius_m.max(self.radius_m)),
        }
    }

    /// When the offers of the call's round expire: with the round.
    pub fn round_end(&self, call: &RequestedCall, now: DateTime<Utc>) -> DateTime<Utc> {
        call.round_expires_at.unwrap_or(now + self.ttl)
    }

    /// The offer of `call` to a driver `distance_m` metres from the pickup,
    /// made `now`, open until its round ends.
    pub fn offer(&self, call: &RequestedCall, driver_id: Uuid, distance_m: f64, now: DateTime<Utc>) -> Offer {
        Offer {
            call_id: call.call_id,
            driver_id,
            taxi_type: call.taxi_type,
            pickup: call.pickup,
            dropoff: call.dropoff,
            quoted_fare_krw: call.quoted_fare_krw,
            // The search radius is capped far below i32::MAX metres.
            distance_to_pickup_m: distance_m.round().clamp(0.0, f64::from(i32::MAX)) as i32,
            offered_at: now,
            expires_at: self.round_end(call, now),
        }
    }
}

/// The offers one WatchOffers stream has sent and not yet withdrawn, by call,
/// with their expiry: a stream shows each offer once and withdraws only what
/// it showed.
#[derive(Debug, Default)]
pub struct SentOffers {
    expiries: HashMap<Uuid, DateTime<Utc>>,
}

impl SentOffers {
    /// Whether to send the offer of `call_id`: not shown yet and still open
    /// at `now`. Remembers it when so.
    pub fn admit(&mut self, call_id: Uuid, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        if expires_at <= now || self.expiries.contains_key(&call_id) {
            return false;
        }
        self.expiries.insert(call_id, expires_at);
        true
    }

    /// Whether to send the withdrawal of `call_id`: only for a shown offer,
    /// which is forgotten.
    pub fn withdraw(&mut self, call_id: Uuid) -> bool {
        self.expiries.remove(&call_id).is_some()
    }

    /// When the next shown offer expires.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.expiries.values().min().copied()
    }

    /// The shown offers that expired by `now`, forgotten.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<Uuid> {
        self.forget(|_, expires_at| expires_at <= now)
    }

    /// The shown offers that are not among `open` (the driver's offers still
    /// open in the store), forgotten: they were withdrawn while their
    /// notification was lost.
    pub fn vanished(&mut self, open: &HashSet<Uuid>) -> Vec<Uuid> {
        self.forget(|call_id, _| !open.contains(&call_id))
    }

    fn forget(&mut self, gone: impl Fn(Uuid, DateTime<Utc>) -> bool) -> Vec<Uuid> {
        let mut calls: Vec<Uuid> = self
            .expiries
            .iter()
            .filter(|&(&call_id, &expires_at)| gone(call_id, expires_at))
            .map(|(&call_id, _)| call_id)
            .collect();
        calls.sort_by_key(|call_id| (self.expiries[call_id], *call_id));
        for call_id in &calls {
            self.expiries.remove(call_id);
        }
        calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> RequestedCall {
        RequestedCall {
            call_id: Uuid::new_v4(),
            taxi_type: TaxiType::Normal,
            pickup: GeoPoint {
                lat: 37.5547,
                lng: 126.9707,
            },
            dropoff: None,
            quoted_fare_krw: 12_800,
            round: 1,
            round_expires_at: None,
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a valid instant")
    }

    #[test]
    fn an_offer_is_open_for_the_ttl_and_rounds_its_distance() {
        let policy = OfferPolicy {
            radius_m: 3_000,
            max_radius_m: 10_000,
            fanout: 5,
            ttl: TimeDelta::seconds(30),
        };
        let call = call();
        let driver_id = Uuid::new_v4();

        let offer = policy.offer(&call, driver_id, 1_234.6, at(0));

        assert_eq!(offer.expires_at, at(30));
        assert_eq!(offer.distance_to_pickup_m, 1_235);
        assert_eq!((offer.call_id, offer.driver_id), (call.call_id, driver_id));
        assert_eq!(policy.area(&call).radius_m, 3_000);
    }

    #[test]
    fn each_round_searches_wider_up_to_the_widest_and_its_offers_end_with_it() {
        let policy = OfferPolicy {
            radius_m: 3_000,
            max_radius_m: 10_000,
            fanout: 5,
            ttl: TimeDelta::seconds(30),
        };
        let radius = |round| policy.area(&RequestedCall { round, ..call() }).radius_m;
        let second = RequestedCall {
            round: 2,
            round_expires_at: Some(at(12)),
            ..call()
        };

        assert_eq!(
            [radius(1), radius(2), radius(3), radius(4)],
            [3_000, 6_000, 9_000, 10_000]
        );
        assert_eq!(
            policy.offer(&second, Uuid::new_v4(), 10.0, at(0)).expires_at,
            at(12)
        );
    }

    #[test]
    fn a_stream_shows_an_offer_once_and_never_an_expired_one() {
        let mut sent = SentOffers::default();
        let (call_a, call_b) = (Uuid::new_v4(), Uuid::new_v4());

        assert!(sent.admit(call_a, at(30), at(0)));
        assert!(!sent.admit(call_a, at(30), at(1)));
        assert!(!sent.admit(call_b, at(5), at(5)));
        assert_eq!(sent.next_expiry(), Some(at(30)));
    }

    #[test]
    fn a_stream_withdraws_only_what_it_showed_and_only_once() {
        let mut sent = SentOffers::default();
        let call = Uuid::new_v4();
        sent.admit(call, at(30), at(0));

        assert!(sent.withdraw(call));
        assert!(!sent.withdraw(call));
        assert!(!sent.withdraw(Uuid::new_v4()));
        assert_eq!(sent.next_expiry(), None);
    }

    #[test]
    fn expired_offers_are_withdrawn_in_expiry_order() {
        let mut sent = SentOffers::default();
        let (late, early, open) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        sent.admit(late, at(20), at(0));
        sent.admit(early, at(10), at(0));
        sent.admit(open, at(40), at(0));

        assert_eq!(sent.expire(at(9)), Vec::<Uuid>::new());
        assert_eq!(sent.expire(at(20)), [early, late]);
        assert_eq!(sent.next_expiry(), Some(at(40)));
    }

    #[test]
    fn offers_missing_from_the_store_have_vanished() {
        let mut sent = SentOffers::default();
        let (kept, gone) = (Uuid::new_v4(), Uuid::new_v4());
        sent.admit(kept, at(30), at(0));
        sent.admit(gone, at(30), at(0));

        assert_eq!(sent.vanished(&HashSet::from([kept])), [gone]);
        assert!(sent.withdraw(kept));
    }
}
