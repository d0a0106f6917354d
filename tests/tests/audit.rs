//! `tally audit` end to end, through the real `tally` binary: the ledger of the
//! demo's traffic (real Envoy, tally-extproc and Redis in front of the simulated
//! Bedrock, the shipped examples/) audits every field present and correct; the
//! live coverage reads the same ledger from the ext_proc's API; a LiteLLM log
//! with per-attempt ids reports its request id misscoped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tally_tests::client::{Attribution, anthropic_body, drain_converse_stream, llama_body};
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::fixtures::tools::{workspace_binary, workspace_root};
use tally_tests::scenarios::compile_manifests;

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
const NOVA_MICRO: &str = "amazon.nova-micro-v1:0";
const LLAMA_70B: &str = "meta.llama3-1-70b-instruct-v1:0";

/// Runs `tally audit ARGS` in the workspace root; its exit success and stdout.
fn tally_audit(args: &[&str]) -> (bool, String) {
    let out = Command::new(workspace_binary("tally", "tally-operator", "operator"))
        .current_dir(workspace_root())
        .arg("audit")
        .args(args)
        .output()
        .expect("tally runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("tally audit {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), stdout)
}

fn audit_fixture(name: &str) -> PathBuf {
    workspace_root().join("audit/tests/fixtures").join(name)
}

/// The demo's traffic mix (tests/src/bin/demo.rs), smaller: three teams, their
/// tenants and workflows, a stream with 1-hour cache writes, an unattributed
/// call, and a call the allowlist refuses. Returns how many calls were made.
async fn demo_traffic(stack: &Stack) -> usize {
    let mix = [
        (
            ("search", "help-center", "rag"),
            SONNET,
            2,
            false,
            "in=1800 out=350 cr=6000",
        ),
        (("search", "intranet", "rerank"), NOVA_MICRO, 3, false, "in=900 out=20"),
        (
            ("support-bot", "acme", "triage"),
            HAIKU,
            2,
            true,
            "in=700 out=120 cw1h=2000",
        ),
        (
            ("support-bot", "globex", "reply"),
            SONNET,
            2,
            false,
            "in=2500 out=600 cw5m=1500",
        ),
    ];
    for ((team, tenant, workflow), model, calls, stream, usage) in mix {
        let client = stack.client(Attribution::new(team, tenant, workflow));
        for i in 0..calls {
            let text = format!("{workflow} {i} [[usage {usage}]]");
            if stream {
                let out = client.converse_stream(model, &text).await.expect("a stream");
                drain_converse_stream(out)
                    .await
                    .expect("usage at the end of the stream");
            } else {
                client.converse(model, &text).await.expect("a reply");
            }
        }
    }
    let unattributed = stack.client(Attribution::none());
    unattributed
        .converse(NOVA_MICRO, "no attribution headers")
        .await
        .expect("a reply");
    let notebooks = stack.client(Attribution {
        workflow: Some("notebooks".into()),
        ..Attribution::team("data-science")
    });
    notebooks
        .invoke(LLAMA_70B, llama_body("summarise [[usage in=600 out=40]]"))
        .await
        .expect("data-science may call Llama");
    let denied = notebooks.invoke(HAIKU, anthropic_body("hi")).await;
    assert!(denied.is_err(), "Claude is outside data-science's allowlist");
    12
}

fn write_jsonl(path: &Path, records: &[Value]) {
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("write the ledger export");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_ledger_has_every_field_present_and_correct() {
    let root = workspace_root();
    let config = compile_manifests(&[root.join("examples/teams"), root.join("examples/catalog")]);
    let stack = Stack::start(StackOptions::new(config)).await;
    let calls = demo_traffic(&stack).await;
    let ledger = stack.extproc.wait_ledger(calls, Duration::from_secs(15)).await;
    assert_eq!(ledger.len(), calls);

    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("demo-ledger.jsonl");
    write_jsonl(&export, &ledger);
    let export = export.to_str().unwrap();
    let (ok, json) = tally_audit(&[export, "--catalog", "examples", "--format", "json"]);
    assert!(ok);
    let report: Value = serde_json::from_str(&json).expect("a JSON report");
    let set = &report["sets"][0];
    assert_eq!(set["format"], "tally_ledger");
    let not_present: Vec<String> = set["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] != "present")
        .map(|f| f.to_string())
        .collect();
    assert!(
        not_present.is_empty(),
        "every field present and correct:\n{}",
        not_present.join("\n")
    );
    assert_eq!(report["score"], serde_json::json!({"correct": 13, "expected": 13}));
    assert_eq!(report["work"], serde_json::json!([]));

    let (ok, table) = tally_audit(&[export, "--catalog", "examples", "--fail-under", "100"]);
    assert!(ok, "{table}");
    assert!(table.contains("score 13/13 (100%)"), "{table}");

    // Live: the same ledger through the ext_proc's API.
    let token = stack.extproc.api_token_file();
    let api = stack.extproc.api_url("");
    let (ok, json) = tally_audit(&[
        "--ledger",
        &api,
        "--token-file",
        token.to_str().unwrap(),
        "--since",
        "1h",
        "--format",
        "json",
    ]);
    assert!(ok, "{json}");
    let coverage: Value = serde_json::from_str(&json).expect("JSON coverage");
    assert_eq!(coverage["calls"], calls);
    let missing = |dim: &str| -> u64 {
        coverage["missing"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["dimension"] == dim)
            .and_then(|m| m["calls"].as_u64())
            .unwrap()
    };
    assert_eq!(missing("team"), 1, "the one call without headers");
    assert_eq!(
        missing("tenant"),
        3,
        "data-science's two calls and the unattributed one"
    );
    assert_eq!(missing("workflow"), 1);
    let spent: i64 = ledger.iter().filter_map(|r| r["costNanos"].as_i64()).sum();
    assert_eq!(coverage["spend_nanos"], spent);
}

#[test]
fn the_binary_reports_per_attempt_ids_in_a_litellm_log_and_gates_on_the_score() {
    let litellm = audit_fixture("litellm-spendlogs.csv");
    let (ok, json) = tally_audit(&[litellm.to_str().unwrap(), "--format", "json"]);
    assert!(ok);
    let report: Value = serde_json::from_str(&json).unwrap();
    let request_id = report["sets"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "request_id")
        .cloned()
        .unwrap();
    assert_eq!(request_id["verdict"], "misscoped");
    assert_eq!(request_id["fixes"], serde_json::json!(["stable_request_id"]));

    let envoy = audit_fixture("envoy-default.txt");
    let (ok, table) = tally_audit(&[envoy.to_str().unwrap(), "--fail-under", "50"]);
    assert!(!ok, "3/13 is under 50%");
    assert!(table.contains("score 3/13 (23%)"), "{table}");

    let (ok, markdown) = tally_audit(&[audit_fixture("").to_str().unwrap(), "--format", "markdown"]);
    assert!(ok);
    assert_eq!(
        markdown.matches("\n## `").count(),
        9,
        "one section per fixture file:\n{markdown}"
    );
}
