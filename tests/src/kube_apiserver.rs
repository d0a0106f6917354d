//! A real Kubernetes control plane for tests: `etcd` + `kube-apiserver`, like envtest.
//!
//! [`KubeApiServer::start`] runs both from `$TALLY_CACHE/bin` (built by `scripts/tools/kube.sh`) on
//! free loopback ports with a temp data dir, a serving cert from a throwaway CA (openssl CLI), a static admin
//! token (group `system:masters`) and service-account signing keys, with `--authorization-mode=RBAC`.
//! So a client for a ServiceAccount ([`KubeApiServer::service_account_client`]) has exactly the
//! permissions RBAC objects grant it, and nothing else. Both processes are killed on drop; their logs
//! are printed only when the test is panicking.
//!
//! No controllers run (no kube-controller-manager): objects are stored and validated, RBAC and CEL
//! rules are enforced, but nothing garbage-collects or schedules.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::fixtures::certs::{loopback_ca_and_cert, openssl};
use crate::fixtures::process::{OwnedProcess, free_port, wait_until};
use crate::fixtures::tools;

const ADMIN_TOKEN: &str = "tally-test-admin-token";
/// The issuer and audience of service-account tokens, as in a cluster.
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Where the cached kube binaries live (`$TALLY_CACHE/bin`, default `~/.cache/tally/bin`).
pub fn tool_bin(name: &str) -> PathBuf {
    tools::tally_bin_dir().join(name)
}

fn require_tool(name: &str) -> Result<PathBuf> {
    let path = tool_bin(name);
    if !path.exists() {
        bail!(
            "{} not found: build it with `scripts/tools/kube.sh` (builds kube-apiserver and etcd from Go modules \
             into $TALLY_CACHE/bin; needs Go >= 1.24)",
            path.display()
        );
    }
    Ok(path)
}

/// A running etcd + kube-apiserver pair.
pub struct KubeApiServer {
    // Dropped in field order: the apiserver stops before its etcd.
    apiserver: OwnedProcess,
    etcd: OwnedProcess,
    /// `https://127.0.0.1:<port>`
    pub url: String,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl KubeApiServer {
    /// Starts etcd and kube-apiserver and waits until `/readyz` answers `ok`.
    pub async fn start() -> Result<Self> {
        let etcd_bin = require_tool("etcd")?;
        let apiserver_bin = require_tool("kube-apiserver")?;
        let dir = tempfile::Builder::new().prefix("tally-kube-").tempdir()?;
        let d = dir.path();
        write_credentials(d)?;
        let ca_pem = std::fs::read_to_string(d.join("ca.crt"))?;

        let etcd_port = free_port();
        let mut etcd = OwnedProcess::spawn("etcd", etcd_command(&etcd_bin, d, etcd_port))?;
        let listening = wait_until(Duration::from_secs(30), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", etcd_port)).await.is_ok()
        })
        .await;
        if !listening {
            bail!(
                "{}",
                etcd.failure(&format!("did not listen on 127.0.0.1:{etcd_port} within 30 s"))
            );
        }
        let port = free_port();
        let apiserver = OwnedProcess::spawn("kube-apiserver", apiserver_command(&apiserver_bin, d, etcd_port, port))?;
        let mut server = KubeApiServer {
            apiserver,
            etcd,
            url: format!("https://127.0.0.1:{port}"),
            ca_pem,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Waits for `/readyz` to answer `ok`, then for the `default` namespace the bootstrap
    /// controller creates shortly after.
    async fn wait_ready(&mut self) -> Result<()> {
        let admin = self.admin_client().await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if self.apiserver.exited().is_some() {
                bail!("{}", self.apiserver.failure("exited early"));
            }
            let req = http::Request::get("/readyz").body(Vec::new())?;
            match admin.request_text(req).await {
                Ok(body) if body.trim() == "ok" => break,
                _ if Instant::now() > deadline => {
                    bail!("{}", self.apiserver.failure("not ready after 120 s"))
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin);
        while namespaces.get_opt("default").await?.is_none() {
            if Instant::now() > deadline {
                bail!("namespace default never appeared");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// A kubeconfig document for this server authenticating with `token`.
    pub fn kubeconfig_yaml(&self, token: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: user\n  user:\n    token: {token}\ncontexts:\n\
             - name: test\n  context:\n    cluster: test\n    user: user\n    namespace: default\ncurrent-context: test\n",
            url = self.url
        )
    }

    /// A kubeconfig document for the `system:masters` admin (for `kubectl`).
    pub fn admin_kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml(ADMIN_TOKEN)
    }

    /// A client config authenticating with a bearer token.
    pub async fn config_with_token(&self, token: &str) -> Result<Config> {
        let kubeconfig = Kubeconfig::from_yaml(&self.kubeconfig_yaml(token))?;
        Ok(Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
    }

    /// A client in group `system:masters` (bypasses RBAC).
    pub async fn admin_client(&self) -> Result<Client> {
        Ok(Client::try_from(self.config_with_token(ADMIN_TOKEN).await?)?)
    }

    /// A client authenticated as ServiceAccount `namespace/name` (which must exist) through a
    /// TokenRequest, exactly as a pod's projected token would: it can do what RBAC grants it.
    pub async fn service_account_client(&self, namespace: &str, name: &str) -> Result<Client> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.admin_client().await?, namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![SERVICE_ACCOUNT_ISSUER.into()],
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = sas
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("TokenRequest for ServiceAccount {namespace}/{name}"))?;
        let token = answer.status.context("TokenRequest without status")?.token;
        Ok(Client::try_from(self.config_with_token(&token).await?)?)
    }

    /// The last lines of both logs.
    pub fn logs(&self) -> String {
        let tail = |process: &OwnedProcess| {
            let text = process.log();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(80)..].join("\n")
        };
        format!(
            "--- etcd.log ---\n{}\n--- kube-apiserver.log ---\n{}",
            tail(&self.etcd),
            tail(&self.apiserver)
        )
    }
}

/// The serving CA and certificate, the service-account signing key pair and the static admin token.
fn write_credentials(d: &Path) -> Result<()> {
    // A CA and a serving cert for 127.0.0.1 signed by it (rustls refuses a self-signed CA
    // certificate as the server's own), and the service-account signing key.
    loopback_ca_and_cert(d, "serving")?;
    openssl(
        d,
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key"],
    )?;
    openssl(d, &["ec", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    std::fs::write(
        d.join("tokens.csv"),
        format!("{ADMIN_TOKEN},tally-admin,tally-admin,\"system:masters\"\n"),
    )?;
    Ok(())
}

fn etcd_command(bin: &Path, d: &Path, port: u16) -> Command {
    let peer_port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args([
        "--name=default",
        &format!("--data-dir={}", d.join("etcd").display()),
        &format!("--listen-client-urls=http://127.0.0.1:{port}"),
        &format!("--advertise-client-urls=http://127.0.0.1:{port}"),
        &format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
        &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
        &format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]);
    cmd
}

fn apiserver_command(bin: &Path, d: &Path, etcd_port: u16, port: u16) -> Command {
    let p = |f: &str| d.join(f).display().to_string();
    let mut cmd = Command::new(bin);
    cmd.args([
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        format!("--secure-port={port}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--cert-dir={}", p("certs")),
        format!("--tls-cert-file={}", p("serving.crt")),
        format!("--tls-private-key-file={}", p("serving.key")),
        format!("--token-auth-file={}", p("tokens.csv")),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
        format!("--api-audiences={SERVICE_ACCOUNT_ISSUER}"),
        "--authorization-mode=RBAC".into(),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        // No controller-manager runs: the ServiceAccount admission plugin would wait for
        // token controllers that never come.
        "--disable-admission-plugins=ServiceAccount".into(),
        "--enable-priority-and-fairness=false".into(),
        "--v=1".into(),
    ]);
    cmd
}
