//! A live call keeps its reservation however long it runs: with a reservation TTL
//! of one second, a call in flight for several seconds still holds its worst case
//! (its exchange refreshes the hold), and once it settles nothing stays held.

use std::time::Duration;

use tally_config::money::Nanos;
use tally_tests::fixtures::extproc::{ExtProcOptions, FailMode};
use tally_tests::fixtures::extproc_service::{ExtProcService, OpenExchange};
use tally_tests::fixtures::redis::RedisServer;

use crate::support::*;

const HAIKU_INVOKE_BODY: &[u8] = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1000,"messages":[]}"#;
/// Haiku's worst case for that body: every byte a token at 1 USD/1M (the dearest input
/// class) plus 1000 output tokens at 4 USD/1M, nano-USD.
const WORST: i64 = HAIKU_INVOKE_BODY.len() as i64 * 1000 + 1000 * 4000;
/// What [`HAIKU_TOKEN_HEADERS`] cost: 1000 × 0.8 + 100 × 4 USD/1M.
const SETTLED: i64 = 1_200_000;
/// One held call fits, two do not; a settled call and a held one fit.
const LIMIT: Nanos = Nanos(WORST + WORST / 2);
const TTL_FLAG: [&str; 2] = ["--reservation-ttl-seconds", "1"];
/// Three TTLs: long past the first expiry, with refreshes every third of a TTL.
const IN_FLIGHT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_call_longer_than_the_reservation_ttl_keeps_its_hold_in_redis() {
    let redis = RedisServer::start(false).await;
    let svc = start_with(
        &config(Some(&LIMIT.to_string())),
        &redis.url(),
        FailMode::Open,
        &TTL_FLAG,
    )
    .await;
    outlives_its_ttl(&svc).await;
    assert_eq!(
        counter(&redis, "search", "reserved").await,
        0,
        "nothing held after settling"
    );
    assert_eq!(counter(&redis, "search", "spent").await, 2 * SETTLED);
}

#[tokio::test]
async fn a_call_longer_than_the_reservation_ttl_keeps_its_hold_in_memory() {
    let mut opts = ExtProcOptions::new(config(Some(&LIMIT.to_string())), None);
    opts.extra_args = TTL_FLAG.iter().map(|f| f.to_string()).collect();
    let svc = ExtProcService::start(&opts).await;
    outlives_its_ttl(&svc).await;
}

/// A call held for [`IN_FLIGHT`] still blocks a second one; settled, it leaves room
/// for a third, which settles too.
async fn outlives_its_ttl(svc: &ExtProcService) {
    let mut long = admitted(svc, "long").await.expect("the first call fits");
    tokio::time::sleep(IN_FLIGHT).await;
    assert!(
        admitted(svc, "second").await.is_none(),
        "a call that fits only if the live call's hold had expired was admitted"
    );
    long.send(resp_headers(200, &HAIKU_TOKEN_HEADERS)).await;
    let mut third = admitted(svc, "third")
        .await
        .expect("after the long call settled, its hold is released");
    third.send(resp_headers(200, &HAIKU_TOKEN_HEADERS)).await;
}

/// Sends a Haiku invoke's headers and body; the open call if admitted, `None` if refused.
async fn admitted(svc: &ExtProcService, id: &str) -> Option<OpenExchange> {
    let mut call = svc.open().await;
    call.send(req_headers(
        &model_path(HAIKU, "invoke"),
        &[("x-team-id", "search"), ("amz-sdk-invocation-id", id)],
        false,
    ))
    .await;
    let resp = call.send(req_body(HAIKU_INVOKE_BODY)).await;
    match immediate(&resp) {
        Some(i) => {
            assert_eq!(i.status.as_ref().map(|s| s.code), Some(400), "refused on the budget");
            None
        }
        None => Some(call),
    }
}
