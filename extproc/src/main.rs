use clap::Parser;
use tally_extproc::app::{Args, Listeners, run};

/// [`Args`] plus what only the process needs.
#[derive(Parser)]
#[command(
    name = "tally-extproc",
    version,
    about = "Envoy ext_proc service that prices, budgets and records AWS Bedrock calls"
)]
struct Cli {
    #[command(flatten)]
    args: Args,
    /// Runtime worker threads; 0 = one per available core. One is cheaper per call when the
    /// ext_proc shares few cores with Envoy (fewer cross-thread wake-ups); add replicas to scale.
    #[arg(long, env = "TALLY_WORKER_THREADS", default_value_t = 0)]
    worker_threads: usize,
    /// The async runtime: `multi-thread` (`--worker-threads` workers) or `current-thread`
    /// (one thread runs everything, with no wake-ups between threads; `--worker-threads` is ignored).
    #[arg(long, env = "TALLY_RUNTIME", value_enum, default_value = "multi-thread")]
    runtime: Flavor,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Flavor {
    MultiThread,
    CurrentThread,
}

fn main() -> anyhow::Result<()> {
    let Cli {
        args,
        worker_threads,
        runtime,
    } = Cli::parse();
    let mut runtime = match runtime {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    };
    if worker_threads > 0 {
        runtime.worker_threads(worker_threads);
    }
    runtime.enable_all().build()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    // Refuse a transport that is not secured before binding anything.
    args.tls.transport()?;
    let listeners = Listeners::bind(&args).await?;
    run(args, listeners, shutdown_signal()).await
}

/// SIGINT or SIGTERM (Kubernetes' stop signal) starts a graceful shutdown.
async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
