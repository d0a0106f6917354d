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

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

const ADMIN_TOKEN: &str = "tally-test-admin-token";

/// Where the cached kube binaries live (`$TALLY_CACHE/bin`, default `~/.cache/tally/bin`).
pub fn tool_bin(name: &str) -> PathBuf {
    let cache = std::env::var_os("TALLY_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/tally")
    });
    cache.join("bin").join(name)
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

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A running etcd + kube-apiserver pair.
pub struct KubeApiServer {
    dir: tempfile::TempDir,
    etcd: Child,
    apiserver: Child,
    /// `https://127.0.0.1:<port>`
    pub url: String,
    ca_pem: String,
}

impl KubeApiServer {
    /// Starts etcd and kube-apiserver and waits until `/readyz` answers `ok`.
    pub async fn start() -> Result<Self> {
        let etcd_bin = require_tool("etcd")?;
        let apiserver_bin = require_tool("kube-apiserver")?;
        let dir = tempfile::Builder::new().prefix("tally-kube-").tempdir()?;
        let d = dir.path();

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
        let ca_pem = std::fs::read_to_string(d.join("ca.crt"))?;

        let etcd_port = free_port();
        let peer_port = free_port();
        let etcd = Command::new(&etcd_bin)
            .args([
                "--name=default",
                &format!("--data-dir={}", d.join("etcd").display()),
                &format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                &format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                &format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ])
            .stdout(log_file(d, "etcd.log")?)
            .stderr(log_file(d, "etcd.log")?)
            .spawn()
            .with_context(|| format!("spawning {}", etcd_bin.display()))?;

        let port = free_port();
        // Build `self` now so that a failure below kills etcd and prints its log.
        let mut server = KubeApiServer {
            dir,
            etcd,
            apiserver: Command::new("true").spawn()?,
            url: format!("https://127.0.0.1:{port}"),
            ca_pem,
        };
        wait_tcp(etcd_port, Duration::from_secs(30))
            .await
            .context("etcd did not listen")?;

        let d = server.dir.path().to_path_buf();
        let p = |f: &str| d.join(f).display().to_string();
        server.apiserver = Command::new(&apiserver_bin)
            .args([
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
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                "--api-audiences=https://kubernetes.default.svc.cluster.local".into(),
                "--authorization-mode=RBAC".into(),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                // No controller-manager runs: the ServiceAccount admission plugin would wait for
                // token controllers that never come.
                "--disable-admission-plugins=ServiceAccount".into(),
                "--enable-priority-and-fairness=false".into(),
                "--v=1".into(),
            ])
            .stdout(log_file(&d, "kube-apiserver.log")?)
            .stderr(log_file(&d, "kube-apiserver.log")?)
            .spawn()
            .with_context(|| format!("spawning {}", apiserver_bin.display()))?;

        let admin = server.admin_client().await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = server.apiserver.try_wait()? {
                bail!("kube-apiserver exited early ({status}); log:\n{}", server.logs());
            }
            let req = http::Request::get("/readyz").body(Vec::new())?;
            match admin.request_text(req).await {
                Ok(body) if body.trim() == "ok" => break,
                _ if Instant::now() > deadline => {
                    bail!("kube-apiserver not ready after 120 s; log:\n{}", server.logs())
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        // The bootstrap controller creates `default` shortly after /readyz; wait for it.
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin);
        while namespaces.get_opt("default").await?.is_none() {
            if Instant::now() > deadline {
                bail!("namespace default never appeared");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(server)
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
                audiences: vec!["https://kubernetes.default.svc.cluster.local".into()],
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
        let tail = |f: &str| {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(80)..].join("\n")
        };
        format!(
            "--- etcd.log ---\n{}\n--- kube-apiserver.log ---\n{}",
            tail("etcd.log"),
            tail("kube-apiserver.log")
        )
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (install it: `apt-get install -y openssl`)")?;
    if !out.status.success() {
        bail!("openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Writes `ca.crt`/`ca.key` and, signed by that CA, `<name>.crt`/`<name>.key` serving
/// 127.0.0.1 (and `localhost`) into `dir`: TLS for loopback test servers.
pub fn loopback_ca_and_cert(dir: &Path, name: &str) -> Result<()> {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = [
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=tally-test-ca",
    ];
    openssl(dir, &[&["req", "-x509"][..], &ec, &ca].concat())?;
    let (key, csr, crt, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    let request = ["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"];
    openssl(dir, &[&["req"][..], &ec, &request].concat())?;
    std::fs::write(
        dir.join(&ext),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    )
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))?)
}

async fn wait_tcp(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
