use clap::Parser;
use tally_extproc::app::{Args, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let grpc = tokio::net::TcpListener::bind(args.listen).await?;
    let admin = tokio::net::TcpListener::bind(args.admin_listen).await?;
    run(args, grpc, admin, shutdown_signal()).await
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
