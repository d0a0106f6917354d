//! `tally report` end to end: calls through the real data path (AWS SDK → Envoy →
//! tally-extproc → Redis, the simulated Bedrock behind), the real `tally ledger-export --once`
//! into a local directory and into a real S3 server (versitygw), then `tally report` reading
//! each: its totals, per team and per cost center, equal the sums of the Redis ledger records
//! exactly, and the same for both sources.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};
use tally_chargeback::report::html::{TEAM_COLOURS, tier_colour};
use tally_chargeback::report::routing::Tier;
use tally_config::money::Nanos;
use tally_tests::client::Attribution;
use tally_tests::fixtures::chromium::{Screenshot, rgb};
use tally_tests::fixtures::s3::S3Server;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{HAIKU, NOVA_LITE, OPUS, US_HAIKU, default_config};
use tally_tests::tools;

const BUDGETS: &str = "
apiVersion: tally.dev/v1alpha1
kind: TeamBudget
metadata: {name: search, namespace: search}
spec: {team: search, costCenter: CC-1042, budget: {limitUSD: '0.05', period: Monthly}}
";

/// The `tally` binary, rebuilt if the chargeback or operator sources are newer.
fn tally() -> Command {
    tools::workspace_binary("tally", "tally-operator", "chargeback");
    Command::new(tools::workspace_binary("tally", "tally-operator", "operator"))
}

/// Runs `tally args…` with `env`; its stdout, or a panic with its stderr.
fn run(args: &[&str], env: &[(&'static str, String)]) -> String {
    let out = tally()
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .output()
        .expect("run tally");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tally {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The scripted traffic: priced calls on three models, two tenants, an unattributed call and
/// a call refused by the allowlist. Returns how many ledger records it leaves.
async fn traffic(stack: &Stack) -> usize {
    let rag = |tenant| stack.client(Attribution::new("search", tenant, "rag"));
    let usage = |i: u32| {
        format!(
            "Summarise [[usage in={} out={} cr=40 cw5m=5 cw1h=1]]",
            1000 + i,
            200 + 7 * i
        )
    };
    for (i, model) in [HAIKU, HAIKU, OPUS].into_iter().enumerate() {
        rag("acme")
            .converse(model, &usage(i as u32))
            .await
            .expect("search/acme call");
    }
    rag("globex")
        .converse(US_HAIKU, &usage(9))
        .await
        .expect("search/globex call");
    let ads = stack.client(Attribution {
        workflow: Some("banners".into()),
        ..Attribution::team("ads")
    });
    for i in 0..2 {
        ads.converse(NOVA_LITE, &usage(20 + i)).await.expect("ads call");
    }
    assert!(
        ads.converse(HAIKU, "hi").await.is_err(),
        "ads may call amazon.nova-* only"
    );
    stack
        .client(Attribution::none())
        .converse(HAIKU, &usage(30))
        .await
        .expect("unattributed call");
    8
}

/// Every ledger stream's records, by team.
async fn ledger_records(stack: &Stack) -> BTreeMap<String, Vec<Value>> {
    let mut redis = stack.redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("tally:{*}:ledger")
        .query_async(&mut redis)
        .await
        .expect("KEYS");
    let mut out = BTreeMap::new();
    for key in keys {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut redis)
            .await
            .expect("XRANGE");
        let records: Vec<Value> = reply
            .ids
            .iter()
            .map(|e| serde_json::from_str(&e.get::<String>("record").expect("record field")).expect("record JSON"))
            .collect();
        let team = records
            .first()
            .and_then(|r| r["team"].as_str())
            .unwrap_or_default()
            .to_string();
        out.insert(team, records);
    }
    out
}

/// Waits until the streams hold `n` records (settlement follows the response).
async fn settled(stack: &Stack, n: usize) -> BTreeMap<String, Vec<Value>> {
    for _ in 0..200 {
        let records = ledger_records(stack).await;
        if records.values().map(Vec::len).sum::<usize>() == n {
            return records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the ledger never held {n} records: {:?}", ledger_records(stack).await);
}

/// What a report line must say about `records`: the sums, computed here from the Redis JSON.
fn sums<'a>(records: impl IntoIterator<Item = &'a Value>) -> Value {
    let (mut calls, mut refused, mut cost) = (0u64, 0u64, 0i64);
    let mut tokens = BTreeMap::<&str, u64>::new();
    let classes = [
        ("input", "inputTokens"),
        ("output", "outputTokens"),
        ("cache_read", "cacheReadTokens"),
        ("cache_write_5m", "cacheWrite5mTokens"),
        ("cache_write_1h", "cacheWrite1hTokens"),
    ];
    for r in records {
        calls += 1;
        refused += u64::from(matches!(r["outcome"].as_str(), Some("blocked" | "denied")));
        cost += r["costNanos"].as_i64().expect("costNanos");
        for (class, field) in classes {
            *tokens.entry(class).or_default() += r[field].as_u64().expect("token count");
        }
    }
    json!({"calls": calls, "refused": refused, "tokens": tokens, "cost_usd": Nanos(cost).to_string()})
}

/// The fields of a report line [`sums`] predicts.
fn line(v: &Value) -> Value {
    json!({"calls": v["calls"], "refused": v["refused"], "tokens": v["tokens"], "cost_usd": v["cost_usd"]})
}

/// `tally report --format html` of this month, rendered by headless Chromium: a page with
/// a line per team, the budget's line, and the model mix's tier colours, with no script and no
/// external asset.
fn assert_the_html_page_renders(ledger: &str, budgets: &std::path::Path) {
    let month = jiff::Timestamp::now().strftime("%Y-%m").to_string();
    let budgets = budgets.to_str().expect("UTF-8 path");
    let page = run(
        &[
            "report",
            "--ledger",
            ledger,
            "--period",
            &month,
            "--budgets",
            budgets,
            "--format",
            "html",
        ],
        &[],
    );
    assert!(!page.contains("<script"), "no script");
    let namespaces = page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(
        page.matches("http").count(),
        namespaces,
        "no external asset, only the SVG namespace"
    );
    assert_eq!(page.matches("stroke-dasharray").count(), 1, "one budget line: search's");
    let keep = std::env::var_os("TALLY_REPORT_SCREENSHOT").map(std::path::PathBuf::from);
    let shot = Screenshot::of(&page, 1280, 1600, keep.as_deref());
    assert_eq!((shot.width, shot.height), (1280, 1600));
    assert!(
        shot.inked() > 20_000,
        "a page, not a blank: {} pixels drawn",
        shot.inked()
    );
    for (team, colour) in ["search", "ads", "unknown"].iter().zip(TEAM_COLOURS) {
        let n = shot.count(rgb(colour));
        assert!(n > 100, "{team}'s colour {colour} is on the spend chart: {n} pixels");
    }
    for tier in [Tier::Premium, Tier::Economy] {
        let n = shot.count(rgb(tier_colour(tier)));
        assert!(n > 1_000, "the model-mix bars show {tier:?}: {n} pixels");
    }
}

/// `tally report --format json` of `ledger` over the days around now.
fn report(ledger: &str, by: &str, budgets: &std::path::Path, env: &[(&'static str, String)]) -> Value {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let period = format!(
        "{}..{}",
        today.yesterday().expect("a day"),
        today.tomorrow().expect("a day")
    );
    let budgets = budgets.to_str().expect("UTF-8 path");
    let args = [
        "report",
        "--ledger",
        ledger,
        "--period",
        &period,
        "--by",
        by,
        "--format",
        "json",
        "--budgets",
        budgets,
    ];
    serde_json::from_str(&run(&args, env)).expect("report JSON")
}

/// A report's lines by their (one-dimension) key.
fn groups(report: &Value) -> BTreeMap<String, Value> {
    let lines = report["groups"].as_array().expect("groups").iter();
    lines
        .map(|g| (g["key"][0].as_str().expect("key").to_string(), line(g)))
        .collect()
}

/// `tally ledger-export --once` of every stream into `destination`.
fn export_once(redis_url: &str, destination: &str, env: &[(&'static str, String)]) {
    run(
        &[
            "ledger-export",
            "--once",
            "--redis-url",
            redis_url,
            "--destination",
            destination,
        ],
        env,
    );
}

fn assert_report_is_the_ledger(report: &Value, records: &BTreeMap<String, Vec<Value>>, source: &str) {
    let all = records.values().flatten();
    assert_eq!(line(&report["total"]), sums(all), "{source}: the total");
    assert_eq!(
        report["rows"],
        records.values().map(Vec::len).sum::<usize>(),
        "{source}"
    );
    let expected: BTreeMap<String, Value> = records.iter().map(|(team, rs)| (team.clone(), sums(rs))).collect();
    assert_eq!(groups(report), expected, "{source}: per team");
    assert_eq!(
        line(&report["unattributed"]),
        sums(&records["unknown"]),
        "{source}: unattributed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_totals_equal_the_redis_ledger_from_a_directory_and_from_s3() {
    let s3 = S3Server::start("finops").await;
    let stack = Stack::start(StackOptions::new(default_config())).await;
    let n = traffic(&stack).await;
    let records = settled(&stack, n).await;
    assert_eq!(records.keys().collect::<Vec<_>>(), ["ads", "search", "unknown"]);
    assert!(
        records["ads"].iter().any(|r| r["outcome"] == "denied"),
        "{:?}",
        records["ads"]
    );
    let work = tempfile::tempdir().expect("temp dir");
    let budgets = work.path().join("budgets.yaml");
    std::fs::write(&budgets, BUDGETS).expect("write budgets");
    let dir = work.path().join("ledger");
    let redis_url = stack.redis.url();
    let dir_arg = dir.to_str().expect("UTF-8 path");
    export_once(&redis_url, dir_arg, &[]);
    // The exporter acknowledged everything for its group: without the group, the next export
    // starts again from each stream's first entry (a backfill), this time into S3.
    let mut redis = stack.redis.connection().await;
    for team in records.keys() {
        let _: i64 = redis::cmd("XGROUP")
            .arg("DESTROY")
            .arg(format!("tally:{{{team}}}:ledger"))
            .arg("tally-export")
            .query_async(&mut redis)
            .await
            .expect("XGROUP DESTROY");
    }
    let s3_url = "s3://finops/tally/prod";
    export_once(&redis_url, s3_url, &s3.env());

    let local = report(dir_arg, "team", &budgets, &[]);
    assert_report_is_the_ledger(&local, &records, "directory");
    let remote = report(s3_url, "team", &budgets, &s3.env());
    assert_report_is_the_ledger(&remote, &records, "S3");
    assert_eq!(local["groups"], remote["groups"], "the same report from either copy");
    assert_eq!(local["teams"], remote["teams"]);

    let by_cc = report(dir_arg, "cost-center", &budgets, &[]);
    let rest = records["ads"].iter().chain(&records["unknown"]);
    let expected = [("CC-1042", sums(&records["search"])), ("(none)", sums(rest))];
    assert_eq!(groups(&by_cc), expected.map(|(k, v)| (k.to_string(), v)).into());
    assert_the_html_page_renders(dir_arg, &budgets);
}
