//! The `tally operator` binary from a workstation (issue #18, defect 7): `--kubeconfig` picks the
//! cluster, the ConfigMap namespace must be named outside a pod (never a silent `default`), and a
//! namespace that does not exist is one clear line in the log, not a debug dump on every retry.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;
use tally_tests::fixtures::tools;
use tally_tests::kube_apiserver::KubeApiServer;

/// `tally operator --kubeconfig <file>` with `extra` flags, run for `run_for`; its whole output.
fn operator_output(kubeconfig: &std::path::Path, extra: &[&str], run_for: Duration) -> Result<(bool, String)> {
    let mut child = Command::new(tools::workspace_binary("tally", "tally-operator", "operator"))
        .arg("operator")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--metrics-listen", "127.0.0.1:0", "--lease-duration", "2s"])
        .args(extra)
        .env_remove("POD_NAMESPACE")
        .env_remove("TALLY_CONFIG_MAP_NAMESPACE")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + run_for;
    let exited = loop {
        if child.try_wait()?.is_some() {
            break true;
        }
        if std::time::Instant::now() > deadline {
            child.kill()?;
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((exited && out.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_binary_names_its_namespace_problems_once() -> Result<()> {
    let kube = KubeApiServer::start().await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kube.admin_kubeconfig_yaml())?;

    // Outside a pod without --config-map-namespace: it stops at once, saying what to pass.
    let (ok, text) = operator_output(&kubeconfig, &[], Duration::from_secs(20))?;
    assert!(!ok, "must not start without a namespace: {text}");
    assert!(
        text.contains("no namespace for the config ConfigMap") && text.contains("--config-map-namespace"),
        "{text}"
    );

    // A namespace that does not exist: a dozen lease retries, one line saying so.
    let (_, text) = operator_output(
        &kubeconfig,
        &["--config-map-namespace", "nowhere"],
        Duration::from_secs(6),
    )?;
    let clear = "namespaces \\\"nowhere\\\" not found (HTTP 404): create it";
    let plain = "namespaces \"nowhere\" not found (HTTP 404): create it";
    let said = text.matches(clear).count() + text.matches(plain).count();
    assert_eq!(said, 1, "one clear line about the missing namespace:\n{text}");
    assert!(!text.contains("Status {"), "no debug dump of the API status:\n{text}");
    drop(kube);
    Ok(())
}
