//! Budget usability: how much of a `Block` budget a team can spend before its first
//! refusal, when calls cost less than their worst case (they always do: the bound
//! reserves `max_tokens` of output, a call uses part of it). Through the whole path —
//! the AWS SDK, real Envoy, `tally-extproc`, Redis, the simulated Bedrock — for one
//! sequential caller, and for 10 concurrent callers that each keep calling until they
//! are refused. Overspend is what the simulator billed beyond the limit.
//!
//! Run: `cargo run --release -p tally-bench -- usability` (results in `usability.json`
//! beside `--out`).

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use tally_config::money::Nanos;
use tally_tests::client::Attribution;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{US_HAIKU, config, team};

/// The budget: well above ten worst cases of the call below.
const LIMIT_USD: &str = "0.10";
/// What each call really uses (the simulator answers this usage): 0.000935 USD at
/// us. Haiku's 1.1 / 5.5 USD per 1M.
const USAGE: &str = "[[usage in=250 out=120]]";
/// Concurrent callers in the second scenario.
const CALLERS: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct Usability {
    pub scenario: String,
    pub limit_usd: String,
    /// The reservation of one call (what `x-tally-budget` refusals quote), USD.
    pub worst_case_usd: String,
    pub real_cost_usd: String,
    pub calls_admitted: u64,
    pub calls_refused: u64,
    /// Spent when the first refusal came (sequential) or when every caller had been refused.
    pub spent_usd: String,
    pub used_pct: f64,
    /// Billed by the simulator beyond the limit (calls that reached it × their cost − limit).
    pub overspend_usd: String,
}

/// A prompt of about 200 words, with the usage the simulator should answer.
fn prompt() -> String {
    let words: Vec<String> = (0..200).map(|i| format!("word{i}")).collect();
    format!("{} {USAGE}", words.join(" "))
}

/// Calls until refused; `(admitted, worst case quoted by the refusal)`.
async fn call_until_refused(stack: &Stack) -> (u64, Option<String>) {
    let client = stack.client(Attribution::team("u"));
    let text = prompt();
    let mut admitted = 0;
    loop {
        match client.converse(US_HAIKU, &text).await {
            Ok(_) => admitted += 1,
            Err(e) => {
                let message = format!("{:?}", e.into_service_error());
                let quoted = message
                    .split("may cost up to ")
                    .nth(1)
                    .and_then(|s| s.split(' ').next())
                    .map(str::to_string);
                return (admitted, quoted);
            }
        }
    }
}

async fn scenario(name: &str, callers: usize) -> Result<Usability> {
    let stack = Stack::start(StackOptions::new(config(vec![team("u", LIMIT_USD, &[], &[])]))).await;
    let runs = futures::future::join_all((0..callers).map(|_| call_until_refused(&stack))).await;
    // Settlements after the last answer are asynchronous to the client: let them land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let admitted: u64 = runs.iter().map(|(n, _)| n).sum();
    let worst = runs.iter().find_map(|(_, w)| w.clone()).unwrap_or_default();
    let limit = Nanos::parse_usd(LIMIT_USD)?;
    let spent = Nanos(stack.counter("u", "team", "spent").await);
    let billed_calls = stack.sim.stats().total_requests();
    let real = Nanos(250 * 1_100 + 120 * 5_500);
    let billed = Nanos(real.0 * billed_calls as i64);
    Ok(Usability {
        scenario: name.to_string(),
        limit_usd: limit.to_string(),
        worst_case_usd: worst,
        real_cost_usd: real.to_string(),
        calls_admitted: admitted,
        calls_refused: callers as u64,
        spent_usd: spent.to_string(),
        used_pct: (spent.0 as f64 * 10_000.0 / limit.0 as f64).round() / 100.0,
        overspend_usd: billed.saturating_sub(limit).max(Nanos::ZERO).to_string(),
    })
}

pub async fn phase() -> Result<Vec<Usability>> {
    let rows = vec![
        scenario("1 sequential caller", 1).await?,
        scenario(&format!("{CALLERS} concurrent callers, each until refused"), CALLERS).await?,
    ];
    eprintln!("\n== Budget usability (through Envoy + ext_proc + Redis, AWS SDK clients)");
    eprintln!(
        "{:<44} {:>8} {:>11} {:>11} {:>9} {:>11} {:>7} {:>10}",
        "scenario", "limit", "worst case", "real cost", "admitted", "spent", "used%", "overspend"
    );
    for r in &rows {
        eprintln!(
            "{:<44} {:>8} {:>11} {:>11} {:>9} {:>11} {:>7.2} {:>10}",
            r.scenario,
            r.limit_usd,
            r.worst_case_usd,
            r.real_cost_usd,
            r.calls_admitted,
            r.spent_usd,
            r.used_pct,
            r.overspend_usd
        );
    }
    Ok(rows)
}
