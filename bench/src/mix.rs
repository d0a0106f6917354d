//! What the benchmarks send and the config the ext_proc runs with.
//!
//! Requests are shaped like the AWS SDK's (`POST /model/<id>/<operation>`, JSON
//! bodies, attribution headers); no SigV4, since the simulator only checks
//! signatures when asked to. The config is the catalog Tally ships
//! (`examples/catalog`, compiled by `tally render`'s code) plus synthetic teams.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;
use tally_config::compiled::{BudgetConfig, CompiledConfig, Enforcement, TeamConfig};
use tally_config::money::Nanos;
use tally_config::period::Period;

use crate::load::Shape;

pub const HAIKU: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
pub const SONNET_US: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
pub const NOVA_LITE: &str = "amazon.nova-2-lite-v1:0";

/// A prompt of `words` words (the simulator bills one input token per word).
pub fn prompt(words: usize) -> String {
    (0..words)
        .map(|i| {
            [
                "summarise",
                "the",
                "quarterly",
                "report",
                "for",
                "team",
                "budget",
                "review",
            ][i % 8]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn headers(team: &str, stream: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "host",
        HeaderValue::from_static("bedrock-runtime.us-east-1.amazonaws.com"),
    );
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let accept = if stream {
        "application/vnd.amazon.eventstream"
    } else {
        "application/json"
    };
    h.insert("accept", HeaderValue::from_static(accept));
    h.insert(
        "x-team-id",
        HeaderValue::from_str(team).expect("team id is a header value"),
    );
    h.insert("x-workflow-id", HeaderValue::from_static("bench"));
    h
}

fn post(path: String, team: &str, stream: bool, body: serde_json::Value) -> Shape {
    Shape {
        method: Method::POST,
        path,
        headers: headers(team, stream),
        body: Bytes::from(body.to_string()),
    }
}

pub fn converse(team: &str, model: &str, words: usize, max_tokens: u64) -> Shape {
    post(
        format!("/model/{model}/converse"),
        team,
        false,
        json!({"messages": [{"role": "user", "content": [{"text": prompt(words)}]}], "inferenceConfig": {"maxTokens": max_tokens}}),
    )
}

pub fn invoke_anthropic(team: &str, model: &str, words: usize, max_tokens: u64) -> Shape {
    post(
        format!("/model/{model}/invoke"),
        team,
        false,
        json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": max_tokens,
               "messages": [{"role": "user", "content": [{"type": "text", "text": prompt(words)}]}]}),
    )
}

/// A ConverseStream call; `chunks`/`delay_ms` (simulator directives) set its length and pace.
pub fn converse_stream(team: &str, model: &str, words: usize, chunks: Option<(u32, u64)>) -> Shape {
    let mut text = prompt(words);
    if let Some((n, delay)) = chunks {
        text.push_str(&format!(" [[chunks {n}]] [[chunk-delay-ms {delay}]]"));
    }
    post(
        format!("/model/{model}/converse-stream"),
        team,
        true,
        json!({"messages": [{"role": "user", "content": [{"text": text}]}], "inferenceConfig": {"maxTokens": 512}}),
    )
}

/// Teams in the overhead config; calls rotate over all of them.
pub const OVERHEAD_TEAMS: usize = 100;

/// The overhead mix: Converse, InvokeModel and ConverseStream in turn, over `teams` teams.
pub fn overhead_mix(teams: usize) -> Vec<Shape> {
    (0..3 * teams.max(1))
        .map(|i| {
            let team = team_id(i % teams.max(1));
            match i % 3 {
                0 => converse(&team, HAIKU, 120, 512),
                1 => invoke_anthropic(&team, SONNET_US, 120, 512),
                _ => converse_stream(&team, NOVA_LITE, 120, None),
            }
        })
        .collect()
}

pub fn team_id(i: usize) -> String {
    format!("team-{i:06}")
}

/// The shipped catalog (examples/catalog) compiled as the operator does, and `teams`
/// synthetic teams, each with a monthly budget of `budget` (blocking).
pub fn config(teams: usize, budget: Nanos) -> anyhow::Result<CompiledConfig> {
    let root = tally_tests::fixtures::tools::workspace_root();
    let json = tally_api::render::render_to_string(&[root.join("examples/catalog")], "default")
        .map_err(|e| anyhow::anyhow!("compiling examples/catalog: {e}"))?;
    let mut config = CompiledConfig::from_json(json.as_bytes())?;
    config.generation = format!("bench-{teams}");
    config.teams = (0..teams).map(|i| team(&team_id(i), budget)).collect();
    Ok(config)
}

pub fn team(id: &str, budget: Nanos) -> TeamConfig {
    TeamConfig {
        team: id.to_string(),
        source: format!("bench/{id}"),
        cost_center: None,
        tenants: vec![],
        budget: Some(BudgetConfig {
            limit: budget,
            period: Period::Monthly,
            timezone: "UTC".into(),
            enforcement: Enforcement::Block,
            alert_thresholds: vec![],
        }),
        workflows: vec![],
        allowed_models: vec![],
        principals: vec![],
    }
}
