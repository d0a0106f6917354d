//! What the ledger-export tests share: the real `tally ledger-export` process, the
//! independent Parquet reader (pyarrow), and Redis readings of the ledger streams.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tally_tests::fixtures::process::{OwnedProcess, wait_until};
use tally_tests::fixtures::s3::S3Server;
use tally_tests::tools;

/// The exporter's consumer group (`tally_export::consumer::GROUP`), written out.
pub const GROUP: &str = "tally-export";

/// `tally ledger-export` running as its own process, as in the chart's Deployment.
pub struct ExporterProcess {
    process: OwnedProcess,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    ready_file: tempfile::NamedTempFile,
}

impl ExporterProcess {
    /// Exports `redis_url`'s streams to `destination` every 100 ms, `batch` entries a file at most.
    pub fn start(redis_url: &str, destination: &str, batch: usize, env: Vec<(&'static str, String)>) -> Self {
        let ready_file = tempfile::NamedTempFile::new().expect("temp file");
        let args = [
            "ledger-export",
            "--destination",
            destination,
            "--redis-url",
            redis_url,
            "--interval",
            "100ms",
            "--batch",
            &batch.to_string(),
            "--metrics-listen",
            "127.0.0.1:0",
            "--ready-file",
            ready_file.path().to_str().expect("utf-8 temp path"),
        ]
        .map(String::from)
        .to_vec();
        let process = OwnedProcess::spawn("ledger-export", command(&args, &env)).expect("start tally ledger-export");
        ExporterProcess {
            process,
            args,
            env,
            ready_file,
        }
    }

    /// SIGKILLs it wherever it is: between a file's write and its acknowledgement, or not.
    pub fn kill(&mut self) {
        self.process.kill();
        let _ = std::fs::write(self.ready_file.path(), "");
    }

    /// Starts it again with the same flags (the same consumer name).
    pub fn restart(&mut self) {
        let cmd = command(&self.args, &self.env);
        self.process.start(cmd).expect("start tally ledger-export");
    }

    /// Its `/metrics` text, once it serves.
    pub async fn metrics(&mut self) -> String {
        let path = self.ready_file.path().to_path_buf();
        let up = wait_until(Duration::from_secs(20), || {
            let path = path.clone();
            async move { std::fs::read_to_string(path).is_ok_and(|s| !s.is_empty()) }
        })
        .await;
        if !up {
            panic!("{}", self.process.failure("did not serve /metrics within 20 s"));
        }
        let addr = std::fs::read_to_string(&path).expect("ready file");
        http_get(addr.trim(), "/metrics").await
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

fn command(args: &[String], env: &[(&'static str, String)]) -> Command {
    // The export crate's sources count too: a `tally` built before them would test old code.
    tools::workspace_binary("tally", "tally-operator", "export");
    let mut cmd = Command::new(tools::workspace_binary("tally", "tally-operator", "operator"));
    cmd.args(args).env("RUST_LOG", "info,tally_export=debug");
    cmd.envs(env.iter().map(|(k, v)| (*k, v)));
    cmd
}

async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect to /metrics");
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("send request");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read response");
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or(out)
}

/// One sample of `name` in Prometheus text (0 when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// What pyarrow reads back from the bucket.
pub struct ReadBack {
    pub files: Vec<String>,
    pub versions: Vec<String>,
    pub types: BTreeMap<String, String>,
    pub rows: Vec<Value>,
}

/// Reads every Parquet object under `bucket/prefix/ledger` with pyarrow.
pub fn read_back(s3: &mut S3Server, bucket: &str, prefix: &str) -> ReadBack {
    let out = s3.python(include_str!("read_parquet.py"), &[bucket, prefix]);
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("reader output {e}: {out}"));
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect()
    };
    ReadBack {
        files: strings(&doc["files"]),
        versions: strings(&doc["versions"]),
        types: serde_json::from_value(doc["types"].clone()).expect("column types"),
        rows: doc["rows"].as_array().cloned().unwrap_or_default(),
    }
}

/// `team`'s ledger stream as it is now: stream id → record JSON.
pub async fn stream(redis: &mut redis::aio::MultiplexedConnection, team: &str) -> BTreeMap<String, Value> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("tally:{{{team}}}:ledger"))
        .arg("-")
        .arg("+")
        .query_async(redis)
        .await
        .expect("XRANGE");
    reply
        .ids
        .into_iter()
        .map(|e| {
            let json: String = e.get("record").expect("a record field");
            (e.id, serde_json::from_str(&json).expect("record JSON"))
        })
        .collect()
}

/// The exporter's group on `team`'s stream: `(pending, lag)`, `None` while it has none.
pub async fn group(redis: &mut redis::aio::MultiplexedConnection, team: &str) -> Option<(u64, u64)> {
    let groups: Vec<BTreeMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(format!("tally:{{{team}}}:ledger"))
        .query_async(redis)
        .await
        .unwrap_or_default();
    let int = |v: Option<&redis::Value>| match v {
        Some(redis::Value::Int(n)) => *n as u64,
        _ => 0,
    };
    groups
        .iter()
        .find(|g| matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == GROUP.as_bytes()))
        .map(|g| (int(g.get("pending")), int(g.get("lag"))))
}

/// Waits until the exporter has acknowledged everything in `team`'s stream.
pub async fn wait_caught_up(redis: &mut redis::aio::MultiplexedConnection, team: &str, exporter: &ExporterProcess) {
    for _ in 0..600 {
        if group(redis, team).await == Some((0, 0)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dropped: Option<String> = redis::cmd("GET")
        .arg(format!("tally:{{{team}}}:ledger:dropped"))
        .query_async(redis)
        .await
        .unwrap_or_default();
    let info: redis::Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(format!("tally:{{{team}}}:ledger"))
        .query_async(redis)
        .await
        .unwrap_or(redis::Value::Nil);
    panic!(
        "the exporter did not catch up with {team}'s stream within 30 s: (pending, lag) {:?}, dropped {dropped:?}\nstream {info:?}\n{}",
        group(redis, team).await,
        exporter.log()
    );
}
