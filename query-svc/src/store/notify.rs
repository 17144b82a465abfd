//! Change notifications: one Redis pub/sub connection per process, fanned out
//! in-process, so any replica can serve any watcher without a connection per
//! watcher.
//!
//! Pub/sub is fire-and-forget: while the connection is down notifications are
//! lost. After reconnecting the hub broadcasts [`Notice::Resync`], and every
//! waiter also re-reads on a slow timer, so a lost notification only delays.
//!
//! This sits with the store rather than with `events`: the notifications are
//! Redis's, published by the apply script in the same step that changes a
//! view, and say only that the read store changed. Nothing here touches NATS.

use std::{sync::Arc, time::Duration};

use futures::StreamExt as _;
use svc_kit::backoff::Backoff;
use tokio::sync::broadcast;
use uuid::Uuid;

/// The waits between attempts to subscribe again after the connection is lost.
const RESUBSCRIBE_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// What a waiter hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The view of `call_id` reached (at least) `version`, in the trace
    /// `traceparent` when the projection was traced.
    Changed {
        call_id: Uuid,
        version: i64,
        traceparent: Option<Arc<str>>,
    },
    /// Notifications may have been missed: re-read.
    Resync,
}

impl Notice {
    /// Whether a waiter for `call_id` should re-read.
    pub(crate) fn concerns(&self, call: Uuid) -> bool {
        match self {
            Self::Changed { call_id, .. } => *call_id == call,
            Self::Resync => true,
        }
    }
}

/// Parses `{call_id} {version}[ {traceparent}]`, the payload the apply
/// script publishes.
fn parse(payload: &str) -> Option<Notice> {
    let mut parts = payload.split(' ');
    let notice = Notice::Changed {
        call_id: Uuid::parse_str(parts.next()?).ok()?,
        version: parts.next()?.parse().ok()?,
        traceparent: parts.next().map(Arc::from),
    };
    parts.next().is_none().then_some(notice)
}

/// The in-process side of the hub: cheap to clone, subscribe per waiter.
#[derive(Clone)]
pub(crate) struct Notifier {
    tx: broadcast::Sender<Notice>,
}

impl Notifier {
    /// Starts listening: notices sent after this call reach the receiver.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.tx.subscribe()
    }
}

/// The Redis side of the hub: owns the pub/sub connection.
pub(crate) struct Hub {
    client: redis::Client,
    channel: String,
    connect_timeout: Duration,
    connection: Option<redis::aio::PubSub>,
    tx: broadcast::Sender<Notice>,
}

impl Hub {
    /// Connects and subscribes now, so that notifications are heard from the
    /// moment the service is built.
    pub(crate) async fn connect(
        client: redis::Client,
        channel: String,
        connect_timeout: Duration,
    ) -> anyhow::Result<(Self, Notifier)> {
        let (tx, _) = broadcast::channel(4_096);
        let connection = subscribe(&client, &channel, connect_timeout).await?;
        let notifier = Notifier { tx: tx.clone() };
        let hub = Self {
            client,
            channel,
            connect_timeout,
            connection: Some(connection),
            tx,
        };
        Ok((hub, notifier))
    }

    /// Forwards notifications forever, reconnecting with back-off.
    pub(crate) async fn run(mut self) {
        let mut retries = RESUBSCRIBE_BACKOFF.retries();
        loop {
            let connection = match self.connection.take() {
                Some(connection) => connection,
                None => match subscribe(&self.client, &self.channel, self.connect_timeout).await {
                    Ok(connection) => {
                        tracing::info!(channel = self.channel, "change notifications resumed");
                        let _ = self.tx.send(Notice::Resync);
                        retries.reset();
                        connection
                    }
                    Err(error) => {
                        let delay = retries.next_delay();
                        tracing::warn!(error = format!("{error:#}"), retry_in = ?delay, "cannot subscribe to change notifications");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                },
            };
            let mut messages = connection.into_on_message();
            while let Some(message) = messages.next().await {
                let payload: String = match message.get_payload() {
                    Ok(payload) => payload,
                    Err(error) => {
                        tracing::warn!(%error, "unreadable change notification");
                        continue;
                    }
                };
                match parse(&payload) {
                    // No receivers is fine: nobody is waiting.
                    Some(notice) => drop(self.tx.send(notice)),
                    None => tracing::warn!(payload, "malformed change notification"),
                }
            }
            tracing::warn!("change notification connection lost");
        }
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
    timeout: Duration,
) -> anyhow::Result<redis::aio::PubSub> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => Ok(result?),
        Err(_) => anyhow::bail!("Redis pub/sub did not answer within {timeout:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_names_the_call_and_its_version() {
        let id = Uuid::new_v4();
        assert_eq!(
            parse(&format!("{id} 7")),
            Some(Notice::Changed {
                call_id: id,
                version: 7,
                traceparent: None,
            })
        );
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse(&format!("{id} 7 a b")), None);
        assert!(Notice::Resync.concerns(id));
        assert!(
            !Notice::Changed {
                call_id: Uuid::new_v4(),
                version: 1,
                traceparent: None,
            }
            .concerns(id)
        );
    }

    #[test]
    fn a_traced_notification_carries_its_trace_context() {
        let id = Uuid::new_v4();
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse(&format!("{id} 3 {traceparent}")),
            Some(Notice::Changed {
                call_id: id,
                version: 3,
                traceparent: Some(Arc::from(traceparent)),
            })
        );
    }
}
