//! Budget leases (`--budget-leases on`, issue #19) keep the no-overspend property across
//! replicas: three `tally-extproc` processes sharing one Redis admit exactly the calls a
//! budget covers; most calls no longer run a Redis script to be admitted; a SIGKILLed
//! replica's leases come back after their TTL, and a stopped one returns them at once;
//! near the limit a settled call's unused worst case is at once free for another replica.
//! With write-behind settlement (`--settle-behind-ms`) the same three replicas hold the
//! same line.

use std::time::Duration;

use redis::AsyncCommands;
use tally_config::keys;
use tally_config::money::Nanos;
use tally_tests::fixtures::extproc::{ExtProc, ExtProcOptions};
use tally_tests::fixtures::extproc_service::{ExtProcClient, ExtProcService, OpenExchange};
use tally_tests::fixtures::process::wait_until;
use tally_tests::fixtures::redis::RedisServer;

use crate::support::*;

const BODY: &[u8] = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1000,"messages":[]}"#;
/// Above Haiku's worst case for [`BODY`] (its input bounded by fewer tokens than the body
/// has bytes, at 1 USD/1M, the dearest input class, plus 1000 output tokens at 4 USD/1M),
/// and below two of them: a budget of k of these covers exactly k calls.
const WORST: i64 = BODY.len() as i64 * 1000 + 1000 * 4000;
/// The output part of the worst case alone: 1000 tokens at 4 USD/1M.
const OUTPUT_BOUND: i64 = 1000 * 4000;
/// What [`HAIKU_TOKEN_HEADERS`] cost: 1000 × 0.8 + 100 × 4 USD/1M.
const SETTLED: i64 = 1_200_000;
/// Leases on, living two seconds past their holder's last renewal.
const LEASES: [&str; 4] = ["--budget-leases", "on", "--budget-lease-ttl-seconds", "2"];
const TEAM: &str = "search";

fn options(redis: &RedisServer, limit: Nanos, leases: bool) -> ExtProcOptions {
    let mut opts = ExtProcOptions::new(config(Some(&limit.to_string())), Some(redis.url()));
    if leases {
        opts.extra_args = LEASES.iter().map(|f| f.to_string()).collect();
    }
    opts
}

/// Sends a Haiku invoke's headers and body on `call`: `true` if admitted, `false` if refused
/// on the budget (anything else fails the test).
async fn admit(call: &mut OpenExchange, id: &str) -> bool {
    let headers = [("x-team-id", TEAM), ("amz-sdk-invocation-id", id)];
    call.send(req_headers(&model_path(HAIKU, "invoke"), &headers, false))
        .await;
    let resp = call.send(req_body(BODY)).await;
    match refusal_status(&resp) {
        None => true,
        Some(400) => false,
        Some(other) => panic!("call {id} answered {other}, not admitted or refused on the budget"),
    }
}

/// One whole call on `call`: admitted, then settled from the token-count headers.
async fn settle(mut call: OpenExchange) {
    call.send(resp_headers(200, &HAIKU_TOKEN_HEADERS)).await;
    call.finish().await;
}

/// The leases held in Redis: (lease id, amount) of every `lease|…` reservation of the team.
async fn leases_held(redis: &RedisServer) -> Vec<(String, i64)> {
    let all: Vec<(String, String)> = redis
        .connection()
        .await
        .hgetall(keys::reservation_data(TEAM))
        .await
        .expect("HGETALL resv:data");
    all.into_iter()
        .filter(|(id, _)| id.starts_with("lease|"))
        .map(|(id, data)| {
            let amount = data
                .split('|')
                .next()
                .and_then(|a| a.parse().ok())
                .expect("amount|counter");
            (id, amount)
        })
        .collect()
}

/// Every script run (EVAL and EVALSHA) Redis has served so far.
async fn script_runs(redis: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut redis.connection().await)
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter(|l| l.starts_with("cmdstat_eval:") || l.starts_with("cmdstat_evalsha:"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn three_replicas_with_leases_admit_exactly_the_calls_a_budget_covers() {
    three_replicas_admit_exactly_the_calls_a_budget_covers(&LEASES).await;
}

/// Write-behind settlement (`--settle-behind-ms`) holds the same line, with leases and without.
#[tokio::test]
async fn three_replicas_writing_settlements_behind_admit_exactly_the_calls_a_budget_covers() {
    let behind = ["--settle-behind-ms", "20"];
    three_replicas_admit_exactly_the_calls_a_budget_covers(&[&LEASES[..], &behind].concat()).await;
    three_replicas_admit_exactly_the_calls_a_budget_covers(&behind).await;
}

/// Three `tally-extproc` processes with `flags` on one Redis, 30 concurrent callers, a budget
/// of exactly 10 worst cases: 10 admitted and charged, 20 refused, nothing left held.
async fn three_replicas_admit_exactly_the_calls_a_budget_covers(flags: &[&str]) {
    const K: usize = 10;
    const CALLERS: usize = 30;
    let redis = RedisServer::start(false).await;
    let limit = Nanos(K as i64 * WORST);
    let replicas = futures::future::join_all((0..3).map(|_| {
        let mut opts = options(&redis, limit, false);
        opts.extra_args = flags.iter().map(|f| f.to_string()).collect();
        ExtProc::start(opts)
    }))
    .await;
    let clients = futures::future::join_all(replicas.iter().map(|r| ExtProcClient::connect(r.grpc_port()))).await;
    // Every caller opens its call at once and keeps it open: admission alone decides.
    let calls = futures::future::join_all((0..CALLERS).map(|i| {
        let client = clients[i % clients.len()].clone();
        async move {
            let mut call = client.open().await;
            let admitted = admit(&mut call, &format!("caller-{i}")).await;
            (admitted, call)
        }
    }))
    .await;
    let admitted: Vec<OpenExchange> = calls.into_iter().filter(|(a, _)| *a).map(|(_, c)| c).collect();
    assert_eq!(
        admitted.len(),
        K,
        "a budget of {K} worst cases admitted {} calls",
        admitted.len()
    );
    let (reserved, held) = (counter(&redis, TEAM, "reserved").await, leases_held(&redis).await);
    assert!(
        reserved >= K as i64 * OUTPUT_BOUND && reserved <= limit.0,
        "Redis holds {reserved} for {K} calls in flight, under a limit of {limit}: {held:?}"
    );
    if flags.contains(&"--budget-leases") {
        assert_eq!(
            reserved,
            held.iter().map(|(_, a)| a).sum::<i64>(),
            "reserved is the leases"
        );
    }
    futures::future::join_all(admitted.into_iter().map(settle)).await;
    let charged = wait_until(Duration::from_secs(5), || async {
        counter(&redis, TEAM, "requests").await == K as i64
    })
    .await;
    assert!(
        charged,
        "{} of {K} calls charged",
        counter(&redis, TEAM, "requests").await
    );
    assert_eq!(counter(&redis, TEAM, "spent").await, K as i64 * SETTLED);
    assert_eq!(counter(&redis, TEAM, "requests").await, K as i64);
    assert_eq!(counter(&redis, TEAM, "blocked").await, (CALLERS - K) as i64);
    let records = ledger(&redis, TEAM).await;
    let outcomes = |o: &str| records.iter().filter(|r| r["outcome"] == o).count();
    assert_eq!((outcomes("ok"), outcomes("blocked")), (K, CALLERS - K), "{records:?}");
    // What the leases still hold beyond the settled costs goes back: nothing stays reserved.
    let released = wait_until(Duration::from_secs(20), || async {
        counter(&redis, TEAM, "reserved").await == 0
    })
    .await;
    assert!(released, "still held: {:?}", leases_held(&redis).await);
}

#[tokio::test]
async fn with_leases_most_calls_are_admitted_without_a_redis_script() {
    const CALLS: u64 = 40;
    let redis = RedisServer::start(false).await;
    let limit = Nanos::parse_usd("100").unwrap();
    let mut runs = vec![];
    for leases in [false, true] {
        let svc = ExtProcService::start(&options(&redis, limit, leases)).await;
        let before = script_runs(&redis).await;
        for i in 0..CALLS {
            let mut call = svc.open().await;
            assert!(
                admit(&mut call, &format!("{leases}-{i}")).await,
                "refused under 100 USD"
            );
            settle(call).await;
        }
        runs.push(script_runs(&redis).await - before);
        svc.stop().await;
    }
    // Per call: RESERVE and SETTLE without leases; SETTLE and a few LEASE runs with them.
    assert!(runs[0] >= 2 * CALLS, "without leases: {} script runs", runs[0]);
    assert!(
        runs[1] <= CALLS + CALLS / 4,
        "with leases: {} script runs for {CALLS} calls (without: {})",
        runs[1],
        runs[0]
    );
    assert_eq!(counter(&redis, TEAM, "spent").await, 2 * CALLS as i64 * SETTLED);
}

#[tokio::test]
async fn a_killed_replicas_lease_comes_back_after_its_ttl() {
    let redis = RedisServer::start(false).await;
    let limit = Nanos::parse_usd("100").unwrap();
    let mut doomed = ExtProc::start(options(&redis, limit, true)).await;
    let survivor = ExtProc::start(options(&redis, limit, true)).await;
    for (i, r) in [&doomed, &survivor].into_iter().enumerate() {
        let mut call = ExtProcClient::connect(r.grpc_port()).await.open().await;
        assert!(admit(&mut call, &format!("before-{i}")).await);
        settle(call).await;
    }
    let held = leases_held(&redis).await;
    assert_eq!(
        held.len(),
        2,
        "each replica holds a lease on the team counter: {held:?}"
    );
    assert!(held.iter().all(|(_, amount)| *amount > WORST), "{held:?}");
    let dead = format!("-{}-", doomed.pid().expect("a running replica"));
    doomed.kill();
    // The survivor's upkeep sweeps expired reservations: the dead replica's lease goes, and
    // `reserved` is what the survivor holds (its own idle lease it returns once unused).
    let swept = wait_until(Duration::from_secs(20), || async {
        let held = leases_held(&redis).await;
        let live: i64 = held.iter().map(|(_, a)| a).sum();
        !held.iter().any(|(id, _)| id.contains(&dead)) && counter(&redis, TEAM, "reserved").await == live
    })
    .await;
    assert!(
        swept,
        "after the TTL: {:?}, reserved {}",
        leases_held(&redis).await,
        counter(&redis, TEAM, "reserved").await
    );
    assert_eq!(counter(&redis, TEAM, "spent").await, 2 * SETTLED);
}

#[tokio::test]
async fn a_stopped_replica_returns_its_leases() {
    let redis = RedisServer::start(false).await;
    let svc = ExtProcService::start(&options(&redis, Nanos::parse_usd("100").unwrap(), true)).await;
    let mut call = svc.open().await;
    assert!(admit(&mut call, "one").await);
    settle(call).await;
    assert_eq!(leases_held(&redis).await.len(), 1);
    assert!(
        counter(&redis, TEAM, "reserved").await > 0,
        "the lease is held in Redis"
    );
    svc.stop().await;
    assert_eq!(leases_held(&redis).await, vec![], "leases left behind at shutdown");
    assert_eq!(counter(&redis, TEAM, "reserved").await, 0);
    assert_eq!(counter(&redis, TEAM, "spent").await, SETTLED);
}

/// Near the limit each call leases only its own worst case, and what a settled call did not
/// use goes back to Redis at once — not at the next upkeep (10 s with a 30 s TTL) — so
/// another replica can admit a call on it straight away: budget usability as with per-call
/// reservations.
#[tokio::test]
async fn near_the_limit_what_a_call_did_not_use_is_at_once_another_replicas() {
    let redis = RedisServer::start(false).await;
    // Two calls in flight plus one settled call's cost (WORST is a little above the real
    // worst case): a third call fits only once the first one's unused worst case is back.
    let limit = Nanos(2 * WORST + SETTLED);
    let opts = || {
        let mut o = options(&redis, limit, true);
        o.extra_args = ["--budget-leases", "on", "--budget-lease-ttl-seconds", "30"]
            .iter()
            .map(|f| f.to_string())
            .collect();
        o
    };
    let (a, b) = tokio::join!(ExtProc::start(opts()), ExtProc::start(opts()));
    let (ca, cb) = tokio::join!(
        ExtProcClient::connect(a.grpc_port()),
        ExtProcClient::connect(b.grpc_port())
    );
    let mut first = ca.open().await;
    assert!(admit(&mut first, "first").await);
    let mut second = cb.open().await;
    assert!(admit(&mut second, "second").await);
    settle(first).await;
    // Only the second call's lease is left, holding its worst case.
    let back = wait_until(Duration::from_secs(3), || async {
        let held = leases_held(&redis).await;
        held.len() == 1 && counter(&redis, TEAM, "reserved").await == held[0].1
    })
    .await;
    assert!(
        back,
        "the first call's unused worst case is still held: reserved {} by leases {:?}",
        counter(&redis, TEAM, "reserved").await,
        leases_held(&redis).await
    );
    let mut third = cb.open().await;
    assert!(
        admit(&mut third, "third").await,
        "the other replica could not use the returned headroom"
    );
    settle(second).await;
    settle(third).await;
    assert_eq!(counter(&redis, TEAM, "spent").await, 3 * SETTLED);
}
