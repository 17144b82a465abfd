//! The read side's use cases.
//!
//! - `reads`: [`Reads`], what the API serves: a call's view (waiting for a
//!   version the caller has written: read-your-writes), watching a call, a
//!   customer's page of calls and the dashboard, with who may read which call.
//! - `rebuild`: replaying the event stream into a fresh generation of the
//!   read models and switching to it (`query-svc rebuild`).
//!
//! Applying live events is not a use case of its own: the projector in
//! `events` hands each event's projection straight to the store.

mod reads;
pub(crate) mod rebuild;

use std::time::Duration;

use tokio::sync::watch;

use crate::{
    error::QueryError,
    store::{Store, notify::Notifier},
};

/// The read use cases over the store and its change notifications.
pub(crate) struct Reads {
    store: Store,
    notifier: Notifier,
    /// How long a read waits for a version it was asked for.
    wait_limit: Duration,
    /// Turns true when the server starts draining.
    stopping: watch::Receiver<bool>,
}

/// The versions of a watched call as they arrive, ending after a terminal
/// one or with the error that stopped the watch.
pub(crate) type Watch =
    tokio_stream::wrappers::ReceiverStream<Result<taxi_proto::query::v1::CallView, QueryError>>;

impl Reads {
    /// Reads from `store`, woken by `notifier`; open watches end when
    /// `stopping` turns true.
    pub(crate) fn new(
        store: Store,
        notifier: Notifier,
        wait_limit: Duration,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            notifier,
            wait_limit,
            stopping,
        }
    }
}
