//! Budget leases in Redis (see [`crate::lease`]): LEASE grows, shrinks or keeps alive a
//! holder's leases on a team's counters in one atomic script, and SETTLE's leased variant
//! takes a call's cost out of its holder's leases instead of out of a reservation of its own.
//!
//! A lease is stored exactly like a reservation — `resv:data[<lease id>] = "<amount>|<counter>"`
//! and `resv[<lease id>] = <expiry ms>` — so RESERVE's and LEASE's sweep of expired entries
//! releases a dead holder's leases, and `reserved` always counts them.

use std::sync::LazyLock;

use redis::Script;

use super::{RELEASE_FN, RedisStore, SETTLE, TRIM_LEDGER_FN, parse_nanos, protocol};
use crate::Result;
use crate::lease::{Granted, LeaseOutcome, LeaseRequest};
use tally_config::keys;

/// KEYS: resv zset, resv data, team counter, counter 1..n.
/// ARGV: now ms, expiry ms, holder, tentative 0/1, then (limit or -1, need, want) per counter.
/// Refuses, changing nothing but the team's `blocked` (not for a tentative request), if any
/// counter cannot take its `need`. Else each lease grows by up to `want` (at least `need`,
/// within the limit), or shrinks by up to -`want` (never below zero), and lives until the
/// expiry. Replies `ok` and, per counter: the change, spent + reserved after it, and 1 if
/// there was no lease before.
const LEASE: &str = r#"
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  release(KEYS[1], KEYS[2], id)
end
local held = {}
for i = 4, #KEYS do
  local d = redis.call('HGET', KEYS[2], 'lease|' .. ARGV[3] .. '|' .. KEYS[i])
  held[i] = d and tonumber(string.match(d, '^(%-?%d+)')) or -1
  local j = 5 + 3 * (i - 4)
  local limit, need = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
  if limit >= 0 and need > 0 and used(KEYS[i]) + need > limit then
    if ARGV[4] ~= '1' then redis.call('HINCRBY', KEYS[3], 'blocked', 1) end
    return {'refused', tostring(i - 3), string.format('%d', limit - used(KEYS[i]))}
  end
end
local reply = {'ok'}
for i = 4, #KEYS do
  local id = 'lease|' .. ARGV[3] .. '|' .. KEYS[i]
  local j = 5 + 3 * (i - 4)
  local limit, need, want = tonumber(ARGV[j]), tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  local h = math.max(held[i], 0)
  local g
  if want >= 0 then
    g = want
    if limit >= 0 then g = math.min(want, math.max(limit - used(KEYS[i]), 0)) end
    g = math.max(g, need)
  else
    g = -math.min(-want, h)
  end
  if g ~= 0 then redis.call('HINCRBY', KEYS[i], 'reserved', string.format('%d', g)) end
  h = h + g
  if h > 0 then
    redis.call('HSET', KEYS[2], id, string.format('%d', h) .. '|' .. KEYS[i])
    redis.call('ZADD', KEYS[1], ARGV[2], id)
  else
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
  end
  table.insert(reply, string.format('%d', g))
  table.insert(reply, string.format('%d', used(KEYS[i])))
  table.insert(reply, held[i] < 0 and '1' or '0')
end
return reply
"#;

/// SETTLE's hold, for a call admitted against leases: its cost (ARGV 2) leaves each counter's
/// lease of the holder (ARGV 10) as it enters `spent` — at most what the lease still holds, so
/// `reserved` never goes negative and a lease that expired (or was returned) loses nothing.
const UNHOLD_LEASES: &str = r#"
local function unhold(zset, data, id)
  local cost = tonumber(ARGV[2])
  for i = 5, #KEYS do
    local lid = 'lease|' .. ARGV[10] .. '|' .. KEYS[i]
    local d = redis.call('HGET', data, lid)
    if d then
      local h = tonumber(string.match(d, '^(%-?%d+)'))
      local take = math.max(math.min(h, cost), 0)
      if take > 0 then
        redis.call('HINCRBY', KEYS[i], 'reserved', string.format('%d', -take))
        redis.call('HSET', data, lid, string.format('%d', h - take) .. '|' .. KEYS[i])
      end
    end
  end
end
"#;

static LEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{RELEASE_FN}{LEASE}")));
pub(super) static SETTLE_LEASED: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{RELEASE_FN}{TRIM_LEDGER_FN}{UNHOLD_LEASES}{SETTLE}")));

impl RedisStore {
    /// Runs one [`LeaseRequest`] atomically.
    pub async fn lease(&self, r: &LeaseRequest) -> Result<LeaseOutcome> {
        let mut inv = LEASE_SCRIPT.prepare_invoke();
        inv.key(keys::reservations(&r.team))
            .key(keys::reservation_data(&r.team))
            .key(&r.team_counter);
        for a in &r.asks {
            inv.key(&a.key);
        }
        inv.arg(r.now_ms)
            .arg(
                r.now_ms
                    .saturating_add(i64::try_from(r.ttl.as_millis()).unwrap_or(i64::MAX)),
            )
            .arg(&r.holder)
            .arg(if r.tentative { "1" } else { "0" });
        for a in &r.asks {
            inv.arg(a.limit.map_or(-1, |l| l.0)).arg(a.need.0).arg(a.want.0);
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        match reply.first().map(String::as_str) {
            Some("ok") if reply.len() == 1 + 3 * r.asks.len() => {
                let grants = reply[1..].chunks(3).map(|g| {
                    Ok(Granted {
                        delta: parse_nanos(g.first())?,
                        used: parse_nanos(g.get(1))?,
                        fresh: g.get(2).is_some_and(|f| f == "1"),
                    })
                });
                Ok(LeaseOutcome::Granted(grants.collect::<Result<_>>()?))
            }
            Some("refused") => {
                let index = reply
                    .get(1)
                    .and_then(|i| i.parse::<usize>().ok())
                    .filter(|i| (1..=r.asks.len()).contains(i))
                    .ok_or_else(|| protocol(&reply))?;
                Ok(LeaseOutcome::Refused {
                    index: index - 1,
                    remaining: parse_nanos(reply.get(2))?,
                })
            }
            _ => Err(protocol(&reply)),
        }
    }
}
