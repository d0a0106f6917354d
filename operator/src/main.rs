//! `tally`: generate the CRDs, compile manifests offline, and (later) run the operator.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use tally_operator::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing(cli.log_format);
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tally: {e}");
            ExitCode::FAILURE
        }
    }
}
