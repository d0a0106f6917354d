//! Write-behind settlement (`--settle-behind-ms`, issue #19): a finished call's response
//! goes back before its settlement reaches Redis; the queue reaches Redis within the window,
//! in pipelines, each settlement once per charge id — also after Redis lost its scripts and
//! on a cluster whose nodes own different teams; what Redis cannot take goes to the spool;
//! a stop sends everything queued.

use std::time::Duration;

use tally_config::keys;
use tally_config::money::Nanos;
use tally_store::redis::RedisStore;
use tally_store::{Batched, SettleOutcome, Settlement, Store};
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::process::wait_until;
use tally_tests::fixtures::redis::{RedisCluster, RedisServer};

use crate::store_bounds::settlement;
use crate::support::*;

const LIMIT_USD: &str = "1000";

#[tokio::test]
async fn a_response_goes_back_before_its_settlement_and_a_stop_sends_every_queued_one() {
    const CALLS: i64 = 5;
    let redis = RedisServer::start(false).await;
    // A ten-minute window: nothing is sent until the service stops.
    let flags = ["--settle-behind-ms", "600000"];
    let svc = start_with(&config(Some(LIMIT_USD)), &redis.url(), FailMode::Open, &flags).await;
    for i in 0..CALLS {
        let out = one_converse(&svc, &format!("queued-{i}")).await;
        assert_eq!(cost_header(&out[3]).as_deref(), Some(CONVERSE_COST_USD));
    }
    assert_eq!(counter(&redis, "search", "spent").await, 0, "settled before the window");
    assert_eq!(ledger(&redis, "search").await.len(), 0);
    assert!(
        counter(&redis, "search", "reserved").await > 0,
        "the calls' worst cases stay held until their settlements are applied"
    );
    let metrics = svc.metrics().await;
    assert!(
        metrics.contains(&format!("tally_settle_queue_depth {CALLS}")),
        "{metrics}"
    );
    svc.stop().await;
    assert_eq!(counter(&redis, "search", "spent").await, CALLS * CONVERSE_COST_NANOS);
    assert_eq!(counter(&redis, "search", "requests").await, CALLS);
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
    assert_eq!(ledger(&redis, "search").await.len(), CALLS as usize);
}

#[tokio::test]
async fn queued_settlements_reach_redis_within_the_window_exactly_once() {
    const CALLS: i64 = 20;
    let redis = RedisServer::start(false).await;
    let flags = ["--settle-behind-ms", "20"];
    let svc = start_with(&config(Some(LIMIT_USD)), &redis.url(), FailMode::Closed, &flags).await;
    let svc = &svc;
    futures::future::join_all((0..CALLS).map(|i| async move { one_converse(svc, &format!("burst-{i}")).await })).await;
    let settled = wait_until(Duration::from_secs(5), || async {
        counter(&redis, "search", "requests").await == CALLS && counter(&redis, "search", "reserved").await == 0
    })
    .await;
    assert!(settled, "requests {}", counter(&redis, "search", "requests").await);
    assert_eq!(counter(&redis, "search", "spent").await, CALLS * CONVERSE_COST_NANOS);
    assert_eq!(ledger(&redis, "search").await.len(), CALLS as usize);
    // Quiet now: what remains is estimated from the last answer this replica saw, exactly.
    let out = one_converse(svc, "after").await;
    let remaining = Nanos::parse_usd(LIMIT_USD).unwrap().0 - (CALLS + 1) * CONVERSE_COST_NANOS;
    assert_eq!(
        header(&set_headers(&out[3]), "x-tally-budget-remaining-usd"),
        Some(Nanos(remaining).to_string().as_str())
    );
}

#[tokio::test]
async fn a_batch_redis_cannot_take_goes_to_the_spool_and_loses_no_charge() {
    let mut redis = RedisServer::start(true).await;
    let flags = ["--settle-behind-ms", "5"];
    let svc = start_with(&config(Some(LIMIT_USD)), &redis.url(), FailMode::Open, &flags).await;
    one_converse(&svc, "before").await;
    redis.kill();
    for i in 0..3 {
        let out = one_converse(&svc, &format!("during-{i}")).await;
        assert_eq!(cost_header(&out[3]).as_deref(), Some(CONVERSE_COST_USD));
    }
    let spooled = wait_until(Duration::from_secs(10), || async {
        svc.metrics().await.contains("tally_spool_depth 3")
    })
    .await;
    assert!(spooled, "{}", svc.metrics().await);
    redis.restart().await;
    let drained = wait_until(Duration::from_secs(20), || async {
        svc.metrics().await.contains("tally_spool_depth 0")
    })
    .await;
    assert!(drained, "spool replayed after Redis returned");
    assert_eq!(counter(&redis, "search", "spent").await, 4 * CONVERSE_COST_NANOS);
    assert_eq!(ledger(&redis, "search").await.len(), 4);
    svc.stop().await;
}

fn batch<'a>(settlements: &'a [&'a Settlement]) -> Vec<Batched<'a>> {
    settlements.iter().map(|s| Batched::new(s, None)).collect()
}

fn outcomes(replies: Vec<tally_store::Result<SettleOutcome>>) -> Vec<bool> {
    replies
        .into_iter()
        .map(|r| match r.expect("settled") {
            SettleOutcome::Settled { .. } => true,
            SettleOutcome::AlreadySettled => false,
        })
        .collect()
}

#[tokio::test]
async fn a_batch_settles_each_charge_id_once_also_after_redis_lost_its_scripts() {
    let redis = RedisServer::start(false).await;
    let store = Store::Redis(
        RedisStore::connect(&redis.url(), false, None, None)
            .await
            .expect("connect"),
    );
    let (a, b, c) = (settlement("a"), settlement("b"), settlement("c"));
    let first = store.settle_batch(&batch(&[&a, &b, &a]), 1000).await;
    assert_eq!(outcomes(first), [true, true, false]);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis.connection().await)
        .await
        .unwrap();
    let second = store.settle_batch(&batch(&[&b, &c]), 1000).await;
    assert_eq!(outcomes(second), [false, true], "after SCRIPT FLUSH");
    let counted = store.counters(&a.counters[0]).await.expect("counters");
    assert_eq!((counted.spent, counted.requests), (Nanos(3), 3));
    assert_eq!(ledger(&redis, "t").await.len(), 3);
}

#[tokio::test]
async fn a_batch_over_teams_on_different_cluster_nodes_settles_every_one() {
    let cluster = RedisCluster::start().await;
    let other = cluster
        .team_on_another_node("t", &["ads", "billing", "chat", "docs", "edge", "fraud", "growth"])
        .await;
    let store = Store::Redis(
        RedisStore::connect(&cluster.url(), true, None, None)
            .await
            .expect("connect"),
    );
    let of_team = |team: &str, id: &str| {
        let mut s = settlement(id);
        s.team = team.into();
        s.record.team = team.into();
        s.counters = vec![keys::counter(team, "2026-12", &keys::Scope::Team)];
        s
    };
    let all = [
        of_team("t", "1"),
        of_team(other, "2"),
        of_team("t", "3"),
        of_team(other, "4"),
    ];
    let replies = store.settle_batch(&batch(&all.iter().collect::<Vec<_>>()), 1000).await;
    assert_eq!(outcomes(replies), [true; 4]);
    for s in &all[..2] {
        let counted = store.counters(&s.counters[0]).await.expect("counters");
        assert_eq!(counted.requests, 2, "{}", s.team);
    }
}
