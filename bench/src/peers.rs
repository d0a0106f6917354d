//! The peers phase: LiteLLM measured against the Tally stack on the same calls to
//! the same simulator (added latency over direct, highest sustained rate), and the
//! budget strictness of both.

use std::time::Duration;

use serde_json::{Value, json};

use crate::load::{self, HttpClient, Shape, Spec};
use crate::overhead::{self, Added, MaxThroughput, Path, Run, TALLY_REDIS};
use crate::procs::Backends;
use crate::strictness::{self, STRICT_MAX_TOKENS, STRICT_TEAM, STRICT_WORDS, Trial};
use crate::{Args, litellm, mix};

/// The same calls sent directly, through Tally and through LiteLLM.
struct Latency {
    runs: [Run; 3],
    added_over_direct: [Added; 2],
    litellm_over_tally_added_p50: f64,
    litellm_over_tally_added_p99: f64,
}

pub async fn phase(
    args: &Args,
    client: &HttpClient,
    dir: &std::path::Path,
    backends: &Backends,
    paths: &[Path<'_>],
    call_cost_usd: f64,
) -> Value {
    let (direct_path, tally_path) = (
        &paths[0],
        paths.iter().find(|p| p.name == TALLY_REDIS).expect("the Redis path"),
    );
    let trial = Trial {
        k: args.k,
        cost_usd: call_cost_usd,
        sim_port: backends.sim_port,
    };
    // Tally's strictness first: it needs no peer.
    let tally_strict = mix::converse(STRICT_TEAM, mix::HAIKU, STRICT_WORDS, STRICT_MAX_TOKENS);
    let tally = strictness::run(
        "tally (envoy+ext_proc+redis)",
        client,
        &[tally_path.base()],
        &tally_strict,
        trial,
    )
    .await;
    let mut strict_rows = vec![tally];

    eprintln!("\n== LiteLLM proxy (1 worker, Redis) — starting");
    let peer = match litellm::start(
        dir,
        backends.sim_port,
        backends.redis_port,
        args.k as f64 * call_cost_usd,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("LiteLLM not measured: {e:#}");
            strictness::print(&strict_rows);
            return json!({"litellm_error": format!("{e:#}"), "strictness": strict_rows});
        }
    };
    let litellm_path = Path {
        name: "litellm",
        port: peer.port,
        procs: vec![&peer.proc, &backends.redis, &backends.sim],
    };
    probe(client, &litellm_path, &peer.master_key).await;
    // The same call three ways: Converse straight to the simulator, through the
    // Tally stack, and as a chat completion LiteLLM turns into a Converse call.
    let converse = vec![mix::converse(&mix::team_id(0), mix::HAIKU, 120, 512)];
    let chat = vec![litellm::chat(&peer.master_key, litellm::MODEL, 120, 512)];
    let latency = compare(args, client, [direct_path, tally_path, &litellm_path], &converse, &chat).await;
    let litellm_max = litellm_ladder(args, client, &litellm_path, &chat).await;

    let budget_shape = litellm::chat(&peer.master_key, litellm::BUDGET_MODEL, STRICT_WORDS, STRICT_MAX_TOKENS);
    let gateway = "litellm (deployment max_budget, redis)";
    strict_rows.push(strictness::run(gateway, client, &[litellm_path.base()], &budget_shape, trial).await);
    strictness::print(&strict_rows);

    json!({
        "rate": args.peer_rate,
        "runs": latency.runs,
        "added_over_direct": latency.added_over_direct,
        "litellm_over_tally_added_p50": latency.litellm_over_tally_added_p50,
        "litellm_over_tally_added_p99": latency.litellm_over_tally_added_p99,
        "litellm_max_throughput": litellm_max,
        "strictness": strict_rows,
    })
}

/// One chat completion before anything is timed; a failure is reported, not fatal.
async fn probe(client: &HttpClient, litellm: &Path<'_>, master_key: &str) {
    let probe = litellm::chat(master_key, litellm::MODEL, 120, 512);
    match load::send_full(client, &litellm.base(), &probe).await {
        Ok((200, _)) => {}
        Ok((s, body)) => eprintln!("LiteLLM probe answered {s}: {}", String::from_utf8_lossy(&body)),
        Err(e) => eprintln!("LiteLLM probe failed: {e}"),
    }
}

/// Direct, Tally and LiteLLM at `--peer-rate`, and what each gateway adds over direct.
async fn compare(
    args: &Args,
    client: &HttpClient,
    [direct_path, tally_path, litellm_path]: [&Path<'_>; 3],
    converse: &[Shape],
    chat: &[Shape],
) -> Latency {
    let spec = Spec {
        rate: args.peer_rate,
        duration: args.run_seconds().max(Duration::from_secs(5)),
        timeout: Duration::from_secs(30),
        max_in_flight: 2000,
    };
    let warm = Spec {
        rate: 10.0,
        duration: Duration::from_secs(2),
        ..spec
    };
    load::run(client, &litellm_path.base(), chat, warm).await;
    let direct = overhead::measure(client, direct_path, converse, spec).await;
    let tally = overhead::measure(client, tally_path, converse, spec).await;
    let litellm = overhead::measure(client, litellm_path, chat, spec).await;
    let (tally_added, litellm_added) = (overhead::added(&tally, &direct), overhead::added(&litellm, &direct));
    let latency = Latency {
        litellm_over_tally_added_p50: litellm_added.p50_ms / tally_added.p50_ms.max(0.001),
        litellm_over_tally_added_p99: litellm_added.p99_ms / tally_added.p99_ms.max(0.001),
        runs: [direct, tally, litellm],
        added_over_direct: [tally_added, litellm_added],
    };
    print(args.peer_rate, &latency);
    latency
}

fn print(rate: f64, latency: &Latency) {
    println!(
        "\nPeers at {rate} req/s (Converse / chat completion → Converse on the same simulator; added over direct)"
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "path", "p50", "p99", "p99.9", "errors", "+p50", "+p99"
    );
    let [direct, tally, litellm] = &latency.runs;
    let [tally_added, litellm_added] = &latency.added_over_direct;
    for (r, a) in [
        (direct, None),
        (tally, Some(tally_added)),
        (litellm, Some(litellm_added)),
    ] {
        let o = &r.outcome;
        let (ap50, ap99) = a.map_or((0.0, 0.0), |a| (a.p50_ms, a.p99_ms));
        println!(
            "{:<22} {:>8.3} {:>8.3} {:>8.3} {:>8} {:>9.3} {:>9.3}",
            r.path,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms,
            o.errors + o.dropped,
            ap50,
            ap99
        );
    }
    println!(
        "LiteLLM adds {:.0}× Tally's added p50 and {:.0}× its added p99",
        latency.litellm_over_tally_added_p50, latency.litellm_over_tally_added_p99
    );
}

/// LiteLLM's highest sustained rate.
async fn litellm_ladder(args: &Args, client: &HttpClient, litellm: &Path<'_>, chat: &[Shape]) -> MaxThroughput {
    eprintln!("  LiteLLM throughput ladder");
    // Let a backlog from the run above drain first.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ladder = if args.quick {
        vec![10.0, 25.0, 50.0, 100.0]
    } else {
        vec![10.0, 25.0, 50.0, 75.0, 100.0, 125.0, 150.0, 200.0]
    };
    let step = Duration::from_secs(if args.quick { 3 } else { 5 });
    let max = overhead::max_throughput(client, litellm, chat, &ladder, step, load::Outcome::sustained).await;
    println!("LiteLLM maximum sustained throughput: {} req/s", max.sustained_rps);
    max
}
