//! Reading the read models of one generation.

use std::collections::HashMap;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use prost::Message as _;
use redis::AsyncCommands as _;
use taxi_proto::query::v1::{CallView, CustomerActivity};
use uuid::Uuid;

use super::Store;
use crate::{
    domain::counters::{Tally, Width},
    error::QueryError,
};

/// One page of a customer's calls.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) views: Vec<CallView>,
    /// The last call of this page when more follow.
    pub(crate) next_after: Option<Uuid>,
}

fn decode(bytes: &[u8]) -> Result<CallView, QueryError> {
    Ok(CallView::decode(bytes).context("stored call view does not decode")?)
}

impl Store {
    /// The newest view of a call, if it has one.
    pub(crate) async fn view(&self, generation: &str, call_id: Uuid) -> Result<Option<CallView>, QueryError> {
        let mut conn = self.conn();
        let bytes: Option<Vec<u8>> = conn.hget(self.keys(generation).call(call_id), "view").await?;
        bytes.as_deref().map(decode).transpose()
    }

    /// Every stored version of a call above `after`, oldest first.
    pub(crate) async fn versions_after(
        &self,
        generation: &str,
        call_id: Uuid,
        after: i64,
    ) -> Result<Vec<CallView>, QueryError> {
        let mut conn = self.conn();
        let members: Vec<Vec<u8>> = conn
            .zrangebyscore(
                self.keys(generation).versions(call_id),
                format!("({after}"),
                "+inf",
            )
            .await?;
        members.iter().map(|m| decode(m)).collect()
    }

    /// Up to `size` of a customer's calls, newest first, after the call
    /// `after` (the previous page's last). `None` when `after` is not one of
    /// the customer's calls.
    pub(crate) async fn customer_page(
        &self,
        generation: &str,
        customer: Uuid,
        after: Option<Uuid>,
        size: usize,
    ) -> Result<Option<Page>, QueryError> {
        let keys = self.keys(generation);
        let index = keys.customer_calls(customer);
        let mut conn = self.conn();
        // A cursor by call rather than by offset: calls only ever join at the
        // newest end, so a page boundary never moves under a reader.
        let start = match after {
            None => 0,
            Some(after) => {
                let rank: Option<usize> = conn.zrevrank(&index, after.to_string()).await?;
                match rank {
                    Some(rank) => rank + 1,
                    None => return Ok(None),
                }
            }
        };
        let stop = isize::try_from(start + size).unwrap_or(isize::MAX) - 1;
        let start_i = isize::try_from(start).unwrap_or(isize::MAX);
        let (ids, total): (Vec<String>, usize) = redis::pipe()
            .zrevrange(&index, start_i, stop)
            .zcard(&index)
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hget(
                keys.call(Uuid::parse_str(id).context("call index holds a non-UUID")?),
                "view",
            );
        }
        let blobs: Vec<Option<Vec<u8>>> = if ids.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await?
        };
        let views = blobs
            .iter()
            .flatten()
            .map(|b| decode(b))
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = if start + ids.len() < total {
            ids.last().and_then(|id| Uuid::parse_str(id).ok())
        } else {
            None
        };
        Ok(Some(Page { views, next_after }))
    }

    /// The counters of the buckets starting at `starts`, in order (empty
    /// buckets as empty tallies).
    pub(crate) async fn buckets(
        &self,
        generation: &str,
        width: Width,
        starts: &[DateTime<Utc>],
    ) -> Result<Vec<Tally>, QueryError> {
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.keys(generation);
        let mut pipe = redis::pipe();
        for at in starts {
            pipe.hgetall(keys.bucket(width, &width.name(*at)));
        }
        let mut conn = self.conn();
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        Ok(hashes.into_iter().map(Tally::from_hash).collect())
    }

    /// The `n` customers with the most calls, most first.
    pub(crate) async fn top_customers(
        &self,
        generation: &str,
        n: isize,
    ) -> Result<Vec<CustomerActivity>, QueryError> {
        let keys = self.keys(generation);
        let mut conn = self.conn();
        let top: Vec<(String, f64)> = conn.zrevrange_withscores(keys.top_customers(), 0, n - 1).await?;
        if top.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (customer, _) in &top {
            pipe.hget(keys.customer_stats(customer), "latest_ms");
        }
        let latest: Vec<Option<i64>> = pipe.query_async(&mut conn).await?;
        Ok(top
            .into_iter()
            .zip(latest)
            .map(|((customer_id, calls), latest_ms)| CustomerActivity {
                customer_id,
                // Scores are whole counts, far below 2^53.
                calls: calls as i64,
                latest_call_at: latest_ms
                    .and_then(DateTime::from_timestamp_millis)
                    .map(svc_kit::clock::to_proto),
            })
            .collect())
    }
}
