//! A renewed server certificate (cert-manager rewriting the Secret, the kubelet swapping the
//! volume's `..data` symlink) serves new connections without a restart; a broken renewal is
//! logged and the previous certificate kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tally_tests::fixtures::certs::{Leaf, TestCa, Usage};
use tally_tests::fixtures::extproc::{ExtProc, ExtProcOptions, GrpcSecurity};
use tally_tests::fixtures::process::wait_until;

use crate::{GATEWAY_ID, config};

/// How often the ext_proc under test re-reads its certificate files.
const POLL_MS: u64 = 100;
/// How long a change may take to show: many poll intervals, for a loaded machine.
const APPLIES_WITHIN: Duration = Duration::from_secs(10);

/// A Secret volume as the kubelet lays it out: `tls.crt`, `tls.key` and `ca.crt` are symlinks
/// into `..data`, itself a symlink to the current timestamped directory. An update writes a new
/// directory and renames a fresh `..data` symlink over the old one (atomic for readers).
struct SecretVolume {
    dir: PathBuf,
    generation: u32,
}

const FILES: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

impl SecretVolume {
    fn create(dir: &Path) -> SecretVolume {
        std::fs::create_dir_all(dir).expect("volume dir");
        for name in FILES {
            std::os::unix::fs::symlink(Path::new("..data").join(name), dir.join(name)).expect("file symlink");
        }
        SecretVolume {
            dir: dir.to_path_buf(),
            generation: 0,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Publishes a new version of the Secret: `cert`, `key` and `ca` copied into a new
    /// directory, then `..data` swapped to it.
    fn publish(&mut self, cert: &Path, key: &Path, ca: &Path) {
        self.generation += 1;
        let version = format!("..2026_01_01_00_00_{:02}.{}", self.generation, self.generation);
        let target = self.dir.join(&version);
        std::fs::create_dir(&target).expect("version dir");
        for (name, from) in FILES.iter().zip([cert, key, ca]) {
            std::fs::copy(from, target.join(name)).expect("copy into the version dir");
        }
        let swap = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &swap).expect("new ..data symlink");
        std::fs::rename(&swap, self.dir.join("..data")).expect("swap ..data");
    }
}

/// The first PEM certificate of `text`, whitespace removed: what two copies of one
/// certificate have in common.
fn first_pem(text: &str) -> Option<String> {
    let begin = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text[begin..].find("-----END CERTIFICATE-----")? + begin;
    Some(text[begin..end].split_whitespace().collect())
}

fn pem_of(leaf: &Leaf) -> String {
    let text = std::fs::read_to_string(&leaf.cert).expect("certificate file");
    first_pem(&text).expect("a PEM certificate")
}

/// Opens a new mTLS connection as `client` (verifying the server against `ca`) and returns the
/// server certificate it was shown.
async fn served_certificate(port: u16, ca: &Path, client: &Leaf) -> Result<String, String> {
    let out = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-alpn", "h2", "-verify_return_error"])
        .arg("-CAfile")
        .arg(ca)
        .arg("-cert")
        .arg(&client.cert)
        .arg("-key")
        .arg(&client.key)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("running openssl s_client: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match first_pem(&text) {
        Some(pem) if out.status.success() => Ok(pem),
        _ => Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr))),
    }
}

/// Waits until a new connection is shown `expected`; false if it never is.
async fn serves(ext: &ExtProc, ca: &Path, client: &Leaf, expected: &str) -> bool {
    wait_until(APPLIES_WITHIN, || async {
        served_certificate(ext.grpc_port(), ca, client).await.as_deref() == Ok(expected)
    })
    .await
}

#[tokio::test]
async fn a_renewed_certificate_serves_new_connections_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::create(&dir.path().join("ca"), "tally-extproc-ca").expect("CA");
    let first = ca.loopback_server("extproc-a").expect("certificate A");
    let renewed = ca.loopback_server("extproc-b").expect("certificate B");
    let unmatched = ca.loopback_server("extproc-c").expect("certificate C");
    let gateway = ca
        .issue("gateway", Usage::Client, &[&format!("URI:{GATEWAY_ID}")])
        .expect("gateway certificate");
    let mut volume = SecretVolume::create(&dir.path().join("secret"));
    volume.publish(&first.cert, &first.key, &ca.cert());

    let mut opts = ExtProcOptions::new(config(), None);
    opts.grpc_security = GrpcSecurity::Tls {
        cert: volume.path("tls.crt"),
        key: volume.path("tls.key"),
        client_ca: Some(volume.path("ca.crt")),
        trusted_ids: vec![GATEWAY_ID.into()],
    };
    opts.extra_args = vec!["--tls-poll-ms".into(), POLL_MS.to_string()];
    let ext = ExtProc::start(opts).await;
    let ca_file = ca.cert();
    let seen = served_certificate(ext.grpc_port(), &ca_file, &gateway).await;
    assert_eq!(seen, Ok(pem_of(&first)), "at start: certificate A\n{}", ext.log());

    volume.publish(&renewed.cert, &renewed.key, &ca.cert());
    assert!(
        serves(&ext, &ca_file, &gateway, &pem_of(&renewed)).await,
        "the renewed certificate B serves new connections\n{}",
        ext.log()
    );
    assert!(ext.log().contains("gRPC TLS certificate reloaded"), "{}", ext.log());

    // A renewal whose key is not the certificate's: logged, B kept.
    volume.publish(&unmatched.cert, &first.key, &ca.cert());
    let logged = wait_until(APPLIES_WITHIN, || async {
        ext.log().contains("keeping the previous one")
    })
    .await;
    assert!(logged, "the broken renewal is logged\n{}", ext.log());
    assert!(
        ext.log().contains("--tls-key-file does not fit --tls-cert-file"),
        "{}",
        ext.log()
    );
    let seen = served_certificate(ext.grpc_port(), &ca_file, &gateway).await;
    assert_eq!(seen, Ok(pem_of(&renewed)), "still certificate B\n{}", ext.log());
}
