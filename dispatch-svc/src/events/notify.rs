//! Offer notifications on core NATS. Each offer and withdrawal is published as
//! an encoded `WatchOffersResponse` on `{prefix}_offers.{driver_id}`: outside
//! the event stream's `{prefix}.>` subjects, so JetStream does not store
//! them. A WatchOffers stream subscribes to its driver's subject, so any
//! replica serves any driver, whichever replica made the offer.
//!
//! Core NATS delivers at most once, to whoever listens at the time. The
//! database stays the truth: a stream starts from it and re-reads it now and
//! then, so a lost notification only delays.
//!
//! A notification is the very message a WatchOffers stream sends, so the
//! builders of those messages ([`offer_made`], [`offer_withdrawn`]) live here,
//! where both the publisher and the streams reach them.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::{Client, Subscriber};
use chrono::{DateTime, Utc};
use eventbus::NatsConfig;
use prost::Message as _;
use svc_kit::{clock::to_proto as timestamp, geo::GeoPoint};
use taxi_proto::dispatch::v1::{self as pb, WatchOffersResponse, watch_offers_response::Event};
use uuid::Uuid;

use crate::domain::{Offer, Withdrawal};

/// The longest a publish flush or a subscription waits for the server.
const NATS_TIMEOUT: Duration = Duration::from_secs(5);

/// The subject of `driver_id`'s offer notifications under `prefix`.
pub fn offers_subject(prefix: &str, driver_id: Uuid) -> String {
    format!("{prefix}_offers.{driver_id}")
}

/// Publishes offer notifications and subscribes to them.
#[derive(Debug, Clone)]
pub struct Notifications {
    client: Client,
    prefix: String,
}

/// A notification as a stream reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A new offer, and the message that shows it.
    Offer {
        call_id: Uuid,
        expires_at: DateTime<Utc>,
        message: WatchOffersResponse,
    },
    /// The offer of this call is gone.
    Withdrawn(Uuid),
}

impl Notifications {
    /// Notifications through `client` under `nats`'s prefix.
    pub fn new(client: Client, nats: &NatsConfig) -> Self {
        Self {
            client,
            prefix: nats.subjects().prefix().to_owned(),
        }
    }

    /// Queues the notification of `offer` for its driver; [`Notifications::flush`]
    /// sends it.
    pub async fn offer(&self, offer: &Offer) -> anyhow::Result<()> {
        self.publish(offer.driver_id, &offer_made(offer)).await
    }

    /// Queues the notification of `withdrawal` for its driver;
    /// [`Notifications::flush`] sends it.
    pub async fn withdrawal(&self, withdrawal: &Withdrawal) -> anyhow::Result<()> {
        self.publish(withdrawal.driver_id, &offer_withdrawn(withdrawal.call_id))
            .await
    }

    /// Queues `message` for `driver_id`.
    async fn publish(&self, driver_id: Uuid, message: &WatchOffersResponse) -> anyhow::Result<()> {
        self.client
            .publish(
                offers_subject(&self.prefix, driver_id),
                message.encode_to_vec().into(),
            )
            .await
            .context("cannot publish an offer notification")
    }

    /// Waits until the server has received everything published so far.
    pub async fn flush(&self) -> anyhow::Result<()> {
        tokio::time::timeout(NATS_TIMEOUT, self.client.flush())
            .await
            .context("NATS did not confirm offer notifications in time")?
            .context("cannot flush offer notifications")
    }

    /// Subscribes to `driver_id`'s notifications. When this returns the server
    /// has the subscription, so nothing published afterwards is missed.
    pub async fn subscribe(&self, driver_id: Uuid) -> anyhow::Result<Subscriber> {
        let subscriber = self
            .client
            .subscribe(offers_subject(&self.prefix, driver_id))
            .await
            .context("cannot subscribe to offer notifications")?;
        // The flush's round trip orders the subscription before anything
        // another connection publishes after it.
        self.flush().await?;
        Ok(subscriber)
    }
}

/// The wire form of an offer.
pub fn offer(offer: &Offer) -> pb::Offer {
    pb::Offer {
        call_id: offer.call_id.to_string(),
        taxi_type: offer.taxi_type.into(),
        pickup: Some(offer.pickup.to_proto()),
        dropoff: offer.dropoff.map(GeoPoint::to_proto),
        quoted_fare_krw: offer.quoted_fare_krw,
        distance_to_pickup_m: offer.distance_to_pickup_m,
        offered_at: Some(timestamp(offer.offered_at)),
        expires_at: Some(timestamp(offer.expires_at)),
    }
}

/// A stream message (and notification) showing `offer`.
pub fn offer_made(offer: &Offer) -> WatchOffersResponse {
    WatchOffersResponse {
        event: Some(Event::Offer(self::offer(offer))),
    }
}

/// A stream message (and notification) taking back the offer of `call_id`.
pub fn offer_withdrawn(call_id: Uuid) -> WatchOffersResponse {
    WatchOffersResponse {
        event: Some(Event::WithdrawnCallId(call_id.to_string())),
    }
}

/// Reads a notification; `None` for one that does not decode.
pub fn decode(payload: &[u8]) -> Option<Notice> {
    let message = WatchOffersResponse::decode(payload).ok()?;
    match &message.event {
        Some(Event::Offer(offer)) => {
            let call_id = Uuid::parse_str(&offer.call_id).ok()?;
            let expires_at = svc_kit::clock::from_proto(offer.expires_at.as_ref()?)?;
            Some(Notice::Offer {
                call_id,
                expires_at,
                message,
            })
        }
        Some(Event::WithdrawnCallId(call_id)) => Uuid::parse_str(call_id).ok().map(Notice::Withdrawn),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use taxi_proto::common::v1::TaxiType;

    use super::*;

    #[test]
    fn notifications_stay_outside_the_event_streams_subjects() {
        let driver_id = Uuid::new_v4();
        let subject = offers_subject("taxi", driver_id);
        assert_eq!(subject, format!("taxi_offers.{driver_id}"));
        assert!(!subject.starts_with("taxi."));
    }

    #[test]
    fn offers_and_withdrawals_decode_to_what_a_stream_tracks() {
        let now = svc_kit::clock::now();
        let offer = Offer {
            call_id: Uuid::new_v4(),
            driver_id: Uuid::new_v4(),
            taxi_type: TaxiType::Van,
            pickup: GeoPoint {
                lat: 37.5,
                lng: 127.0,
            },
            dropoff: None,
            quoted_fare_krw: 9_000,
            distance_to_pickup_m: 400,
            offered_at: now,
            expires_at: now + chrono::TimeDelta::seconds(30),
        };
        let made = offer_made(&offer);

        assert_eq!(
            decode(&made.encode_to_vec()),
            Some(Notice::Offer {
                call_id: offer.call_id,
                expires_at: offer.expires_at,
                message: made,
            })
        );
        assert_eq!(
            decode(&offer_withdrawn(offer.call_id).encode_to_vec()),
            Some(Notice::Withdrawn(offer.call_id))
        );
        assert_eq!(decode(b"\xff\xff"), None);
    }
}
