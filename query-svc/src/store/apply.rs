//! Applying a [`Projection`] in one Lua script: the dedupe check, the view
//! (replaced only by a strictly newer version), every version's history, the
//! customer's index, the dashboard counters and the change notification
//! happen together or not at all.

use std::sync::LazyLock;

use prost::Message as _;

use super::{Keys, Store};
use crate::domain::{Projection, counters::Width};

/// KEYS: 1 active-generation key, 2 applied set, 3 view hash, 4 versions
/// zset, 5 customer's calls zset, 6 hour bucket, 7 day bucket, 8 customer
/// stats hash, 9 top-customers zset.
///
/// ARGV: 1 expected generation ('' skips the check), 2 dedupe member,
/// 3 channel ('' publishes nothing), 4 has view, 5 version, 6 encoded view,
/// 7 call id, 8 requested-at ms, 9 status (the enum's proto name,
/// `CALL_STATUS_ACCEPTED`: Redis's one spelling of it), 10 customer id, 11 driver id,
/// 12 counts a customer call, 13 that call's requested-at ms, 14 the
/// notification's trace context (`' ' .. traceparent`, or ''), 15 number of
/// counter increments, then field/amount pairs.
///
/// Returns -1 when the generation is no longer active, 0 for an event already
/// applied, 1 when applied now.
const APPLY_LUA: &str = r"
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then
  return 0
end
if ARGV[4] == '1' then
  local version = tonumber(ARGV[5])
  if #redis.call('ZRANGEBYSCORE', KEYS[4], version, version, 'LIMIT', 0, 1) == 0 then
    redis.call('ZADD', KEYS[4], version, ARGV[6])
  end
  local current = tonumber(redis.call('HGET', KEYS[3], 'version') or '0')
  if version > current then
    redis.call('HSET', KEYS[3], 'version', ARGV[5], 'view', ARGV[6], 'status', ARGV[9],
      'customer_id', ARGV[10], 'driver_id', ARGV[11])
  end
  redis.call('ZADD', KEYS[5], ARGV[8], ARGV[7])
  if ARGV[3] ~= '' then
    redis.call('PUBLISH', ARGV[3], ARGV[7] .. ' ' .. ARGV[5] .. ARGV[14])
  end
end
if ARGV[12] == '1' then
  redis.call('HINCRBY', KEYS[8], 'calls', 1)
  local latest = redis.call('HGET', KEYS[8], 'latest_ms')
  if not latest or tonumber(ARGV[13]) > tonumber(latest) then
    redis.call('HSET', KEYS[8], 'latest_ms', ARGV[13])
  end
  redis.call('ZINCRBY', KEYS[9], 1, ARGV[10])
end
local n = tonumber(ARGV[15])
for i = 0, n - 1 do
  local field = ARGV[16 + 2 * i]
  local amount = ARGV[17 + 2 * i]
  redis.call('HINCRBY', KEYS[6], field, amount)
  redis.call('HINCRBY', KEYS[7], field, amount)
end
return 1
";

static APPLY: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(APPLY_LUA));

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Written now.
    Fresh,
    /// Already applied before: nothing changed.
    Duplicate,
    /// The generation is no longer the active one: nothing changed.
    StaleGeneration,
}

/// How a write is checked and announced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) generation: &'a str,
    /// Refuse the write unless `generation` is the active one (the live
    /// projector); a rebuild writes a generation before it is active.
    pub(crate) require_active: bool,
    /// Announce view changes on the changes channel.
    pub(crate) notify: bool,
}

impl Store {
    /// Applies `projection` to the target generation atomically.
    pub(crate) async fn apply(&self, target: Target<'_>, p: &Projection) -> redis::RedisResult<Applied> {
        let keys = self.keys(target.generation);
        let invocation = self.invocation(&keys, target, p);
        let mut conn = self.conn();
        let outcome: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(match outcome {
            1 => Applied::Fresh,
            0 => Applied::Duplicate,
            _ => Applied::StaleGeneration,
        })
    }

    fn invocation(
        &self,
        keys: &Keys,
        target: Target<'_>,
        p: &Projection,
    ) -> redis::ScriptInvocation<'static> {
        let mut inv = APPLY.prepare_invoke();
        // Events without a view or customer still pass real key names so the
        // key list is the same shape for every event; the script leaves them alone.
        let customer = p
            .view
            .as_ref()
            .map(|v| v.customer_id)
            .or(p.customer_call.as_ref().map(|c| c.customer_id));
        let customer_key = customer.map_or_else(|| "-".to_owned(), |c| c.to_string());
        let at = p.counters.as_ref().map(|c| c.at);
        let bucket = |width: Width| at.map_or_else(|| "-".to_owned(), |at| width.name(at));
        inv.key(self.active_key())
            .key(keys.applied(&p.aggregate_type, p.aggregate_id))
            .key(keys.call(p.aggregate_id))
            .key(keys.versions(p.aggregate_id))
            .key(customer.map_or_else(|| keys.customer_stats("-"), |c| keys.customer_calls(c)))
            .key(keys.bucket(Width::Hour, &bucket(Width::Hour)))
            .key(keys.bucket(Width::Day, &bucket(Width::Day)))
            .key(keys.customer_stats(&customer_key))
            .key(keys.top_customers());

        inv.arg(if target.require_active {
            target.generation
        } else {
            ""
        })
        .arg(&p.dedupe_member)
        .arg(if target.notify {
            self.changes_channel()
        } else {
            String::new()
        });
        match &p.view {
            Some(update) => {
                inv.arg("1")
                    .arg(update.view.version)
                    .arg(update.view.encode_to_vec())
                    .arg(update.call_id.to_string())
                    .arg(update.requested_at.timestamp_millis())
                    .arg(update.view.status().as_str_name())
                    .arg(update.customer_id.to_string())
                    .arg(&update.view.driver_id);
            }
            None => {
                inv.arg("0")
                    .arg(0)
                    .arg("")
                    .arg("")
                    .arg(0)
                    .arg("")
                    .arg(customer_key.as_str())
                    .arg("");
            }
        }
        match &p.customer_call {
            Some(call) => inv.arg("1").arg(call.requested_at.timestamp_millis()),
            None => inv.arg("0").arg(0),
        };
        // Watchers woken by the notification continue the projection's trace.
        let traceparent = target
            .notify
            .then(svc_kit::telemetry::trace::current_traceparent)
            .flatten();
        inv.arg(traceparent.map_or_else(String::new, |traceparent| format!(" {traceparent}")));
        let increments = p
            .counters
            .as_ref()
            .map(|c| c.increments.as_slice())
            .unwrap_or_default();
        inv.arg(increments.len());
        for (field, amount) in increments {
            inv.arg(field).arg(*amount);
        }
        inv
    }
}
