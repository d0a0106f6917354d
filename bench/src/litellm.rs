//! LiteLLM proxy, the peer: one worker, Redis for its router's spend counters,
//! calling the same simulated Bedrock through `aws_bedrock_runtime_endpoint`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;
use tally_tests::fixtures::process::{OwnedProcess, free_port};

use crate::load::Shape;
use crate::mix;
use crate::procs::{answers_200, spawn_ready};

/// The model name without a budget (overhead runs) and the one with a budget (strictness).
pub const MODEL: &str = "haiku";
pub const BUDGET_MODEL: &str = "haiku-budget";

pub struct LiteLlm {
    pub proc: OwnedProcess,
    pub port: u16,
    pub master_key: String,
}

fn litellm_binary() -> Result<PathBuf> {
    let bin = tally_tests::fixtures::tools::tally_bin_dir().join("litellm");
    if !bin.exists() {
        bail!(
            "{} is missing: run scripts/tools/litellm.sh (bench/run.sh does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Starts the proxy; `budget_usd` is the deployment budget of [`BUDGET_MODEL`].
pub fn start(dir: &Path, sim_port: u16, redis_port: u16, budget_usd: f64) -> Result<LiteLlm> {
    let port = free_port();
    let master_key = format!("sk-bench-{}", uuid::Uuid::new_v4().simple());
    let deployment = |name: &str, budget: Option<f64>| {
        let mut params = json!({
            "model": format!("bedrock/{}", mix::HAIKU),
            "aws_bedrock_runtime_endpoint": format!("http://127.0.0.1:{sim_port}"),
            "aws_region_name": "us-east-1",
            "aws_access_key_id": "AKIDBENCHLITELLM",
            "aws_secret_access_key": "bench-secret",
        });
        if let Some(b) = budget {
            params["max_budget"] = json!(b);
            params["budget_duration"] = json!("1d");
        }
        json!({"model_name": name, "litellm_params": params})
    };
    let config = json!({
        "model_list": [deployment(MODEL, None), deployment(BUDGET_MODEL, Some(budget_usd))],
        "router_settings": {"redis_host": "127.0.0.1", "redis_port": redis_port},
        "litellm_settings": {"num_retries": 0, "request_timeout": 30, "telemetry": false},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    });
    let path = dir.join("litellm.yaml");
    std::fs::write(&path, serde_yaml::to_string(&config)?)?;
    let mut cmd = Command::new(litellm_binary()?);
    cmd.arg("--config")
        .arg(&path)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--num_workers", "1"])
        .env("LITELLM_MASTER_KEY", &master_key)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("DATABASE_URL");
    let ready = answers_200(port, "/health/liveliness");
    let proc = spawn_ready(
        "litellm",
        cmd,
        Duration::from_secs(180),
        "GET /health/liveliness",
        ready,
    )?;
    Ok(LiteLlm { proc, port, master_key })
}

/// An OpenAI-style chat completion with the same prompt as [`mix::converse`].
pub fn chat(master_key: &str, model: &str, words: usize, max_tokens: u64) -> Shape {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {master_key}")).expect("key is ASCII"),
    );
    let body = json!({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": mix::prompt(words)}]});
    Shape {
        method: Method::POST,
        path: "/v1/chat/completions".into(),
        headers: h,
        body: Bytes::from(body.to_string()),
    }
}
