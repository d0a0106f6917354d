//! Who is on the other end of an ext_proc stream, and whether what it says about the
//! *application* (the request attributes Envoy sends, such as
//! `connection.uri_san_peer_certificate`) may be believed.
//!
//! Only a peer that proved its identity with a client certificate the CA signed, and whose
//! certificate names a trusted client id, is the gateway: its attributes bind workload
//! identities to teams. Anyone else may still open streams when the transport lets them
//! (TLS without client certificates, plaintext), but the attributes they send are ignored,
//! so a forged principal cannot charge a team that lists `principals`. This module decides;
//! the TLS handshake itself (chain, expiry, CA) is rustls' job before a stream exists.

use std::sync::Mutex;

use tonic::Status;
use tonic::transport::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Whether the peer of a stream is the gateway (its request attributes count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Request attributes name the application's workload identity.
    Attributes,
    /// Request attributes are ignored: the peer is not known to be the gateway.
    Nothing,
}

/// How peers are told apart, from the transport the ext_proc serves on.
#[derive(Debug)]
pub enum PeerGate {
    /// mTLS: every connection presented a certificate the client CA signed. With
    /// `trusted_ids` empty any such certificate is the gateway; otherwise one of its URI or
    /// DNS SANs must be listed, and other certificates cannot open streams at all.
    ClientCertificate {
        trusted_ids: Vec<String>,
        /// The last leaf certificate admitted (the gateway reconnects rarely and sends one
        /// stream per call): its DER, so the certificate is parsed once, not per call.
        last_admitted: Mutex<Option<Vec<u8>>>,
    },
    /// TLS without client certificates, or plaintext: nobody proved who they are.
    /// `trust_attributes` (`--trust-plaintext-peer-attributes`) believes them anyway, for
    /// tests and demos that bring their own Envoy.
    Anonymous { trust_attributes: bool },
}

impl PeerGate {
    pub fn client_certificate(trusted_ids: Vec<String>) -> PeerGate {
        PeerGate::ClientCertificate {
            trusted_ids,
            last_admitted: Mutex::new(None),
        }
    }

    /// Admits a stream from a peer that presented `certs` (leaf first), or refuses it.
    pub fn admit(&self, certs: Option<&[CertificateDer<'static>]>) -> Result<Trust, Status> {
        match self {
            PeerGate::Anonymous { trust_attributes: true } => Ok(Trust::Attributes),
            PeerGate::Anonymous {
                trust_attributes: false,
            } => Ok(Trust::Nothing),
            PeerGate::ClientCertificate {
                trusted_ids,
                last_admitted,
            } => {
                // rustls already refused connections without a certificate the CA signed;
                // a missing one here means the transport is not what this gate was built for.
                let leaf = certs
                    .and_then(|c| c.first())
                    .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
                if trusted_ids.is_empty() {
                    return Ok(Trust::Attributes);
                }
                let mut last = last_admitted.lock().unwrap_or_else(|e| e.into_inner());
                if last.as_deref() == Some(leaf.as_ref()) {
                    return Ok(Trust::Attributes);
                }
                let ids = certificate_ids(leaf)
                    .map_err(|e| Status::unauthenticated(format!("unreadable client certificate: {e}")))?;
                if ids.iter().any(|id| trusted_ids.contains(id)) {
                    *last = Some(leaf.to_vec());
                    return Ok(Trust::Attributes);
                }
                tracing::warn!(identities = ?ids, "refused an ext_proc stream: the client certificate names no trusted client id");
                Err(Status::permission_denied(format!(
                    "client certificate identities {ids:?} are not trusted (--trusted-client-id)"
                )))
            }
        }
    }
}

/// The URI and DNS subject alternative names of a DER certificate.
pub fn certificate_ids(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? else {
        return Ok(vec![]);
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(uri.to_string()),
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_peers_are_trusted_only_when_told_to() {
        let trusting = PeerGate::Anonymous { trust_attributes: true };
        assert_eq!(trusting.admit(None).unwrap(), Trust::Attributes);
        let wary = PeerGate::Anonymous {
            trust_attributes: false,
        };
        assert_eq!(wary.admit(None).unwrap(), Trust::Nothing);
    }

    #[test]
    fn a_certificate_gate_refuses_a_peer_without_one() {
        let gate = PeerGate::client_certificate(vec![]);
        assert_eq!(gate.admit(None).unwrap_err().code(), tonic::Code::Unauthenticated);
        assert_eq!(gate.admit(Some(&[])).unwrap_err().code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let gate = PeerGate::client_certificate(vec!["spiffe://x".into()]);
        let junk = [CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])];
        assert_eq!(
            gate.admit(Some(&junk)).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}
