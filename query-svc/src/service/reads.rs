//! The read use cases: who may see which call, a call's view with
//! read-your-writes, watching a call, a customer's page of calls and the
//! dashboard.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use svc_kit::identity::Caller;
use taxi_proto::query::v1::{CallView, DashboardBucket, GetDashboardResponse};
use tokio::{
    sync::{broadcast, mpsc},
    time::Instant,
};
use tracing::Instrument as _;
use uuid::Uuid;

use super::{Reads, Watch};
use crate::{
    domain::{
        self,
        counters::{Tally, Width},
    },
    error::QueryError,
    store::{Page, notify::Notice},
};

/// How often a read-your-writes wait re-reads without a notification.
const WAIT_POLL: Duration = Duration::from_millis(500);
/// How often a watcher re-reads without a notification.
const WATCH_POLL: Duration = Duration::from_secs(5);
/// Customers shown on the dashboard.
const TOP_CUSTOMERS: isize = 10;

impl Reads {
    async fn current(&self, call_id: Uuid) -> Result<Option<CallView>, QueryError> {
        let generation = self.store.active_generation().await?;
        self.store.view(&generation, call_id).await
    }

    /// A call's view, once it has reached `min_version` (0: any).
    pub(crate) async fn call_view(
        &self,
        caller: &Caller,
        call_id: Uuid,
        min_version: i64,
    ) -> Result<CallView, QueryError> {
        // Subscribe before reading, so a change between the read and the wait
        // is still heard.
        let mut notices = self.notifier.subscribe();
        let deadline = Instant::now() + self.wait_limit;
        loop {
            // A view the caller may not see is treated as one not projected
            // (yet): the answer is the same, so nobody can probe which ids
            // exist. A driver who has just accepted, ahead of the read model,
            // is waited for with everyone else.
            match self.current(call_id).await?.filter(|view| may_see(caller, view)) {
                Some(view) if view.version >= min_version => return Ok(view),
                Some(_) => {}
                None if min_version == 0 => return Err(QueryError::NotFound(call_id)),
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(QueryError::DeadlineExceeded(format!(
                    "call {call_id} has not reached version {min_version} yet; retry"
                )));
            }
            wait_for(&mut notices, call_id, deadline.min(Instant::now() + WAIT_POLL)).await;
        }
    }

    /// Streams the call's versions above `from_version` (0: from the current
    /// view), ending after a terminal one. A call with no view yet is waited
    /// for as long as a read-your-writes read would, then NOT_FOUND; so is a
    /// call the caller may not see (a driver's assignment the read model has
    /// not reached yet becomes visible in that time).
    pub(crate) async fn watch(
        self: Arc<Self>,
        caller: &Caller,
        call_id: Uuid,
        from_version: i64,
    ) -> Result<Watch, QueryError> {
        let mut notices = self.notifier.subscribe();
        let deadline = Instant::now() + self.wait_limit;
        let current = loop {
            let waited_enough = Instant::now() >= deadline;
            // As in `call_view`: what the caller may not see is not there.
            match self.current(call_id).await?.filter(|view| may_see(caller, view)) {
                Some(view) => break view,
                None if waited_enough => return Err(QueryError::NotFound(call_id)),
                None => {}
            }
            wait_for(&mut notices, call_id, deadline.min(Instant::now() + WAIT_POLL)).await;
        };
        let last_sent = if from_version == 0 {
            current.version - 1
        } else {
            from_version
        };
        let (tx, rx) = mpsc::channel(16);
        // Nothing newer can follow a terminal view the client already has.
        if !(domain::is_terminal(&current) && current.version <= last_sent) {
            tokio::spawn(async move { self.follow(call_id, last_sent, notices, tx).await });
        }
        Ok(Watch::new(rx))
    }

    async fn follow(
        &self,
        call_id: Uuid,
        mut last_sent: i64,
        mut notices: broadcast::Receiver<Notice>,
        tx: mpsc::Sender<Result<CallView, QueryError>>,
    ) {
        let mut stopping = self.stopping.clone();
        // The trace of the projection whose notification woke the watch.
        let mut woken_by = None;
        loop {
            let send = self.send_newer(call_id, &mut last_sent, &tx);
            let done = match send_span(woken_by.take()) {
                Some(span) => send.instrument(span).await,
                None => send.await,
            };
            if done {
                return;
            }
            let stop = *stopping.borrow_and_update()
                || tokio::select! {
                    () = tx.closed() => return,
                    // A dropped sender means the server is gone too.
                    changed = stopping.changed() => changed.is_err() || *stopping.borrow(),
                    woken = wait_for(&mut notices, call_id, Instant::now() + WATCH_POLL) => {
                        woken_by = woken;
                        false
                    }
                };
            if stop {
                let _ = tx.send(Err(QueryError::ShuttingDown { last_sent })).await;
                return;
            }
        }
    }

    /// Sends the versions of `call_id` newer than `last_sent`; true when the
    /// watch is over (the call ended, the client left, or the read failed).
    async fn send_newer(
        &self,
        call_id: Uuid,
        last_sent: &mut i64,
        tx: &mpsc::Sender<Result<CallView, QueryError>>,
    ) -> bool {
        let newer = match self.newer_versions(call_id, *last_sent).await {
            Ok(newer) => newer,
            Err(error) => {
                let _ = tx.send(Err(error)).await;
                return true;
            }
        };
        for view in newer {
            if view.version <= *last_sent {
                continue;
            }
            *last_sent = view.version;
            let terminal = domain::is_terminal(&view);
            if tx.send(Ok(view)).await.is_err() || terminal {
                return true;
            }
        }
        false
    }

    async fn newer_versions(&self, call_id: Uuid, after: i64) -> Result<Vec<CallView>, QueryError> {
        let generation = self.store.active_generation().await?;
        self.store.versions_after(&generation, call_id, after).await
    }

    /// A page of the customer's calls; `None` for an unknown cursor.
    pub(crate) async fn my_calls(
        &self,
        customer: Uuid,
        after: Option<Uuid>,
        size: usize,
    ) -> Result<Option<Page>, QueryError> {
        let generation = self.store.active_generation().await?;
        self.store.customer_page(&generation, customer, after, size).await
    }

    /// The dashboard over `[from, to)` in buckets of `width`.
    pub(crate) async fn dashboard(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        width: Width,
    ) -> Result<GetDashboardResponse, QueryError> {
        let generation = self.store.active_generation().await?;
        let starts = width.starts(from, to);
        let tallies = self.store.buckets(&generation, width, &starts).await?;
        let mut total = Tally::default();
        for tally in &tallies {
            total.add(tally);
        }
        let buckets = starts
            .iter()
            .zip(&tallies)
            .map(|(start, tally)| DashboardBucket {
                start: Some(svc_kit::clock::to_proto(*start)),
                stats: Some(tally.stats()),
            })
            .collect();
        Ok(GetDashboardResponse {
            buckets,
            totals: Some(total.stats()),
            top_customers: self.store.top_customers(&generation, TOP_CUSTOMERS).await?,
        })
    }
}

/// The owning customer, the assigned driver, analysts and services may read a
/// call; to anyone else it does not exist.
fn may_see(caller: &Caller, view: &CallView) -> bool {
    match caller {
        Caller::Customer(id) => view.customer_id == id.to_string(),
        Caller::Driver(id) => !view.driver_id.is_empty() && view.driver_id == id.to_string(),
        Caller::Analyst(_) | Caller::Service(_) => true,
    }
}

/// The span of sending what a traced projection's notification woke the
/// watch for: a part of the projection's trace, so the trace shows the
/// customer's stream hearing of the change.
fn send_span(woken_by: Option<Arc<str>>) -> Option<tracing::Span> {
    let traceparent = woken_by?;
    if !svc_kit::telemetry::trace::enabled() {
        return None;
    }
    let span = tracing::info_span!(
        "watch.send",
        otel.name = "taxi.query.v1.QueryService/WatchCall send",
        otel.kind = "producer",
        trace_id = tracing::field::Empty,
    );
    svc_kit::telemetry::trace::continue_from_traceparent(&span, &traceparent);
    Some(span)
}

/// Waits until a notice concerns `call_id` (or may have been missed), or
/// until `until`; returns the trace of the notice that concerned the call,
/// if it had one.
async fn wait_for(
    notices: &mut broadcast::Receiver<Notice>,
    call_id: Uuid,
    until: Instant,
) -> Option<Arc<str>> {
    let timer = tokio::time::sleep_until(until);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            () = &mut timer => return None,
            notice = notices.recv() => match notice {
                Ok(notice) if notice.concerns(call_id) => return match notice {
                    Notice::Changed { traceparent, .. } => traceparent,
                    Notice::Resync => None,
                },
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return None,
                // The hub is gone (shutting down): only the timer is left.
                Err(broadcast::error::RecvError::Closed) => {
                    timer.await;
                    return None;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_the_assigned_driver_and_staff_read_a_call() {
        let (customer, driver) = (Uuid::new_v4(), Uuid::new_v4());
        let view = CallView {
            customer_id: customer.to_string(),
            driver_id: driver.to_string(),
            ..Default::default()
        };
        assert!(may_see(&Caller::Customer(customer), &view));
        assert!(may_see(&Caller::Driver(driver), &view));
        assert!(may_see(&Caller::Analyst(Uuid::new_v4()), &view));
        assert!(may_see(&Caller::Service("call-svc".into()), &view));
        assert!(!may_see(&Caller::Customer(Uuid::new_v4()), &view));
        assert!(!may_see(&Caller::Driver(Uuid::new_v4()), &view));
    }
}
