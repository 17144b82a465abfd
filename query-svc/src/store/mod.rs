//! The read models in Redis.
//!
//! Every data key lives under the active *generation*:
//! `{prefix}:{generation}:...`, where `{prefix}:active` names the generation
//! (`g1` until the first rebuild). A rebuild fills a fresh generation and
//! switches `{prefix}:active` in one SET; readers resolve the generation per
//! request, and the projector's writes check it inside their Lua script, so
//! no write lands in a generation that is no longer active.
//!
//! | key | type | content |
//! |---|---|---|
//! | `{p}:{g}:call:{id}` | hash | `version`, `view` (encoded `CallView`), `status` (its proto name, `CALL_STATUS_…`), `customer_id`, `driver_id` |
//! | `{p}:{g}:call:{id}:versions` | zset | every version's encoded view, scored by version |
//! | `{p}:{g}:customer:{cid}:calls` | zset | call ids scored by requested-at (ms) |
//! | `{p}:{g}:customer:{cid}:stats` | hash | `calls`, `latest_ms` |
//! | `{p}:{g}:dash:customers` | zset | customer ids scored by call count |
//! | `{p}:{g}:dash:h:{YYYYMMDDHH}`, `{p}:{g}:dash:d:{YYYYMMDD}` | hash | counters (see `domain::counters`) |
//! | `{p}:{g}:applied:{aggregate_type}:{id}` | set | `{version}:{event_type}` of every event applied |
//!
//! Changes are announced on the channel `{p}:changes` as `{call_id} {version}`
//! by the apply script, and heard through [`notify`].
//!
//! - [`apply`]: the one Lua script that applies a projection atomically.
//! - `read`: the reads of one generation (a view, its versions, a customer's
//!   page, the dashboard's buckets and top customers).
//! - [`notify`]: the change notifications, one pub/sub connection fanned out.
//! - here: the connection, the key layout and the generations (switching,
//!   deleting, the rebuild lock).

pub(crate) mod apply;
pub(crate) mod notify;
mod read;

use std::time::Duration;

use anyhow::Context as _;
use redis::{AsyncCommands as _, aio::ConnectionManager};
use uuid::Uuid;

use crate::{config::RedisConfig, domain::counters::Width};

pub(crate) use apply::Applied;
pub(crate) use read::Page;

/// The generation used until the first rebuild.
pub(crate) const INITIAL_GENERATION: &str = "g1";

/// A connection to the read store under one key prefix.
#[derive(Clone)]
pub(crate) struct Store {
    conn: ConnectionManager,
    prefix: String,
}

impl Store {
    /// Connects, failing when Redis does not answer in time.
    pub(crate) async fn connect(config: &RedisConfig) -> anyhow::Result<(Self, redis::Client)> {
        let client = redis::Client::open(config.url.expose()).context("invalid Redis URL")?;
        // ConnectionManager reconnects by itself but fails the command that hit
        // the broken connection; callers (the consumer's redelivery, clients)
        // retry. Without timeouts a dead server would hang every request.
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = client
            .get_connection_manager_with_config(manager_config)
            .await
            .with_context(|| format!("cannot connect to Redis at {}", config.url))?;
        let store = Self {
            conn,
            prefix: config.key_prefix.clone(),
        };
        Ok((store, client))
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn active_key(&self) -> String {
        format!("{}:active", self.prefix)
    }

    /// The key of the lock a rebuild holds.
    pub(crate) fn rebuild_lock_key(&self) -> String {
        format!("{}:rebuild", self.prefix)
    }

    /// The pub/sub channel every view change is announced on.
    pub(crate) fn changes_channel(&self) -> String {
        format!("{}:changes", self.prefix)
    }

    /// The keys of generation `generation`.
    pub(crate) fn keys(&self, generation: &str) -> Keys {
        Keys {
            base: format!("{}:{generation}", self.prefix),
        }
    }

    /// True while Redis answers.
    pub(crate) async fn ping(&self) -> bool {
        let mut conn = self.conn();
        redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
    }

    /// The generation readers use now (`g1` before anything was written).
    pub(crate) async fn active_generation(&self) -> redis::RedisResult<String> {
        let mut conn = self.conn();
        let generation: Option<String> = conn.get(self.active_key()).await?;
        Ok(generation.unwrap_or_else(|| INITIAL_GENERATION.to_owned()))
    }

    /// The active generation, recorded as `g1` if none is yet.
    pub(crate) async fn ensure_active_generation(&self) -> redis::RedisResult<String> {
        let mut conn = self.conn();
        let set: bool = redis::cmd("SET")
            .arg(self.active_key())
            .arg(INITIAL_GENERATION)
            .arg("NX")
            .query_async::<Option<String>>(&mut conn)
            .await?
            .is_some();
        if set {
            return Ok(INITIAL_GENERATION.to_owned());
        }
        self.active_generation().await
    }

    /// The active generation as stored, without a default.
    pub(crate) async fn stored_generation(&self) -> redis::RedisResult<Option<String>> {
        let mut conn = self.conn();
        conn.get(self.active_key()).await
    }

    /// Makes `generation` the one everyone reads and writes, in one SET, and
    /// returns the one it replaced (whatever was active at that instant).
    pub(crate) async fn switch_generation(&self, generation: &str) -> redis::RedisResult<Option<String>> {
        let mut conn = self.conn();
        redis::cmd("SET")
            .arg(self.active_key())
            .arg(generation)
            .arg("GET")
            .query_async(&mut conn)
            .await
    }

    /// Takes the rebuild lock for `ttl` unless another rebuild holds it.
    pub(crate) async fn lock_rebuild(&self, owner: &str, ttl: Duration) -> redis::RedisResult<bool> {
        let mut conn = self.conn();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.rebuild_lock_key())
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await?;
        Ok(reply.is_some())
    }

    /// Releases the rebuild lock if `owner` still holds it.
    pub(crate) async fn unlock_rebuild(&self, owner: &str) -> redis::RedisResult<()> {
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        );
        let mut conn = self.conn();
        script
            .key(self.rebuild_lock_key())
            .arg(owner)
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    /// Deletes every key of generation `generation` (SCAN + UNLINK in batches) and
    /// returns how many there were.
    pub(crate) async fn delete_generation(&self, generation: &str) -> redis::RedisResult<u64> {
        self.delete_matching(&format!("{}:*", self.keys(generation).base))
            .await
    }

    async fn delete_matching(&self, pattern: &str) -> redis::RedisResult<u64> {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1_000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// The key names of one generation.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    base: String,
}

impl Keys {
    pub(crate) fn call(&self, call_id: Uuid) -> String {
        format!("{}:call:{call_id}", self.base)
    }

    pub(crate) fn versions(&self, call_id: Uuid) -> String {
        format!("{}:call:{call_id}:versions", self.base)
    }

    pub(crate) fn customer_calls(&self, customer_id: Uuid) -> String {
        format!("{}:customer:{customer_id}:calls", self.base)
    }

    pub(crate) fn customer_stats(&self, customer_id: &str) -> String {
        format!("{}:customer:{customer_id}:stats", self.base)
    }

    pub(crate) fn top_customers(&self) -> String {
        format!("{}:dash:customers", self.base)
    }

    pub(crate) fn bucket(&self, width: Width, name: &str) -> String {
        format!("{}:dash:{}:{name}", self.base, width.tag())
    }

    pub(crate) fn applied(&self, aggregate_type: &str, aggregate_id: Uuid) -> String {
        format!("{}:applied:{aggregate_type}:{aggregate_id}", self.base)
    }
}
