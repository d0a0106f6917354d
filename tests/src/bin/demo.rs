//! `tally-demo`: the whole data path on this machine, with the example manifests.
//!
//! Starts the simulated Bedrock, a local redis-server, `tally-extproc` with the
//! config `tally render examples/` compiles, and Envoy with the Helm chart's
//! gateway config; drives traffic from three teams with the AWS SDK; prints spend
//! per team, workflow and model and a budget refusal; exports the ledger to
//! Parquet in a local directory with `tally ledger-export` and queries it; then
//! keeps the stack up for your own SDK until Ctrl-C (or exits with `--once`).

use std::collections::BTreeMap;
use std::process::Command;

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::primitives::Blob;
use clap::Parser;
use tally_config::compiled::CompiledConfig;
use tally_config::money::Nanos;
use tally_tests::bedrock_sim::SimOptions;
use tally_tests::client::{AppClient, Attribution, bedrock_client};
use tally_tests::fixtures::envoy::{Envoy, EnvoyOptions};
use tally_tests::fixtures::extproc::{API_TOKEN, ExtProc, ExtProcOptions};
use tally_tests::fixtures::redis::RedisServer;
use tally_tests::fixtures::sim::SimServer;
use tally_tests::fixtures::tools;

#[derive(Parser)]
#[command(about = "Run Tally's data path locally on the example manifests")]
struct Args {
    /// Exit after the scripted traffic instead of serving until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Manifests to compile (files or directories).
    #[arg(long, default_value = "examples")]
    manifests: String,
}

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
const NOVA_MICRO: &str = "amazon.nova-micro-v1:0";
const LLAMA_70B: &str = "meta.llama3-1-70b-instruct-v1:0";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = render(&args.manifests)?;
    println!("==> starting simulated Bedrock, Redis, tally-extproc and Envoy (the chart's gateway config)");
    let stack = DemoStack::start(config).await;
    let gateway = stack.envoy.url();
    println!(
        "    gateway {gateway}  ·  ext_proc metrics {}  ·  API {}",
        stack.extproc.metrics_url(""),
        stack.extproc.api_url("")
    );
    println!("==> traffic from three teams through the AWS SDK");
    send_traffic(&gateway).await?;
    println!("==> data-science has a $0.50 daily budget: large Llama prompts until it refuses");
    run_out_of_budget(&gateway).await?;
    print_spend(&stack.extproc).await;
    export_ledger(&stack.redis.url())?;
    if args.once {
        return Ok(());
    }
    println!(
        "\n==> the stack stays up. Point any AWS SDK at it, e.g.\n    aws bedrock-runtime converse --endpoint-url {gateway} --region us-east-1 \\\n      --model-id {NOVA_MICRO} --messages '[{{\"role\":\"user\",\"content\":[{{\"text\":\"hi\"}}]}}]'\n    (add headers x-team-id / x-tenant-id / x-workflow-id from your SDK to attribute calls)\n    ledger:  curl -H 'Authorization: Bearer {API_TOKEN}' '{}'\n    spend:   curl -H 'Authorization: Bearer {API_TOKEN}' '{}'\n    metrics: curl '{}'\n    Ctrl-C to stop.",
        stack.extproc.api_url("/v1/ledger?team=search&limit=20"),
        stack.extproc.api_url("/v1/spend"),
        stack.extproc.metrics_url("/metrics")
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// Compiles `manifests` with `tally render`, as a user would.
fn render(manifests: &str) -> anyhow::Result<CompiledConfig> {
    println!("==> compiling {manifests} with `tally render`");
    let out = Command::new(tools::workspace_binary("tally", "tally-operator", "operator"))
        .current_dir(tools::workspace_root())
        .args(["render", manifests])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "tally render failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = CompiledConfig::from_json(&out.stdout)?;
    println!(
        "    {} teams, {} price entries (generation {})",
        config.teams.len(),
        config.catalog.entries.len(),
        config.generation
    );
    Ok(config)
}

/// The data path: simulated Bedrock, `tally-extproc` with its ledger in Redis, Envoy in front.
struct DemoStack {
    envoy: Envoy,
    extproc: ExtProc,
    redis: RedisServer,
    _sim: SimServer,
}

impl DemoStack {
    async fn start(config: CompiledConfig) -> DemoStack {
        let sim = SimServer::start(SimOptions::default()).await;
        let redis = RedisServer::start(false).await;
        let extproc = ExtProc::start(ExtProcOptions::new(config, Some(redis.url()))).await;
        let envoy = Envoy::start(&EnvoyOptions {
            upstream_port: sim.port(),
            ext_proc_port: extproc.grpc_port(),
            fail_open: true,
            signing: None,
            extra_values: vec![],
        })
        .await;
        DemoStack {
            envoy,
            extproc,
            redis,
            _sim: sim,
        }
    }
}

/// One team's calls: who sends them, to which model, how many, streamed or not, and the
/// text of call `{i}` (with the simulator's usage directive).
struct Workload {
    attribution: Attribution,
    model: &'static str,
    calls: usize,
    stream: bool,
    text: &'static str,
}

/// search (RAG and reranking), support-bot (streamed triage, replies) and one service that
/// sends no attribution headers.
async fn send_traffic(gateway: &str) -> anyhow::Result<()> {
    let workload = |(team, tenant, workflow), model, calls, stream, text| Workload {
        attribution: Attribution::new(team, tenant, workflow),
        model,
        calls,
        stream,
        text,
    };
    let workloads = [
        workload(
            ("search", "help-center", "rag"),
            SONNET,
            5,
            false,
            "question {i}: where is the refund policy? [[usage in=1800 out=350 cr=6000]]",
        ),
        workload(
            ("search", "intranet", "rerank"),
            NOVA_MICRO,
            10,
            false,
            "rank passage {i} [[usage in=900 out=20]]",
        ),
        workload(
            ("support-bot", "acme", "triage"),
            HAIKU,
            4,
            true,
            "ticket {i}: my invoice is wrong [[usage in=700 out=120 cw1h=2000]]",
        ),
        workload(
            ("support-bot", "globex", "reply"),
            SONNET,
            3,
            false,
            "draft reply {i} [[usage in=2500 out=600 cw5m=1500]]",
        ),
        Workload {
            attribution: Attribution::none(),
            model: NOVA_MICRO,
            calls: 1,
            stream: false,
            text: "a call from a service that sends no attribution headers",
        },
    ];
    for w in workloads {
        let client = bedrock_client(gateway, w.attribution, false);
        for i in 0..w.calls {
            let text = w.text.replace("{i}", &i.to_string());
            if w.stream {
                converse_stream(&client, w.model, &text).await?;
            } else {
                client.converse(w.model, &text).await.map_err(sdk_error)?;
            }
        }
    }
    Ok(())
}

/// Large Llama prompts from data-science until its budget refuses one (an error if it never does).
async fn run_out_of_budget(gateway: &str) -> anyhow::Result<()> {
    let ds = bedrock_client(gateway, Attribution::new("data-science", "", "notebooks"), false);
    let big_prompt = "lorem ipsum dolor sit amet ".repeat(12_000); // ~320 KB: the worst case counts every byte
    for i in 0..20 {
        let body =
            serde_json::json!({"prompt": format!("{big_prompt} [[usage in=60000 out=400]]"), "max_gen_len": 1024});
        match ds.invoke(LLAMA_70B, Blob::new(body.to_string())).await {
            Ok(_) => println!("    call {i}: ok"),
            Err(e) => {
                println!(
                    "    call {i}: refused before reaching Bedrock — {}",
                    e.code().unwrap_or("?")
                );
                println!("    message: {}", e.message().unwrap_or(""));
                return Ok(());
            }
        }
    }
    anyhow::bail!("data-science was never refused: the budget did not hold")
}

fn sdk_error<E: std::error::Error + 'static>(e: E) -> anyhow::Error {
    anyhow::anyhow!("{}", aws_sdk_bedrockruntime::error::DisplayErrorContext(e))
}

async fn converse_stream(c: &AppClient, model: &str, text: &str) -> anyhow::Result<()> {
    let mut out = c.converse_stream(model, text).await.map_err(sdk_error)?;
    while out.stream.recv().await.map_err(sdk_error)?.is_some() {}
    Ok(())
}

/// Spend per team / workflow / model, from the ledger the ext_proc keeps.
async fn print_spend(extproc: &ExtProc) {
    // Streams are settled as their last chunk passes: give the final ones a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let records = extproc.ledger(10_000).await;
    let mut rows: BTreeMap<(String, String, String), (u64, i64, u64)> = BTreeMap::new();
    for r in &records {
        let key = (
            r["team"].as_str().unwrap_or("").to_string(),
            r["workflow"].as_str().unwrap_or("-").to_string(),
            r["model"]
                .as_str()
                .filter(|m| !m.is_empty())
                .or(r["modelId"].as_str())
                .unwrap_or("")
                .to_string(),
        );
        let row = rows.entry(key).or_default();
        row.0 += 1;
        row.1 += r["costNanos"].as_i64().unwrap_or(0);
        if r["outcome"] == "blocked" {
            row.2 += 1;
        }
    }
    println!(
        "\n{:<14} {:<10} {:<46} {:>6} {:>8} {:>14}",
        "TEAM", "WORKFLOW", "MODEL", "CALLS", "BLOCKED", "SPEND USD"
    );
    let mut total = 0;
    for ((team, workflow, model), (calls, nanos, blocked)) in &rows {
        total += nanos;
        println!(
            "{team:<14} {workflow:<10} {model:<46} {calls:>6} {blocked:>8} {:>14}",
            Nanos(*nanos).to_string()
        );
    }
    println!(
        "{:<14} {:<10} {:<46} {:>6} {:>8} {:>14}",
        "total",
        "",
        "",
        records.len(),
        "",
        Nanos(total).to_string()
    );
}

/// What the chart's `ledgerExport` does to S3, into a local directory: every team's ledger
/// stream to Parquet (`tally ledger-export --once`); then where it is and one query on it.
fn export_ledger(redis_url: &str) -> anyhow::Result<()> {
    let cache = std::env::var_os("TALLY_CACHE").map(std::path::PathBuf::from);
    let dir = cache.unwrap_or_else(std::env::temp_dir).join("demo-ledger");
    let _ = std::fs::remove_dir_all(&dir);
    println!("\n==> exporting the ledger from Redis to Parquet with `tally ledger-export --once`");
    let out = Command::new(tools::workspace_binary("tally", "tally-operator", "operator"))
        .args(["ledger-export", "--once", "--redis-url", redis_url, "--destination"])
        .arg(&dir)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "tally ledger-export failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("    {}", String::from_utf8_lossy(&out.stdout));
    let ledger = dir.join("ledger");
    println!(
        "    ledger: {}/year=*/month=*/day=*/*.parquet (docs/ledger.md)",
        ledger.display()
    );
    let query = format!(
        "import pyarrow.dataset as ds; t = ds.dataset('{}', format='parquet', partitioning='hive').to_table(); \
         [print(r) for r in t.group_by('team').aggregate([('cost_usd', 'sum'), ('request_id', 'count')]).sort_by('team').to_pylist()]",
        ledger.display()
    );
    println!("    query it: {} -c \"{query}\"", tools::python().display());
    println!(
        "    or DuckDB: SELECT team, sum(cost_usd) FROM read_parquet('{}/**/*.parquet', hive_partitioning = true) GROUP BY team;",
        ledger.display()
    );
    let result = Command::new(tools::python()).args(["-c", &query]).output()?;
    println!("{}", String::from_utf8_lossy(&result.stdout));
    Ok(())
}
