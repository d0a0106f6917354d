//! How the gRPC listener is secured: the TLS flags, and turning them into the listener's
//! certificate files (loaded and kept current by `tls_reload`) plus the [`PeerGate`] that
//! decides, per stream, whether the peer is the gateway.
//!
//! Secure by default: without certificates the ext_proc refuses to start unless
//! `--insecure-plaintext` says plaintext is meant.

use std::path::PathBuf;

use super::tls_reload::{ServerTls, TlsFiles};
use crate::peer::PeerGate;

/// The gRPC listener's TLS flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// The gRPC server's certificate chain (PEM); with --tls-key-file the listener serves TLS.
    #[arg(long, env = "TALLY_TLS_CERT_FILE", value_name = "PATH")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM).
    #[arg(long, env = "TALLY_TLS_KEY_FILE", value_name = "PATH")]
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle (PEM) that signs the gateway's client certificate. With it every connection
    /// must present a certificate this CA signed (mTLS), and only such peers' request
    /// attributes (connection.uri_san_peer_certificate) bind workload identities to teams.
    #[arg(long, env = "TALLY_TLS_CLIENT_CA_FILE", value_name = "PATH")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// A client identity allowed to open ext_proc streams: a URI SAN
    /// (spiffe://cluster.local/ns/tally-system/sa/tally-gateway) or DNS SAN of its certificate.
    /// Repeatable (comma-separated in the environment). None = any certificate the CA signed.
    #[arg(
        long = "trusted-client-id",
        env = "TALLY_TRUSTED_CLIENT_IDS",
        value_name = "ID",
        value_delimiter = ','
    )]
    pub trusted_client_ids: Vec<String>,
    /// Serve gRPC without TLS: any local process can then open ext_proc streams. For the
    /// local demo and tests that bring their own Envoy only.
    #[arg(long, env = "TALLY_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,
    /// With --insecure-plaintext: believe the request attributes of plaintext peers (the
    /// workload identity a team's `principals` are checked against). Without it they are
    /// ignored, and a team that lists principals cannot be charged over plaintext.
    #[arg(long, env = "TALLY_TRUST_PLAINTEXT_PEER_ATTRIBUTES")]
    pub trust_plaintext_peer_attributes: bool,
    /// How often the certificate, key and client CA files are checked for changes,
    /// milliseconds: a renewed set (cert-manager) serves new connections without a restart;
    /// an invalid one is logged and the previous kept.
    #[arg(long, env = "TALLY_TLS_POLL_MS", value_name = "N", default_value_t = 10_000)]
    pub tls_poll_ms: u64,
}

/// The gRPC listener's security, checked and loaded.
pub struct Transport {
    /// `None` = plaintext.
    pub tls: Option<ServerTls>,
    pub peers: PeerGate,
    /// One line for the startup log.
    pub summary: String,
}

impl TlsArgs {
    /// Checks the flags together (every problem at once) and reads the certificate files.
    pub fn transport(&self) -> anyhow::Result<Transport> {
        let problems = self.problems();
        if !problems.is_empty() {
            anyhow::bail!("{}", problems.join("; "));
        }
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Ok(Transport {
                tls: None,
                peers: PeerGate::Anonymous {
                    trust_attributes: self.trust_plaintext_peer_attributes,
                },
                summary: format!(
                    "gRPC in PLAINTEXT (--insecure-plaintext); request attributes {}",
                    if self.trust_plaintext_peer_attributes {
                        "trusted (--trust-plaintext-peer-attributes)"
                    } else {
                        "ignored"
                    }
                ),
            });
        };
        let tls = ServerTls::load(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: self.tls_client_ca_file.clone(),
        })?;
        if self.tls_client_ca_file.is_none() {
            return Ok(Transport {
                tls: Some(tls),
                peers: PeerGate::Anonymous {
                    trust_attributes: false,
                },
                summary: "gRPC over TLS without client certificates; request attributes ignored \
                          (--tls-client-ca-file makes the gateway prove its identity)"
                    .into(),
            });
        }
        let summary = match self.trusted_client_ids.as_slice() {
            [] => "gRPC over mTLS; any client certificate the CA signed is the gateway".to_string(),
            ids => format!("gRPC over mTLS; client ids trusted as the gateway: {}", ids.join(", ")),
        };
        Ok(Transport {
            tls: Some(tls),
            peers: PeerGate::client_certificate(self.trusted_client_ids.clone()),
            summary,
        })
    }

    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let tls = self.tls_cert_file.is_some() || self.tls_key_file.is_some();
        if !tls && !self.insecure_plaintext {
            out.push(
                "no TLS certificate for the gRPC listener: pass --tls-cert-file and --tls-key-file \
                 (TALLY_TLS_CERT_FILE, TALLY_TLS_KEY_FILE; add --tls-client-ca-file to require the \
                 gateway's client certificate), or --insecure-plaintext (TALLY_INSECURE_PLAINTEXT) to \
                 serve gRPC without TLS, for local demos and tests only"
                    .to_string(),
            );
        }
        if tls && self.insecure_plaintext {
            out.push("--insecure-plaintext contradicts --tls-cert-file/--tls-key-file: pass one or the other".into());
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            out.push("--tls-cert-file and --tls-key-file go together".into());
        }
        if self.tls_client_ca_file.is_some() && !tls {
            out.push("--tls-client-ca-file needs --tls-cert-file and --tls-key-file".into());
        }
        if !self.trusted_client_ids.is_empty() && self.tls_client_ca_file.is_none() {
            out.push(
                "--trusted-client-id needs --tls-client-ca-file (only a verified certificate names a client)".into(),
            );
        }
        if self.trust_plaintext_peer_attributes && !self.insecure_plaintext {
            out.push("--trust-plaintext-peer-attributes applies only with --insecure-plaintext".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(f: impl FnOnce(&mut TlsArgs)) -> String {
        let mut args = TlsArgs::default();
        f(&mut args);
        args.problems().join("; ")
    }

    #[test]
    fn without_certificates_or_the_plaintext_flag_nothing_starts() {
        let message = problems(|_| {});
        assert!(
            message.contains("--tls-cert-file") && message.contains("--insecure-plaintext"),
            "{message}"
        );
        assert_eq!(problems(|a| a.insecure_plaintext = true), "");
    }

    #[test]
    fn contradictory_flags_are_named() {
        let both = problems(|a| {
            a.insecure_plaintext = true;
            a.tls_cert_file = Some("c".into());
        });
        assert!(both.contains("contradicts") && both.contains("go together"), "{both}");
        let ids = problems(|a| {
            a.insecure_plaintext = true;
            a.trusted_client_ids = vec!["x".into()];
        });
        assert!(ids.contains("--trusted-client-id needs --tls-client-ca-file"), "{ids}");
        let trust = problems(|a| {
            a.tls_cert_file = Some("c".into());
            a.tls_key_file = Some("k".into());
            a.trust_plaintext_peer_attributes = true;
        });
        assert!(trust.contains("only with --insecure-plaintext"), "{trust}");
    }

    #[test]
    fn plaintext_ignores_peer_attributes_unless_told() {
        let args = TlsArgs {
            insecure_plaintext: true,
            ..TlsArgs::default()
        };
        let t = args.transport().unwrap();
        assert!(t.tls.is_none());
        assert!(matches!(
            t.peers,
            PeerGate::Anonymous {
                trust_attributes: false
            }
        ));
    }

    #[test]
    fn an_unreadable_certificate_is_named() {
        let args = TlsArgs {
            tls_cert_file: Some("/nonexistent/tls.crt".into()),
            tls_key_file: Some("/nonexistent/tls.key".into()),
            ..TlsArgs::default()
        };
        let error = args.transport().err().unwrap().to_string();
        assert!(
            error.starts_with("cannot read --tls-cert-file /nonexistent/tls.crt"),
            "{error}"
        );
    }
}
