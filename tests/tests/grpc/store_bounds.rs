//! What the Redis store keeps per call stays bounded: settled ids are 16-byte
//! members of per-team per-minute sets that expire an hour after their last member,
//! a refresh extends only a live hold, and a Redis at its `maxmemory` (noeviction)
//! is a store failure like any other: the call goes by the fail mode, the charge
//! waits in the spool and reaches Redis once it has room again.

use std::time::Duration;

use redis::AsyncCommands;
use tally_config::keys;
use tally_config::money::Nanos;
use tally_store::redis::RedisStore;
use tally_store::{Budget, ReserveOutcome, ReserveRequest, SETTLED_TTL, SettleOutcome, Settlement};
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::process::wait_until;
use tally_tests::fixtures::redis::RedisServer;

use crate::support::*;

/// 2026-12-06T10:20:00Z (the settlements' record time), and its minute.
const T0_MS: i64 = 1_796_552_400_000;
const MINUTE: i64 = T0_MS / 60_000;

fn reserve(charge_id: &str, amount: i64, now_ms: i64) -> ReserveRequest {
    ReserveRequest {
        team: "t".into(),
        charge_id: charge_id.into(),
        amount: Nanos(amount),
        budgets: vec![Budget {
            key: keys::counter("t", "2026-12", &keys::Scope::Team),
            label: "team".into(),
            limit: Some(Nanos(100)),
            enforce: true,
        }],
        now_ms,
        ttl: Duration::from_secs(1),
        tentative: false,
    }
}

pub(crate) fn settlement(charge_id: &str) -> Settlement {
    let record = serde_json::json!({
        "requestId": charge_id, "chargeId": charge_id, "time": "2026-12-06T10:20:00Z",
        "operation": "Converse", "modelId": "m", "model": "m", "region": "us-east-1", "team": "t",
        "inputTokens": 1, "outputTokens": 1, "cacheReadTokens": 0, "cacheWrite5mTokens": 0,
        "cacheWrite1hTokens": 0, "latencyMs": 1, "status": 200, "outcome": "ok",
        "costNanos": 1, "costUsd": "0.000000001", "priceSource": "test",
    });
    Settlement {
        team: "t".into(),
        charge_id: charge_id.into(),
        cost: Nanos(1),
        counters: vec![keys::counter("t", "2026-12", &keys::Scope::Team)],
        count_request: true,
        team_limit: None,
        record: serde_json::from_value(record).expect("a ledger record"),
    }
}

async fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::connect(&redis.url(), false, None, None)
        .await
        .expect("connect")
}

#[tokio::test]
async fn settled_ids_are_small_members_of_a_minute_set_that_expires() {
    let redis = RedisServer::start(false).await;
    let s = store(&redis).await;
    let mut conn = redis.connection().await;
    for id in ["inv-1/1/aaaa", "inv-2/1/bbbb"] {
        assert!(matches!(
            s.settle(&settlement(id), 100).await.unwrap(),
            SettleOutcome::Settled { .. }
        ));
    }
    // A replay is recognised, and a reservation under a settled id is a duplicate.
    assert_eq!(
        s.settle(&settlement("inv-1/1/aaaa"), 100).await.unwrap(),
        SettleOutcome::AlreadySettled
    );
    assert_eq!(
        s.reserve(&reserve("inv-2/1/bbbb", 1, T0_MS + 1)).await.unwrap(),
        ReserveOutcome::Duplicate
    );
    let done: Vec<String> = conn.keys("tally:{t}:done:*").await.unwrap();
    assert_eq!(
        done,
        vec![keys::settled("t", MINUTE)],
        "one set per team and minute, no key per call"
    );
    let members: Vec<Vec<u8>> = conn.smembers(&done[0]).await.unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m.len() == 16), "16-byte digests: {members:?}");
    let ttl: i64 = conn.ttl(&done[0]).await.unwrap();
    let most = SETTLED_TTL.as_secs() as i64;
    assert!(
        ttl > most - 10 && ttl <= most,
        "the minute's set expires {most} s after its last member, not {ttl}"
    );
}

#[tokio::test]
async fn a_refresh_extends_a_live_hold_and_never_revives_a_gone_one() {
    let redis = RedisServer::start(false).await;
    let s = store(&redis).await;
    let team = keys::counter("t", "2026-12", &keys::Scope::Team);
    assert!(matches!(
        s.reserve(&reserve("live", 60, T0_MS)).await.unwrap(),
        ReserveOutcome::Reserved { .. }
    ));
    assert!(s.refresh("t", "live", T0_MS + 10_000).await.unwrap());
    // Two seconds on (past the first expiry) the hold still counts: 60 + 60 > 100.
    assert!(matches!(
        s.reserve(&reserve("other", 60, T0_MS + 2_000)).await.unwrap(),
        ReserveOutcome::Refused { .. }
    ));
    // An earlier expiry never shortens it.
    assert!(s.refresh("t", "live", T0_MS + 1).await.unwrap());
    assert!(matches!(
        s.reserve(&reserve("other2", 60, T0_MS + 3_000)).await.unwrap(),
        ReserveOutcome::Refused { .. }
    ));
    s.settle(&settlement("live"), 100).await.unwrap();
    assert!(
        !s.refresh("t", "live", T0_MS + 20_000).await.unwrap(),
        "a settled hold is gone"
    );
    assert!(
        !s.refresh("t", "never", T0_MS + 20_000).await.unwrap(),
        "an unknown id holds nothing"
    );
    let mut conn = redis.connection().await;
    let held: i64 = conn.zcard(keys::reservations("t")).await.unwrap();
    assert_eq!(held, 0);
    assert_eq!(tally_tests::expect::hash_field(&mut conn, &team, "reserved").await, 0);
}

/// A connection to `redis`, which from now on is full: `maxmemory` 1 byte, `noeviction`.
async fn fill(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "noeviction", "maxmemory", "1"])
        .query_async(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn a_full_redis_is_a_store_failure_and_the_charge_waits_in_the_spool() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(Some("100")), &redis, FailMode::Open).await;
    let mut conn = fill(&redis).await;
    let responses = one_converse(&svc, "oom-1").await;
    assert!(
        responses.iter().all(|r| immediate(r).is_none()),
        "fail-open lets the call through"
    );
    assert_eq!(
        counter(&redis, "search", "requests").await,
        0,
        "a full Redis took no write"
    );
    assert_eq!(ledger(&redis, "search").await.len(), 0);
    let metrics = svc.metrics().await;
    let errors = tally_tests::expect::metric_sum(&metrics, "tally_store_errors_total", &[]);
    assert!(errors >= 2.0, "reserve and settle count as store errors:\n{metrics}");
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "0"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let replayed = wait_until(Duration::from_secs(10), || async {
        counter(&redis, "search", "requests").await == 1
    })
    .await;
    assert!(replayed, "the spooled charge reached Redis once it had room");
    assert_eq!(counter(&redis, "search", "spent").await, CONVERSE_COST_NANOS);
    assert_eq!(ledger(&redis, "search").await.len(), 1);
}

#[tokio::test]
async fn a_full_redis_under_fail_closed_refuses_the_call_as_unavailable() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(Some("100")), &redis, FailMode::Closed).await;
    fill(&redis).await;
    let responses = one_converse(&svc, "oom-closed").await;
    let refused = responses
        .iter()
        .find_map(immediate)
        .expect("fail-closed answers the call itself");
    assert_eq!(refused.status.as_ref().map(|s| s.code), Some(503), "a retryable 503");
    assert_eq!(counter(&redis, "search", "requests").await, 0, "nothing was charged");
}

/// A settlement that meets a key of the wrong type (a corrupted keyspace) is refused before
/// it writes anything — no settled mark without its charge — so once the key is repaired the
/// spool's retry charges it exactly once. (Redis keeps a script's writes up to a failing command.)
#[tokio::test]
async fn a_settlement_refused_half_way_writes_nothing() {
    let redis = RedisServer::start(false).await;
    let s = store(&redis).await;
    let mut conn = redis.connection().await;
    let team = keys::counter("t", "2026-12", &keys::Scope::Team);
    let _: () = conn.set(&team, "not a hash").await.unwrap();
    let refused = s.settle(&settlement("half"), 100).await.expect_err("WRONGTYPE");
    assert!(refused.to_string().contains("WRONGTYPE"), "{refused}");
    let marked: bool = conn.exists(keys::settled("t", MINUTE)).await.unwrap();
    let ledger: bool = conn.exists(keys::ledger("t")).await.unwrap();
    assert!(!marked && !ledger, "nothing written");
    let _: () = conn.del(&team).await.unwrap();
    assert!(matches!(
        s.settle(&settlement("half"), 100).await.unwrap(),
        SettleOutcome::Settled { .. }
    ));
    let spent: i64 = conn.hget(&team, "spent").await.unwrap();
    assert_eq!(spent, 1, "charged once");
}
