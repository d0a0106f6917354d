//! `bedrock-sim`: the simulated Bedrock Runtime as a standalone server
//! (see `tally_tests::bedrock_sim` for what it serves).

use std::time::Duration;

use clap::Parser;
use tally_tests::bedrock_sim::{SimOptions, serve, sigv4::SigV4Verifier};

#[derive(Parser, Debug)]
#[command(about = "Simulated AWS Bedrock Runtime for Tally's tests")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "BEDROCK_SIM_LISTEN", default_value = "127.0.0.1:8090")]
    listen: String,
    /// Do not send the X-Amzn-Bedrock-*-Token-Count headers.
    #[arg(long, env = "BEDROCK_SIM_NO_TOKEN_HEADERS")]
    no_token_headers: bool,
    /// Delay before every answer, in milliseconds.
    #[arg(long, env = "BEDROCK_SIM_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Refuse requests not SigV4-signed by --access-key/--secret-key for --region.
    #[arg(long, env = "BEDROCK_SIM_VERIFY_SIGV4", requires_all = ["access_key", "secret_key"])]
    verify_sigv4: bool,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: Option<String>,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let verify_sigv4 = match (args.verify_sigv4, args.access_key, args.secret_key) {
        (true, Some(access_key), Some(secret_key)) => Some(SigV4Verifier {
            access_key,
            secret_key,
            region: args.region,
        }),
        _ => None,
    };
    let opts = SimOptions {
        token_headers: !args.no_token_headers,
        latency: Duration::from_millis(args.latency_ms),
        verify_sigv4,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "bedrock-sim listening");
    serve(listener, opts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
