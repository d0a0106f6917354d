//! The gRPC listener's certificate, key and client CA as files: read into a rustls
//! [`ServerConfig`] at start (they must be valid then), then polled. A changed set that loads
//! (PEM parses, the key matches the certificate, the CA bundle holds a CA) is swapped in for new
//! connections; one that does not is logged and the previous config kept, so a bad renewal never
//! leaves the listener without TLS. cert-manager renewals (the kubelet swaps the Secret's
//! `..data` symlink) thus apply without a restart; connections already open keep their
//! certificate. Which config a connection gets is the accept loop's business (`tls_accept`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::sync::watch;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The ALPN protocol gRPC speaks (what tonic's own TLS listener offers).
const ALPN_H2: &[u8] = b"h2";

/// Where the listener's TLS material lives.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// `--tls-cert-file`
    pub cert: PathBuf,
    /// `--tls-key-file`
    pub key: PathBuf,
    /// `--tls-client-ca-file`: with it, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

/// The files' bytes as read once: any change is a new set to load.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// The server config new connections get, and the files it came from.
#[derive(Clone)]
pub struct ServerTls {
    files: TlsFiles,
    live: Arc<ArcSwap<ServerConfig>>,
    loaded: Contents,
}

impl ServerTls {
    /// Reads and checks the files; any problem names the flag.
    pub fn load(files: TlsFiles) -> anyhow::Result<ServerTls> {
        let loaded = files.read()?;
        let config = server_config(&loaded)?;
        Ok(ServerTls {
            files,
            live: Arc::new(ArcSwap::from_pointee(config)),
            loaded,
        })
    }

    /// The config a connection accepted now is handshaken with; swapped by [`ServerTls::watch`].
    pub fn live(&self) -> Arc<ArcSwap<ServerConfig>> {
        self.live.clone()
    }

    /// Polls the files every `every` until `stop`, swapping in each changed set that loads.
    pub fn watch(&self, every: Duration, mut stop: watch::Receiver<bool>) -> impl Future<Output = ()> + use<> {
        let (files, live, mut last) = (self.files.clone(), self.live.clone(), self.loaded.clone());
        async move {
            let mut unreadable = None;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let contents = match files.read() {
                    Ok(c) => c,
                    Err(e) => {
                        let e = format!("{e:#}");
                        if unreadable.as_ref() != Some(&e) {
                            tracing::warn!(error = %e, "cannot re-read the gRPC TLS files; serving the previous certificate");
                            unreadable = Some(e);
                        }
                        continue;
                    }
                };
                unreadable = None;
                if contents != last {
                    reload(&live, &contents);
                    // An invalid set is not retried until the files change again (a half-written
                    // renewal changes them once more when complete).
                    last = contents;
                }
            }
        }
    }
}

/// Swaps in `contents` if they load; otherwise logs why and keeps the current config.
fn reload(live: &ArcSwap<ServerConfig>, contents: &Contents) {
    match server_config(contents) {
        Ok(config) => {
            live.store(Arc::new(config));
            let (serial, not_after) = leaf_summary(&contents.cert).unwrap_or_default();
            tracing::info!(
                serial,
                not_after,
                "gRPC TLS certificate reloaded; new connections use it"
            );
        }
        Err(e) => tracing::error!(
            error = format!("{e:#}"),
            "new gRPC TLS certificate, key or client CA is invalid; keeping the previous one"
        ),
    }
}

impl TlsFiles {
    fn read(&self) -> anyhow::Result<Contents> {
        Ok(Contents {
            cert: read(&self.cert, "--tls-cert-file")?,
            key: read(&self.key, "--tls-key-file")?,
            client_ca: match &self.client_ca {
                Some(ca) => Some(read(ca, "--tls-client-ca-file")?),
                None => None,
            },
        })
    }
}

fn read(path: &Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow!("cannot read {flag} {}: {e}", path.display()))
}

/// The rustls config of one set of files: what tonic's own TLS listener builds (safe default
/// protocol versions, ALPN h2, client certificates required with a CA), with the workspace's
/// crypto provider named rather than taken from the process default.
fn server_config(c: &Contents) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = CertificateDer::pem_slice_iter(&c.cert)
        .collect::<Result<Vec<_>, _>>()
        .context("--tls-cert-file is not PEM")?;
    if chain.is_empty() {
        bail!("--tls-cert-file holds no certificate");
    }
    let key = PrivateKeyDer::from_pem_slice(&c.key).context("--tls-key-file holds no PEM private key")?;
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &c.client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => builder.with_client_cert_verifier(client_verifier(pem, provider)?),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .context("--tls-key-file does not fit --tls-cert-file")?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

fn client_verifier(
    pem: &[u8],
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    // Like tonic: certificates of the bundle that do not parse are skipped, not fatal.
    roots.add_parsable_certificates(CertificateDer::pem_slice_iter(pem).filter_map(Result::ok));
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .context("--tls-client-ca-file holds no usable CA certificate")
}

/// The leaf's serial (hex) and expiry, for the reload log line.
fn leaf_summary(pem: &[u8]) -> Option<(String, String)> {
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    Some((cert.raw_serial_as_string(), cert.validity().not_after.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(cert: &str, key: &str, client_ca: Option<&str>) -> Contents {
        Contents {
            cert: cert.into(),
            key: key.into(),
            client_ca: client_ca.map(Into::into),
        }
    }

    #[test]
    fn a_set_that_does_not_parse_is_named() {
        let error = |c: Contents| format!("{:#}", server_config(&c).expect_err("invalid"));
        assert!(error(contents("", "", None)).contains("--tls-cert-file holds no certificate"));
        let garbage = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(error(contents(garbage, "", None)).contains("--tls-cert-file is not PEM"));
    }

    #[test]
    fn an_invalid_new_set_keeps_the_live_config() {
        let before = Arc::new(
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new())),
        );
        let live = ArcSwap::new(before.clone());
        reload(&live, &contents("not a certificate", "not a key", None));
        assert!(Arc::ptr_eq(&live.load_full(), &before));
    }
}
