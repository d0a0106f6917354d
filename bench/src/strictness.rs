//! Budget strictness: a budget that covers exactly `k` calls, then `10 × k`
//! concurrent calls, then calls one at a time until the gateway refuses. What
//! Bedrock billed is what reached the simulator, counted by the simulator.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::load::{self, HttpClient, Shape};
use crate::procs::http_get;

/// The team whose budget fits exactly k calls.
pub const STRICT_TEAM: &str = "strict";
/// The strictness call: this many prompt words (= input tokens) and output tokens.
pub const STRICT_WORDS: usize = 100;
pub const STRICT_MAX_TOKENS: u64 = 16;

/// The trial every gateway gets: a budget of exactly `k` calls of `cost_usd`, billed calls
/// counted by the simulator on `sim_port`.
#[derive(Debug, Clone, Copy)]
pub struct Trial {
    pub k: u64,
    pub cost_usd: f64,
    pub sim_port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct Strictness {
    pub gateway: String,
    pub k: u64,
    pub concurrent: u64,
    pub cost_per_call_usd: f64,
    pub budget_usd: f64,
    /// 2xx answers to the concurrent burst.
    pub burst_admitted: u64,
    pub burst_refused: u64,
    /// Further calls admitted one at a time after the burst, until the first refusal.
    pub sequential_admitted: u64,
    /// Calls that reached the simulated Bedrock (= billed).
    pub billed_calls: u64,
    pub billed_usd: f64,
    /// max(0, billed − budget).
    pub overspend_usd: f64,
    pub overspend_pct: f64,
    pub refusal_status: Option<u16>,
}

fn sim_calls(sim_port: u16) -> u64 {
    let Some((200, body)) = http_get(sim_port, "/__sim/stats") else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["requests"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|n| n.as_u64()).sum())
}

/// The trial through `bases` — one gateway, or replicas sharing one store: the burst's
/// calls go to them in turn, the one-at-a-time calls after it too.
pub async fn run(gateway: &str, client: &HttpClient, bases: &[String], shape: &Shape, trial: Trial) -> Strictness {
    let Trial { k, cost_usd, sim_port } = trial;
    let budget = k as f64 * cost_usd;
    let sim_before = sim_calls(sim_port);
    let concurrent = 10 * k;
    let base = |i: u64| bases[i as usize % bases.len()].as_str();
    let burst = futures::future::join_all((0..concurrent).map(|i| async move {
        tokio::time::timeout(Duration::from_secs(60), load::send_full(client, base(i), shape)).await
    }))
    .await;
    let mut refusal_status = None;
    let (mut admitted, mut refused) = (0, 0);
    for r in &burst {
        match r {
            Ok(Ok((s, _))) if (200..300).contains(s) => admitted += 1,
            Ok(Ok((s, _))) => {
                refused += 1;
                refusal_status.get_or_insert(*s);
            }
            _ => refused += 1,
        }
    }
    // Let asynchronous spend tracking (LiteLLM's Redis sync, Tally's settlement) catch up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut sequential = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sequential < 10 * k && Instant::now() < deadline {
        match load::send_full(client, base(sequential), shape).await {
            Ok((s, _)) if (200..300).contains(&s) => sequential += 1,
            Ok((s, _)) => {
                refusal_status.get_or_insert(s);
                break;
            }
            Err(_) => break,
        }
        // One at a time, as a careful client would: each call settles before the next.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let billed_calls = sim_calls(sim_port).saturating_sub(sim_before);
    let billed = billed_calls as f64 * cost_usd;
    let overspend = (billed - budget).max(0.0);
    Strictness {
        gateway: gateway.to_string(),
        k,
        concurrent,
        cost_per_call_usd: cost_usd,
        budget_usd: budget,
        burst_admitted: admitted,
        burst_refused: refused,
        sequential_admitted: sequential,
        billed_calls,
        billed_usd: billed,
        overspend_usd: overspend,
        overspend_pct: 100.0 * overspend / budget,
        refusal_status,
    }
}

pub fn print(rows: &[Strictness]) {
    println!("\nBudget strictness: budget = k calls; 10×k concurrent, then one at a time until refused");
    println!(
        "{:<40} {:>4} {:>6} {:>8} {:>8} {:>6} {:>7} {:>11} {:>11} {:>9}",
        "gateway", "k", "sent", "burst ok", "refused", "seq ok", "billed", "budget $", "billed $", "overspend"
    );
    for r in rows {
        println!(
            "{:<40} {:>4} {:>6} {:>8} {:>8} {:>6} {:>7} {:>11.6} {:>11.6} {:>8.0}%",
            r.gateway,
            r.k,
            r.concurrent,
            r.burst_admitted,
            r.burst_refused,
            r.sequential_admitted,
            r.billed_calls,
            r.budget_usd,
            r.billed_usd,
            r.overspend_pct
        );
    }
}
