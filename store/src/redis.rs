//! The Redis store: two Lua scripts, each touching the keys of one team only
//! (`{team}` hash tag), so each runs atomically on one Redis Cluster slot.
//!
//! Money comparisons inside Lua use doubles, which are exact for integers up to
//! 2^53 nano-USD (about 9 million USD per counter); the counters themselves are
//! updated with `HINCRBY` on the decimal strings we pass, so they stay exact int64.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{Script, Value};

use crate::{Counters, LedgerEntry, ReserveOutcome, ReserveRequest, Result, Settlement, StoreError};
use tally_config::keys;
use tally_config::money::Nanos;

/// Releases the reservation `id` (if held): subtracts its amount from the
/// counters it was held on. Shared by both scripts.
const RELEASE_FN: &str = r#"
local function release(zset, data, id)
  local d = redis.call('HGET', data, id)
  if d then
    local amount = nil
    for part in string.gmatch(d, '[^|]+') do
      if not amount then amount = part else redis.call('HINCRBY', part, 'reserved', '-' .. amount) end
    end
    redis.call('HDEL', data, id)
  end
  redis.call('ZREM', zset, id)
end
local function digest(id)
  return (string.gsub(string.sub(redis.sha1hex(id), 1, 32), '..', function(x) return string.char(tonumber(x, 16)) end))
end
local function used(key)
  local v = redis.call('HMGET', key, 'spent', 'reserved')
  return (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
end
"#;

/// KEYS: resv zset, resv data, settled set of the call's minute, counter 1..n (team first)
/// ARGV: now ms, expiry ms, charge id, amount, tentative 0/1, then (limit or -1, enforce 0/1) per counter.
/// A tentative reservation is refused by any limit it would pass, and its refusal is not counted.
const RESERVE: &str = r#"
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  release(KEYS[1], KEYS[2], id)
end
if redis.call('SISMEMBER', KEYS[3], digest(ARGV[3])) == 1 or redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  return {'dup'}
end
local amount = tonumber(ARGV[4])
local tentative = ARGV[5] == '1'
local over = {}
for i = 4, #KEYS do
  local limit = tonumber(ARGV[6 + 2 * (i - 4)])
  local enforce = ARGV[7 + 2 * (i - 4)]
  if limit >= 0 then
    local u = used(KEYS[i])
    if u + amount > limit then
      if enforce == '1' or tentative then
        if not tentative then redis.call('HINCRBY', KEYS[4], 'blocked', 1) end
        return {'refused', tostring(i - 3), string.format('%d', limit - u)}
      end
      table.insert(over, tostring(i - 3))
    end
  end
end
local data = ARGV[4]
for i = 4, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[4])
  data = data .. '|' .. KEYS[i]
end
redis.call('HSET', KEYS[2], ARGV[3], data)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return {'ok', string.format('%d', used(KEYS[4])), table.concat(over, ',')}
"#;

/// KEYS: resv zset, resv data, settled set of the call's minute, ledger stream, counter 1..n (team first)
/// ARGV: charge id, cost, count request 0/1, settled ttl s, ledger max len, record json, team limit or -1,
/// the team counter's model-spend field or '', 1 if the call was denied by an allowlist else 0.
/// The record is stored with `teamBudgetRemainingNanos` as of right after this settlement.
/// Replies `ok` and every counter's spent + reserved after it, in KEYS order.
const SETTLE: &str = r#"
local done = digest(ARGV[1])
if redis.call('SISMEMBER', KEYS[3], done) == 1 then return {'dup'} end
-- Redis does not undo a script's writes when a later command fails: check every key's type
-- first, so a settlement is applied whole or (WRONGTYPE, before any write) not at all.
local kinds = {'zset', 'hash', 'set', 'stream'}
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= (kinds[i] or 'hash') then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t)
  end
end
-- First write: SADD is refused by a Redis at maxmemory, so a full Redis refuses the whole
-- settlement (it waits in the spool) instead of growing past maxmemory (after a first write,
-- such as release's ZREM, Redis lets a script finish whatever it uses).
redis.call('SADD', KEYS[3], done)
redis.call('EXPIRE', KEYS[3], ARGV[4])
unhold(KEYS[1], KEYS[2], ARGV[1])
for i = 5, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'spent', ARGV[2])
  if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[i], 'requests', 1) end
end
local team_used = 0
if #KEYS >= 5 then
  if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[8], ARGV[2]) end
  if ARGV[9] == '1' then redis.call('HINCRBY', KEYS[5], 'denied', 1) end
  team_used = used(KEYS[5])
end
local record = ARGV[6]
local limit = tonumber(ARGV[7])
if limit >= 0 then
  record = string.sub(record, 1, -2) .. ',"teamBudgetRemainingNanos":' .. string.format('%d', limit - team_used) .. '}'
end
redis.call('XADD', KEYS[4], '*', 'record', record)
trim_ledger(KEYS[4], tonumber(ARGV[5]))
local reply = {'ok'}
for i = 5, #KEYS do table.insert(reply, string.format('%d', used(KEYS[i]))) end
return reply
"#;

/// What SETTLE frees of the call's hold: its own reservation (`lease::UNHOLD_LEASES` takes
/// the cost out of the holder's leases instead).
const UNHOLD_CHARGE: &str = "local unhold = release\n";

/// KEYS: resv zset, resv data. ARGV: charge id, expiry ms.
/// Voids a reservation whose reply never arrived: releases it if it was held, and
/// leaves a zero-amount hold under its id until `expiry`, so a reserve still
/// queued behind it finds the id taken and holds nothing. Right in either order.
const VOID: &str = r#"
release(KEYS[1], KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], '0')
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"#;

/// KEYS: resv zset. ARGV: charge id, expiry ms.
/// Moves a live hold's expiry later (never earlier); a hold that is gone stays gone.
const REFRESH: &str = r#"
redis.call('ZADD', KEYS[1], 'XX', 'GT', ARGV[2], ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
return 0
"#;

mod connection;
mod lease;
mod ledger_trim;
mod settle;
pub use connection::Connection;
use ledger_trim::TRIM_LEDGER_FN;

pub struct RedisStore {
    conn: Connection,
    reserve: Script,
    settle: Script,
    void: Script,
    refresh: Script,
    /// How long a minute's settled set outlives its last member ([`crate::SETTLED_TTL`]).
    settled_ttl: Duration,
}

/// Tries at voiding a reservation whose reply was lost.
const VOID_ATTEMPTS: u32 = 5;

/// The Redis client's own response timeout: a backstop behind [`crate::DEADLINE`], which
/// callers see first and which decides when an operation counts as an outage.
pub const OP_TIMEOUT: Duration = Duration::from_millis(250);

impl RedisStore {
    /// Connects to `url` (`redis://`, `rediss://`); `cluster` uses Redis Cluster
    /// discovery from that seed node. Fails if the first connection fails.
    /// `ca_pem` (PEM) replaces the system roots for `rediss://` (a private CA, e.g. ElastiCache's).
    pub async fn connect(url: &str, cluster: bool, password: Option<&str>, ca_pem: Option<Vec<u8>>) -> Result<Self> {
        let tls = ca_pem.map(|pem| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
        // redis-rs leaves Nagle on: every command pipelined behind an unacknowledged one
        // would wait for Redis's delayed ACK (tens of ms at p99 under load).
        let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
        let conn = if cluster {
            let mut b = ClusterClientBuilder::new(vec![url.to_string()])
                .tcp_settings(tcp)
                .connection_timeout(Duration::from_secs(1))
                .response_timeout(OP_TIMEOUT);
            if let Some(p) = password {
                b = b.password(p);
            }
            if let Some(certs) = tls {
                b = b.certs(certs);
            }
            Connection::Cluster(b.build()?.get_async_connection().await?)
        } else {
            let mut info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url)?;
            info = info.set_tcp_settings(tcp);
            if let Some(p) = password {
                let settings = info.redis_settings().clone().set_password(p);
                info = info.set_redis_settings(settings);
            }
            let client = match tls {
                Some(certs) => redis::Client::build_with_tls(info, certs)?,
                None => redis::Client::open(info)?,
            };
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(OP_TIMEOUT))
                .set_number_of_retries(1);
            Connection::Single(ConnectionManager::new_with_config(client, cfg).await?)
        };
        Ok(RedisStore {
            conn,
            reserve: Script::new(&format!("{RELEASE_FN}{RESERVE}")),
            settle: Script::new(&format!("{RELEASE_FN}{TRIM_LEDGER_FN}{UNHOLD_CHARGE}{SETTLE}")),
            void: Script::new(&format!("{RELEASE_FN}{VOID}")),
            refresh: Script::new(REFRESH),
            settled_ttl: crate::SETTLED_TTL,
        })
    }

    pub async fn reserve(&self, r: &ReserveRequest) -> Result<ReserveOutcome> {
        let mut inv = self.reserve.prepare_invoke();
        inv.key(keys::reservations(&r.team))
            .key(keys::reservation_data(&r.team))
            .key(keys::settled(&r.team, minute_of_ms(r.now_ms)));
        for b in &r.budgets {
            inv.key(&b.key);
        }
        inv.arg(r.now_ms)
            .arg(r.now_ms + r.ttl.as_millis() as i64)
            .arg(&r.charge_id)
            .arg(r.amount.0)
            .arg(if r.tentative { "1" } else { "0" });
        for b in &r.budgets {
            inv.arg(b.limit.map_or(-1, |l| l.0))
                .arg(if b.enforce { "1" } else { "0" });
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => {
                let over_idx = reply.get(2).map(String::as_str).unwrap_or("");
                let over = over_idx
                    .split(',')
                    .filter_map(|i| i.parse::<usize>().ok())
                    .filter_map(|i| r.budgets.get(i - 1).map(|b| b.label.clone()))
                    .collect();
                Ok(ReserveOutcome::Reserved {
                    team_used: parse_nanos(reply.get(1))?,
                    over,
                })
            }
            Some("refused") => {
                let idx: usize = reply
                    .get(1)
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(|| protocol(&reply))?;
                let b = r.budgets.get(idx - 1).ok_or_else(|| protocol(&reply))?;
                Ok(ReserveOutcome::Refused {
                    label: b.label.clone(),
                    limit: b.limit.unwrap_or_default(),
                    remaining: parse_nanos(reply.get(2))?,
                })
            }
            Some("dup") => Ok(ReserveOutcome::Duplicate),
            _ => Err(protocol(&reply)),
        }
    }

    /// Voids the reservation `r` in the background after its reply was lost (a
    /// timeout: the script may have run, or may still run): nothing stays held for
    /// the TTL. Retried a few times while the store is unreachable.
    pub fn void_later(&self, r: &ReserveRequest) {
        let (mut conn, script) = (self.conn.clone(), self.void.clone());
        let (zset, data) = (keys::reservations(&r.team), keys::reservation_data(&r.team));
        let (id, expiry) = (r.charge_id.clone(), r.now_ms + r.ttl.as_millis() as i64);
        tokio::spawn(async move {
            for attempt in 0..VOID_ATTEMPTS {
                let mut inv = script.prepare_invoke();
                inv.key(&zset).key(&data).arg(&id).arg(expiry);
                match inv.invoke_async::<i64>(&mut conn).await {
                    Ok(_) => return,
                    Err(e) => tracing::warn!(charge_id = %id, attempt, error = %e, "voiding a timed-out reservation"),
                }
                tokio::time::sleep(OP_TIMEOUT * 2).await;
            }
        });
    }

    /// Keeps settled ids for `ttl` instead of [`crate::SETTLED_TTL`] (the soak benchmark
    /// shortens it to reach the steady state within minutes).
    pub fn with_settled_ttl(mut self, ttl: Duration) -> Self {
        self.settled_ttl = ttl;
        self
    }

    /// Moves the live hold `charge_id` of `team` to expire no sooner than `expiry_ms`;
    /// `false` if it is not held.
    pub async fn refresh(&self, team: &str, charge_id: &str, expiry_ms: i64) -> Result<bool> {
        let mut inv = self.refresh.prepare_invoke();
        inv.key(keys::reservations(team)).arg(charge_id).arg(expiry_ms);
        let held: i64 = inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(held > 0)
    }

    /// `XRANGE` from just after `after` (exclusive start, Redis ≥ 6.2): at most `limit` entries.
    pub async fn ledger_page(&self, team: &str, after: Option<&str>, limit: usize) -> Result<Vec<LedgerEntry>> {
        let start = match after {
            Some(id) if is_stream_id(id) => format!("({id}"),
            Some(id) => return Err(StoreError::Cursor(id.to_string())),
            None => "-".to_string(),
        };
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(keys::ledger(team))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?;
        let mut out = Vec::with_capacity(reply.ids.len());
        for entry in reply.ids {
            match entry.map.get("record") {
                Some(Value::BulkString(b)) => out.push(LedgerEntry {
                    json: String::from_utf8_lossy(b).into_owned(),
                    id: entry.id,
                }),
                _ => return Err(StoreError::Protocol(format!("ledger entry {} has no record", entry.id))),
            }
        }
        Ok(out)
    }

    pub async fn counters(&self, key: &str) -> Result<Counters> {
        let mut all = self.counters_of_team(std::slice::from_ref(&key.to_string())).await?;
        all.pop()
            .ok_or_else(|| StoreError::Protocol(format!("no reply for {key}")))
    }

    /// One pipeline of `HMGET`s; the keys share a team's hash tag, so a cluster sends it to one node.
    pub async fn counters_of_team(&self, keys: &[String]) -> Result<Vec<Counters>> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("HMGET")
                .arg(key)
                .arg(keys::field::SPENT)
                .arg(keys::field::RESERVED)
                .arg(keys::field::REQUESTS)
                .arg(keys::field::BLOCKED)
                .arg(keys::field::DENIED);
        }
        let replies: Vec<CounterFields> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(replies.into_iter().map(counters_from).collect())
    }

    /// Nano-USD spent per catalog model on the team counter `key` (its `m/<model>` fields).
    pub async fn model_spend(&self, key: &str) -> Result<Vec<(String, Nanos)>> {
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await?;
        let mut out = Vec::new();
        for (field, value) in all {
            if let Some(model) = field.strip_prefix(keys::field::MODEL_PREFIX) {
                out.push((model.to_string(), parse_nanos(Some(&value))?));
            }
        }
        Ok(out)
    }

    /// The connection itself, for a component with its own commands on Tally's keys (the
    /// ledger exporter's consumer group); it shares this store's timeouts and reconnection.
    pub fn connection(&self) -> Connection {
        self.conn.clone()
    }

    pub async fn ping(&self) -> Result<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn.clone()).await?;
        Ok(())
    }
}

const MINUTE_MS: i64 = 60_000;

fn minute_of_ms(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS)
}

/// The minute the settled call started in: the same for the live try and every replay
/// from the spool, and the same minute its reservation checked. The record's time is
/// the exchange's clock, which also gave the reservation its `now_ms`.
fn settlement_minute(s: &Settlement) -> i64 {
    s.record
        .time
        .parse::<jiff::Timestamp>()
        .map_or(0, |t| minute_of_ms(t.as_millisecond()))
}

/// `spent`, `reserved`, `requests`, `blocked`, `denied` as `HMGET` returns them (nil for a missing field).
type CounterFields = (Option<i64>, Option<i64>, Option<u64>, Option<u64>, Option<u64>);

fn counters_from((spent, reserved, requests, blocked, denied): CounterFields) -> Counters {
    Counters {
        spent: Nanos(spent.unwrap_or(0)),
        reserved: Nanos(reserved.unwrap_or(0)),
        requests: requests.unwrap_or(0),
        blocked: blocked.unwrap_or(0),
        denied: denied.unwrap_or(0),
    }
}

/// `<ms>` or `<ms>-<seq>`: the ids `XADD *` hands out.
fn is_stream_id(id: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    match id.split_once('-') {
        Some((ms, seq)) => digits(ms) && digits(seq),
        None => digits(id),
    }
}

fn parse_nanos(v: Option<&String>) -> Result<Nanos> {
    v.and_then(|s| s.parse::<i64>().ok())
        .map(Nanos)
        .ok_or_else(|| StoreError::Protocol(format!("expected an integer, got {v:?}")))
}

fn protocol(reply: &[String]) -> StoreError {
    StoreError::Protocol(format!("{reply:?}"))
}

#[cfg(test)]
mod tests {
    use super::is_stream_id;

    #[test]
    fn cursors_are_stream_ids_only() {
        for ok in ["1765000000000-0", "0-1", "42"] {
            assert!(is_stream_id(ok), "{ok}");
        }
        for bad in ["", "-", "+", "1-", "-1", "1-2-3", "(1-0", "1-0 COUNT 5", "abc"] {
            assert!(!is_stream_id(bad), "{bad}");
        }
    }
}
