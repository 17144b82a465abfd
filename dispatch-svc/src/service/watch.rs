//! WatchOffers feeds: the use case behind the stream, with gRPC left out.
//! Each feed subscribes to its driver's notifications, then shows the
//! driver's open offers from the database, then follows the notifications: a
//! new offer once, a withdrawal of what it showed, and a withdrawal of its own
//! when a shown offer reaches `expires_at`. Now and then it re-reads the
//! database, which repairs a lost notification. It ends when the client goes
//! away, or with a [`FeedEnd`] when the server shuts down or the
//! notifications stop.
//!
//! The feed yields the messages the stream sends, since a notification already
//! is one (see `events::notify`); `grpc` only turns a [`FeedEnd`] into a
//! status.

use std::{collections::HashSet, time::Duration};

use async_nats::Subscriber;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use svc_kit::clock;
use taxi_proto::dispatch::v1::WatchOffersResponse;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::registered;
use crate::{
    domain::{Offer, SentOffers},
    error::DispatchError,
    events::notify::{self, Notice, Notifications},
    store::Store,
};

/// What a WatchOffers feed yields: messages to send, then, unless the client
/// went away first, why it ended.
pub type OfferFeed = ReceiverStream<Result<WatchOffersResponse, FeedEnd>>;

/// Why a feed ended while its client was still there; either way the client
/// should watch again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEnd {
    /// The server is shutting down.
    ShuttingDown,
    /// The subscription to the driver's notifications ended.
    NotificationsEnded,
}

/// Messages a feed buffers for a slow client before it waits.
const STREAM_BUFFER: usize = 32;

/// Opens WatchOffers feeds.
#[derive(Debug, Clone)]
pub struct OfferStreams {
    store: Store,
    notifications: Notifications,
    resync: Duration,
    stopping: watch::Receiver<bool>,
}

impl OfferStreams {
    /// Feeds over `store` and `notifications` that re-read the database
    /// every `resync` and end once `stopping` turns true (or its sender is
    /// dropped).
    pub fn new(
        store: Store,
        notifications: Notifications,
        resync: Duration,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            notifications,
            resync,
            stopping,
        }
    }

    /// Starts `driver_id`'s feed: NOT_FOUND for an unregistered driver,
    /// UNAVAILABLE when NATS or the database cannot be reached.
    #[tracing::instrument(skip_all, fields(%driver_id))]
    pub async fn open(&self, driver_id: Uuid) -> Result<OfferFeed, DispatchError> {
        registered(self.store.driver(driver_id).await?, driver_id)?;
        // Subscribing before reading means an offer made in between is heard
        // of, if not read: nothing falls between the two.
        let subscriber = self
            .notifications
            .subscribe(driver_id)
            .await
            .map_err(DispatchError::notifications_unavailable)?;
        let open = self.store.open_offers(driver_id, clock::now()).await?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let feed = OfferWatch {
            driver_id,
            store: self.store.clone(),
            subscriber,
            tx,
            stopping: self.stopping.clone(),
            sent: SentOffers::default(),
        };
        tokio::spawn(feed.run(open, self.resync));
        Ok(ReceiverStream::new(rx))
    }
}

/// The client went away.
struct Gone;

/// Why a feed woke up.
enum Wake {
    ClientGone,
    Stopping,
    Notification(Option<async_nats::Message>),
    Expiry,
    Resync,
}

/// One running feed.
struct OfferWatch {
    driver_id: Uuid,
    store: Store,
    subscriber: Subscriber,
    tx: mpsc::Sender<Result<WatchOffersResponse, FeedEnd>>,
    stopping: watch::Receiver<bool>,
    sent: SentOffers,
}

impl OfferWatch {
    async fn run(mut self, open: Vec<Offer>, resync: Duration) {
        if self.show(&open, clock::now()).await.is_err() {
            return;
        }
        let mut resyncs = tokio::time::interval_at(Instant::now() + resync, resync);
        resyncs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let expiry = self.sent.next_expiry();
            // Disabled without an expiry, but the branch still needs a future.
            let deadline = expiry.map_or_else(|| Instant::now() + resync, instant_at);
            let wake = tokio::select! {
                () = self.tx.closed() => Wake::ClientGone,
                _ = self.stopping.wait_for(|stopping| *stopping) => Wake::Stopping,
                message = self.subscriber.next() => Wake::Notification(message),
                () = tokio::time::sleep_until(deadline), if expiry.is_some() => Wake::Expiry,
                _ = resyncs.tick() => Wake::Resync,
            };
            let step = match wake {
                Wake::ClientGone => return,
                Wake::Stopping => {
                    self.end(FeedEnd::ShuttingDown).await;
                    return;
                }
                Wake::Notification(None) => {
                    self.end(FeedEnd::NotificationsEnded).await;
                    return;
                }
                Wake::Notification(Some(message)) => self.notice(&message.payload).await,
                Wake::Expiry => self.expire(clock::now()).await,
                Wake::Resync => self.resync().await,
            };
            if step.is_err() {
                return;
            }
        }
    }

    async fn send(&self, message: WatchOffersResponse) -> Result<(), Gone> {
        self.tx.send(Ok(message)).await.map_err(|_| Gone)
    }

    async fn end(&self, why: FeedEnd) {
        // The client may be gone already; nothing is left to tell then.
        let _ = self.tx.send(Err(why)).await;
    }

    /// Shows the offers not shown yet.
    async fn show(&mut self, offers: &[Offer], now: DateTime<Utc>) -> Result<(), Gone> {
        for offer in offers {
            if self.sent.admit(offer.call_id, offer.expires_at, now) {
                self.send(notify::offer_made(offer)).await?;
            }
        }
        Ok(())
    }

    async fn withdraw(&mut self, calls: Vec<Uuid>) -> Result<(), Gone> {
        for call_id in calls {
            self.send(notify::offer_withdrawn(call_id)).await?;
        }
        Ok(())
    }

    async fn notice(&mut self, payload: &[u8]) -> Result<(), Gone> {
        match notify::decode(payload) {
            Some(Notice::Offer {
                call_id,
                expires_at,
                message,
            }) => {
                if self.sent.admit(call_id, expires_at, clock::now()) {
                    self.send(message).await?;
                }
            }
            Some(Notice::Withdrawn(call_id)) => {
                if self.sent.withdraw(call_id) {
                    self.send(notify::offer_withdrawn(call_id)).await?;
                }
            }
            None => tracing::warn!(driver_id = %self.driver_id, "malformed offer notification ignored"),
        }
        Ok(())
    }

    async fn expire(&mut self, now: DateTime<Utc>) -> Result<(), Gone> {
        let expired = self.sent.expire(now);
        self.withdraw(expired).await
    }

    /// Brings the feed in line with the database.
    async fn resync(&mut self) -> Result<(), Gone> {
        let now = clock::now();
        self.expire(now).await?;
        let open = match self.store.open_offers(self.driver_id, now).await {
            Ok(open) => open,
            Err(error) => {
                tracing::warn!(driver_id = %self.driver_id, %error, "cannot re-read open offers");
                return Ok(());
            }
        };
        let calls: HashSet<Uuid> = open.iter().map(|offer| offer.call_id).collect();
        let vanished = self.sent.vanished(&calls);
        self.withdraw(vanished).await?;
        self.show(&open, now).await
    }
}

/// The monotonic instant of the wall-clock time `at` (now, if it is past).
fn instant_at(at: DateTime<Utc>) -> Instant {
    Instant::now() + (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}
