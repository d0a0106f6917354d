//! The data path as a hostile client tries it (issue #12): each test sends what a
//! client (through Envoy) can make Envoy send, against a `Block` budget, and checks
//! the call is refused or charged — and that Redis's counters equal the ledger's sum.
//! Messages are sent as Envoy sends them to the in-process service
//! ([`tally_tests::fixtures::extproc_service`]) with a real redis-server, or,
//! where the input needs a real client and Envoy (cut streams, bounds), through
//! the whole stack ([`tally_tests::fixtures::stack`]).
//!
//! Run: `cargo test -p tally-tests --test adversarial`.

mod async_invokes;
mod bounds;
mod charge_ids;
mod cut_streams;
mod envoy_h2;
mod fail_closed;
mod labels;
mod oversized;
mod spoofing;
// The gRPC suite's builders and readers; this suite uses only some of them.
#[allow(dead_code)]
#[path = "../grpc/support.rs"]
mod support;
mod trailers;

use tally_tests::fixtures::redis::RedisServer;

use support::{counter, ledger};

/// The budget every test spends against: one cent, far below any worst case here.
pub const EXHAUSTED: &str = "0.01";

/// The whole stack (real Envoy, ext_proc, Redis, simulated Bedrock) with team
/// `search` on an [`EXHAUSTED`] budget: what the Envoy-level tests attack.
pub async fn exhausted_stack() -> tally_tests::fixtures::stack::Stack {
    use tally_tests::fixtures::stack::{Stack, StackOptions};
    use tally_tests::scenarios;
    let team = scenarios::team("search", EXHAUSTED, &["acme"], &["rag"]);
    Stack::start(StackOptions::new(scenarios::config(vec![team]))).await
}

/// Money moved only as the ledger says: `spent` equals the sum of the records'
/// costs, and nothing stays reserved. Returns the ledger.
pub async fn assert_counters_match_ledger(redis: &RedisServer) -> Vec<serde_json::Value> {
    let records = ledger(redis, "search").await;
    let sum: i64 = records.iter().map(|r| r["costNanos"].as_i64().unwrap_or(0)).sum();
    assert_eq!(
        counter(redis, "search", "spent").await,
        sum,
        "counters == ledger sum: {records:?}"
    );
    assert_eq!(counter(redis, "search", "reserved").await, 0, "nothing held");
    records
}

/// `answer` (status, `x-amzn-errortype`, body) is a budget refusal, and the call left one
/// ledger record, `blocked`, with Redis's counters equal to the ledger.
pub async fn assert_refused_and_recorded(redis: &RedisServer, (status, error_type, text): (u16, String, String)) {
    assert_eq!(
        (status, error_type.as_str()),
        (400, "ServiceQuotaExceededException"),
        "{text}"
    );
    let records = assert_counters_match_ledger(redis).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["outcome"], "blocked");
}
