//! `tally ledger-export`'s flags (each with its `TALLY_*` twin) and running it: connect to
//! Redis, open the destination, serve `/metrics`, export until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tally_store::args::RedisArgs;

use crate::consumer::Consumer;
use crate::destination::Destination;
use crate::exporter::{self, Exporter};
use crate::metrics::{self, Metrics};
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Where the Parquet files go: `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix`, or a local directory. Cloud credentials come from the
    /// environment (AWS_* incl. IRSA, GOOGLE_*, AZURE_*); `AWS_ENDPOINT_URL` and
    /// `AWS_ALLOW_HTTP=true` point S3 at an S3-compatible server.
    #[arg(long, env = "TALLY_EXPORT_DESTINATION", value_name = "URL")]
    pub destination: String,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Pause between export cycles (a cycle drains every stream). Bigger means fewer, larger files.
    #[arg(long, env = "TALLY_EXPORT_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Entries read at a time: the most records one file holds.
    #[arg(long, env = "TALLY_EXPORT_BATCH", default_value_t = 2000)]
    pub batch: usize,
    /// This consumer's name in the group: keep it across restarts (one exporter at a time),
    /// so a restarted exporter finds and rewrites what it left unacknowledged.
    #[arg(long, env = "TALLY_EXPORT_CONSUMER", default_value = "exporter")]
    pub consumer: String,
    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "TALLY_EXPORT_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    pub metrics_listen: SocketAddr,
    /// Run one cycle (drain every stream), print what it exported as JSON, and exit (non-zero
    /// when a stream failed).
    #[arg(long, env = "TALLY_EXPORT_ONCE")]
    pub once: bool,
    /// Write the address `/metrics` is served on to this file once listening (for tests and
    /// scripts that pass port 0).
    #[arg(long, env = "TALLY_EXPORT_READY_FILE", value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 500ms, 30s or 5m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: expected e.g. 500ms, 30s or 5m")),
    }
}

/// Runs the exporter until SIGTERM / Ctrl-C (or one cycle with `--once`).
pub async fn run(args: &ExportArgs, stdout: &mut impl std::io::Write) -> Result<()> {
    // object_store's HTTP client and a `rediss://` Redis both use rustls; with more than one
    // provider compiled into `tally`, rustls needs one chosen. Err = already chosen.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dest = Destination::from_url(&args.destination)?;
    let target = args.redis.target()?.ok_or(Error::NoRedis)?;
    let store = target
        .connect()
        .await
        .map_err(|source| tally_store::args::RedisArgsError::Connect {
            url: target.redacted_url().to_string(),
            source,
        })?;
    let metrics = Arc::new(Metrics::default());
    let consumer = Consumer::new(store.connection(), &args.consumer);
    let mut exporter = Exporter::new(consumer, dest.clone(), metrics.clone(), args.batch);
    tracing::info!(destination = %dest, redis = target.redacted_url(), "exporting the ledger");
    if args.once {
        let c = exporter.cycle().await?;
        let summary = serde_json::json!({
            "teams": c.teams, "records": c.records, "files": c.files, "failed": c.failed,
            "destination": dest.to_string(),
        });
        let _ = writeln!(stdout, "{summary}");
        return match c.failed {
            0 => Ok(()),
            failed => Err(Error::Incomplete { failed }),
        };
    }
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|source| Error::Listen {
            addr: args.metrics_listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| Error::Listen {
        addr: args.metrics_listen,
        source,
    })?;
    if let Some(path) = &args.ready_file {
        let _ = std::fs::write(path, bound.to_string());
    }
    let http = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, metrics::router(metrics)).await {
            tracing::error!(%error, "metrics server failed");
        }
    });
    let result = exporter::run(exporter, args.interval, shutdown_signal()).await;
    http.abort();
    result
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
    tracing::info!("shutting down after this cycle");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExportArgs,
    }

    #[test]
    fn flags_have_defaults_and_durations_parse() {
        let cli = Cli::try_parse_from(["t", "--destination", "/tmp/x", "--interval", "500ms"]).unwrap();
        assert_eq!(cli.args.interval, Duration::from_millis(500));
        assert_eq!((cli.args.batch, cli.args.consumer.as_str()), (2000, "exporter"));
        assert!(Cli::try_parse_from(["t", "--destination", "x", "--interval", "1h"]).is_err());
        assert!(Cli::try_parse_from(["t"]).is_err(), "a destination is required");
    }
}
