//! Soak: many settled calls straight through the store API — the memory store in
//! this process, the Redis store against a real redis-server — with memory and CPU
//! per call sampled as they accumulate. Bounded stores show flat lines: memory
//! levels off once the settled-id window and the ledger caps are full, and the CPU
//! a call costs does not grow with the calls before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};
use tally_config::keys::{self, Scope};
use tally_config::ledger::LedgerRecord;
use tally_config::money::Nanos;
use tally_store::memory::MemoryStore;
use tally_store::redis::RedisStore;
use tally_store::{Budget, ReserveRequest, Settlement};
use tally_tests::fixtures::redis::RedisServer;

use crate::Args;
use crate::procs::{rss_kib_of, self_cpu_seconds};

/// Teams the calls spread over (each with its own ledger and settled sets).
const TEAMS: u64 = 20;
/// A hold lasts the default reservation TTL; every call settles long before.
const TTL: Duration = Duration::from_secs(3660);

/// One sample: the state after `calls` settled calls, and the cost of the calls since the last one.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub calls: u64,
    pub seconds: f64,
    /// This process's RSS (memory store) or Redis's `used_memory` (Redis store), MiB.
    pub memory_mib: f64,
    /// CPU per call since the previous sample (this process, or redis-server), microseconds.
    pub cpu_us_per_call: f64,
    /// Settled ids remembered (memory store) or keys in Redis.
    pub entries: u64,
}

fn reserve(i: u64, now_ms: i64) -> ReserveRequest {
    let team = format!("soak{}", i % TEAMS);
    let budget = |scope: Scope, label: &str| Budget {
        key: keys::counter(&team, "2026-12", &scope),
        label: label.into(),
        limit: Some(Nanos(i64::MAX / 4)),
        enforce: true,
    };
    ReserveRequest {
        charge_id: charge_id(i),
        amount: Nanos(2_000_000),
        budgets: vec![
            budget(Scope::Team, "team"),
            budget(Scope::Workflow("rag".into()), "workflow"),
        ],
        now_ms,
        ttl: TTL,
        tentative: false,
        team,
    }
}

/// Shaped like the ext_proc's: the client's invocation id, the attempt and a uuid.
fn charge_id(i: u64) -> String {
    format!("{:08x}-soak-4c1e-9d0b-{i:012x}/1/{}", i, uuid::Uuid::new_v4())
}

fn settlement(r: &ReserveRequest, time: &str) -> Settlement {
    let record = json!({
        "requestId": r.charge_id, "chargeId": r.charge_id, "time": time,
        "operation": "Converse", "modelId": "anthropic.claude-3-5-haiku-20241022-v1:0",
        "model": "anthropic.claude-3-5-haiku-20241022-v1:0", "region": "us-east-1", "team": r.team,
        "workflow": "rag", "inputTokens": 1000, "outputTokens": 100, "cacheReadTokens": 0,
        "cacheWrite5mTokens": 0, "cacheWrite1hTokens": 0, "latencyMs": 420, "status": 200, "outcome": "ok",
        "costNanos": 1_200_000, "costUsd": "0.0012", "priceSource": "AWS Bedrock on-demand list price",
    });
    Settlement {
        team: r.team.clone(),
        charge_id: r.charge_id.clone(),
        cost: Nanos(1_200_000),
        counters: r.budgets.iter().map(|b| b.key.clone()).collect(),
        count_request: true,
        team_limit: r.budgets[0].limit,
        record: serde_json::from_value::<LedgerRecord>(record).expect("a ledger record"),
    }
}

fn now() -> (i64, String) {
    let t = jiff::Timestamp::now();
    (t.as_millisecond(), t.to_string())
}

/// `calls` reserve + settle pairs against the memory store, sampled `samples` times.
pub fn memory(calls: u64, samples: u64, ledger_max_len: u64) -> Vec<Sample> {
    let store = MemoryStore::new();
    let every = (calls / samples.max(1)).max(1);
    let (start, mut last_cpu) = (Instant::now(), self_cpu_seconds());
    let mut out = Vec::new();
    for i in 0..calls {
        let (now_ms, time) = now();
        let r = reserve(i, now_ms);
        store.reserve(&r);
        store.settle(&settlement(&r, &time), ledger_max_len);
        if (i + 1) % every == 0 {
            let cpu = self_cpu_seconds();
            out.push(Sample {
                calls: i + 1,
                seconds: start.elapsed().as_secs_f64(),
                memory_mib: rss_kib_of(std::process::id()) as f64 / 1024.0,
                cpu_us_per_call: (cpu - last_cpu) * 1e6 / every as f64,
                entries: store.sizes().1 as u64,
            });
            last_cpu = cpu;
        }
    }
    out
}

/// `used_memory`, `used_cpu_user + used_cpu_sys` and the key count of a Redis.
async fn redis_state(conn: &mut redis::aio::MultiplexedConnection) -> Result<(f64, f64, u64)> {
    let info: String = redis::cmd("INFO").arg("ALL").query_async(conn).await?;
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let keys: u64 = redis::cmd("DBSIZE").query_async(conn).await?;
    Ok((
        field("used_memory"),
        field("used_cpu_user") + field("used_cpu_sys"),
        keys,
    ))
}

/// Runs `calls` reserve + settle pairs through `workers` concurrent tasks.
fn drive(store: Arc<RedisStore>, calls: u64, workers: u64, ledger_max_len: u64) -> Arc<AtomicU64> {
    let (next, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    for _ in 0..workers {
        let (store, next, done) = (store.clone(), next.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    return;
                }
                let (now_ms, time) = now();
                let r = reserve(i, now_ms);
                if store.reserve(&r).await.is_ok() {
                    let _ = store.settle(&settlement(&r, &time), ledger_max_len).await;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    done
}

/// `calls` reserve + settle pairs against a real redis-server, settled ids kept `settled_ttl`.
pub async fn redis(args: &SoakArgs, settled_ttl: Duration) -> Result<Vec<Sample>> {
    let server = RedisServer::start(false).await;
    let store = RedisStore::connect(&server.url(), false, None, None)
        .await
        .context("connect to the soak's redis-server")?
        .with_settled_ttl(settled_ttl);
    let mut conn = server.connection().await;
    let done = drive(Arc::new(store), args.calls, args.workers, args.ledger_max_len);
    let every = (args.calls / args.samples.max(1)).max(1);
    let start = Instant::now();
    let (mut last_cpu, mut last_calls, mut out) = (redis_state(&mut conn).await?.1, 0, Vec::new());
    while last_calls < args.calls {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let calls = done.load(Ordering::Relaxed);
        if calls < last_calls + every && calls < args.calls {
            continue;
        }
        let (used, cpu, keys) = redis_state(&mut conn).await?;
        out.push(Sample {
            calls,
            seconds: start.elapsed().as_secs_f64(),
            memory_mib: used / (1024.0 * 1024.0),
            cpu_us_per_call: (cpu - last_cpu) * 1e6 / (calls - last_calls).max(1) as f64,
            entries: keys,
        });
        (last_cpu, last_calls) = (cpu, calls);
    }
    Ok(out)
}

/// Bytes a settled id costs in Redis, measured on a fresh redis-server: `n` markers
/// written as the old layout (one `SET … EX` key per call) and as the new one (a
/// 16-byte member of a per-team per-minute set), `used_memory` before and after.
pub async fn marker_bytes(n: u64) -> Result<(f64, f64)> {
    let server = RedisServer::start(false).await;
    let mut conn = server.connection().await;
    let mut per_call = [0.0; 2];
    for (slot, old_layout) in [(0, true), (1, false)] {
        let before = redis_state(&mut conn).await?.0;
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let mut pipe = redis::pipe();
            for &i in chunk {
                let id = charge_id(i);
                let team = format!("soak{}", i % TEAMS);
                if old_layout {
                    pipe.cmd("SET")
                        .arg(format!("tally:{{{team}}}:done:{id}"))
                        .arg("1")
                        .arg("EX")
                        .arg(604_800);
                } else {
                    let digest = uuid::Uuid::new_v4().into_bytes();
                    pipe.cmd("SADD").arg(keys::settled(&team, 29_460_000)).arg(&digest[..]);
                }
            }
            let _: () = pipe.query_async(&mut conn).await?;
        }
        per_call[slot] = (redis_state(&mut conn).await?.0 - before) / n as f64;
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    }
    Ok((per_call[0], per_call[1]))
}

/// The soak's settings.
#[derive(Debug, Clone, Serialize)]
pub struct SoakArgs {
    pub calls: u64,
    pub redis_calls: u64,
    pub samples: u64,
    pub workers: u64,
    pub ledger_max_len: u64,
    pub settled_ttl_seconds: u64,
}

fn print(title: &str, samples: &[Sample]) {
    eprintln!("\n{title}");
    eprintln!(
        "{:>10} {:>9} {:>12} {:>14} {:>10}",
        "calls", "seconds", "memory MiB", "CPU µs/call", "entries"
    );
    for s in samples {
        eprintln!(
            "{:>10} {:>9.1} {:>12.1} {:>14.1} {:>10}",
            s.calls, s.seconds, s.memory_mib, s.cpu_us_per_call, s.entries
        );
    }
}

pub async fn phase(args: &Args) -> Result<Value> {
    let soak = args.soak();
    let (old_bytes, new_bytes) = marker_bytes(200_000).await?;
    eprintln!(
        "settled marker in Redis: {old_bytes:.0} B/call as one key per call, {new_bytes:.0} B/call in per-minute sets"
    );
    let mem = memory(soak.calls, soak.samples, soak.ledger_max_len);
    print("memory store (this process's RSS)", &mem);
    let ttl = Duration::from_secs(soak.settled_ttl_seconds);
    let mut redis_args = soak.clone();
    redis_args.calls = soak.redis_calls;
    let red = redis(&redis_args, ttl).await?;
    print("redis store (used_memory; CPU of redis-server)", &red);
    Ok(json!({
        "settings": soak,
        "settled_marker_bytes": {"one_key_per_call": old_bytes, "minute_sets": new_bytes},
        "memory_store": mem,
        "redis_store": red,
    }))
}
