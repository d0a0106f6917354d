//! What the binary says and does at start: unsecured, it refuses; `--help` and README's
//! flag table list the same flags.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use tally_tests::fixtures::process::{OwnedProcess, free_port, wait_until};
use tally_tests::fixtures::tools;

fn extproc() -> Command {
    Command::new(tools::workspace_binary("tally-extproc", "tally-extproc", "extproc"))
}

/// Runs `tally-extproc args…` until it exits (within 20 s); returns its log.
async fn run_to_exit(args: &[&str]) -> (Option<std::process::ExitStatus>, String) {
    let mut cmd = extproc();
    cmd.args(args).env_remove("TALLY_INSECURE_PLAINTEXT");
    let mut process = OwnedProcess::spawn("tally-extproc", cmd).expect("spawn tally-extproc");
    let mut status = None;
    wait_until(Duration::from_secs(20), || {
        status = process.exited();
        std::future::ready(status.is_some())
    })
    .await;
    (status, process.log())
}

#[tokio::test]
async fn without_certificates_or_insecure_plaintext_it_refuses_to_start() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let (status, log) = run_to_exit(&[
        "--store",
        "memory",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        &metrics,
    ])
    .await;
    let status = status.expect("exits by itself");
    assert!(!status.success(), "{log}");
    for named in ["--tls-cert-file", "--tls-key-file", "--insecure-plaintext"] {
        assert!(log.contains(named), "the refusal names {named}: {log}");
    }
}

#[tokio::test]
async fn without_a_token_file_the_api_is_not_started() {
    let (metrics, api) = (free_port(), free_port());
    let mut cmd = extproc();
    cmd.args(["--store", "memory", "--insecure-plaintext", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .args(["--api-listen", &format!("127.0.0.1:{api}")]);
    let process = OwnedProcess::spawn("tally-extproc", cmd).expect("spawn tally-extproc");
    let url = format!("http://127.0.0.1:{metrics}/readyz");
    assert!(
        tally_tests::fixtures::admin::wait_ok(&url, Duration::from_secs(20)).await,
        "{}",
        process.log()
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", api)).is_err(),
        "nothing listens on the API port"
    );
    assert!(
        process.log().contains("API not started: no --api-token-file"),
        "{}",
        process.log()
    );
}

/// Every `--flag` in `text`.
fn flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("--") {
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        let before = text[..i].chars().next_back();
        if name.len() > 1 && !matches!(before, Some(c) if c.is_alphanumeric() || c == '-') {
            out.insert(format!("--{name}"));
        }
    }
    out
}

#[test]
fn readme_and_help_list_the_same_flags() {
    let out = extproc().arg("--help").output().expect("tally-extproc --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let readme = std::fs::read_to_string(tools::workspace_root().join("README.md")).expect("README.md");
    let section = readme
        .split("### `tally-extproc`")
        .nth(1)
        .and_then(|s| s.split("\n### ").next())
        .expect("README has a `tally-extproc` section");
    let table: String = section
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| {
            // The flag column only: the meaning column may mention other programs' flags.
            l.split(" | ").next().unwrap_or_default().to_string() + "\n"
        })
        .collect();
    let mut in_help = flags(&help);
    in_help.remove("--help");
    in_help.remove("--version");
    assert_eq!(flags(&table), in_help, "README's flag table vs --help");
    for endpoint in ["/v1/ledger", "/v1/spend", "/metrics"] {
        assert!(
            help.contains(endpoint) && section.contains(endpoint),
            "{endpoint} in --help and README"
        );
    }
}

#[tokio::test]
async fn a_redis_password_never_reaches_the_log() {
    let closed = free_port();
    let url = format!("redis://tally:s3cret-in-url@127.0.0.1:{closed}");
    let metrics = format!("127.0.0.1:{}", free_port());
    let (status, log) = run_to_exit(&[
        "--insecure-plaintext",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        &metrics,
        "--redis-url",
        &url,
        "--redis-password",
        "s3cret-flag",
    ])
    .await;
    assert!(!status.expect("exits: Redis is unreachable").success(), "{log}");
    assert!(
        log.contains(&format!("redis://tally:***@127.0.0.1:{closed}")),
        "the URL is named, redacted: {log}"
    );
    assert!(!log.contains("s3cret"), "a password reached the log: {log}");
}
