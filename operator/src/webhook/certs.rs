//! The webhook's TLS material, pure: a self-managed CA and the serving certificate it signs
//! (generated with rcgen), whether a stored pair still fits (hosts, expiry), and the rustls
//! server config serving it. Where the material is kept (a Secret, a mounted directory) is
//! [`super::secret`]'s business.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a generated CA and serving certificate are valid. Long, as self-managed webhook
/// certificates usually are: nothing but this webhook trusts the CA, and the pair is
/// regenerated (at start) when its hosts change or it comes within [`RENEW_BEFORE_DAYS`] of expiry.
const VALID_YEARS: i16 = 10;
/// A certificate this close to its end is replaced at start.
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// PEM text of the webhook's TLS: what clients trust and what the server presents.
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    /// The CA certificate(s) the `caBundle` carries: the current CA, then the previous one so
    /// replicas still serving the old certificate keep working through a renewal.
    pub ca: String,
    /// The serving certificate.
    pub cert: String,
    /// The serving certificate's private key.
    pub key: String,
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle")
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

/// Why TLS material could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the webhook certificate is unusable: {0}")]
    Unusable(String),
}

/// A new CA and a serving certificate for `hosts` (DNS names or IP addresses) signed by it;
/// `previous_ca` (the first certificate of it) stays in the CA bundle after the new CA.
pub fn generate(hosts: &[String], now: jiff::Timestamp, previous_ca: Option<&str>) -> Result<CertBundle, CertError> {
    let (start, end) = validity(now);
    let ymd = |d: jiff::civil::Date| {
        rcgen::date_time_ymd(i32::from(d.year()), d.month().unsigned_abs(), d.day().unsigned_abs())
    };
    let (not_before, not_after) = (ymd(start), ymd(end));
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "tally-webhook-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut leaf = CertificateParams::new(hosts.to_vec())?;
    let common_name = hosts.first().map_or("tally-webhook", String::as_str);
    leaf.distinguished_name.push(DnType::CommonName, common_name);
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (leaf.not_before, leaf.not_after) = (not_before, not_after);
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &Issuer::new(ca, &ca_key))?;

    let mut bundle = ca_cert.pem();
    if let Some(previous) = previous_ca.and_then(first_certificate_pem) {
        bundle.push_str(&previous);
    }
    Ok(CertBundle {
        ca: bundle,
        cert: leaf_cert.pem(),
        key: leaf_key.serialize_pem(),
    })
}

/// First and last day of a certificate made `now`: from a day back, for clocks a little behind ours.
fn validity(now: jiff::Timestamp) -> (jiff::civil::Date, jiff::civil::Date) {
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let start = today.yesterday().unwrap_or(today);
    (start, start.saturating_add(jiff::Span::new().years(VALID_YEARS)))
}

/// The first certificate of a PEM bundle, re-encoded as PEM.
fn first_certificate_pem(bundle: &str) -> Option<String> {
    let der = CertificateDer::pem_slice_iter(bundle.as_bytes()).next()?.ok()?;
    Some(pem_of(&der))
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// Why `bundle` must be replaced for serving `hosts` at `now`; `Ok` when it still fits.
pub fn fits(bundle: &CertBundle, hosts: &[String], now: jiff::Timestamp) -> Result<(), String> {
    let der = CertificateDer::pem_slice_iter(bundle.cert.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or("tls.crt holds no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| format!("tls.crt: {e}"))?;
    let left = cert.validity().not_after.timestamp() - now.as_second();
    if left < RENEW_BEFORE_DAYS * 86_400 {
        return Err(format!("it expires in {} days", left / 86_400));
    }
    let names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| san.value.general_names.iter().filter_map(general_name).collect())
        .unwrap_or_default();
    match hosts.iter().find(|h| !names.contains(h)) {
        Some(missing) => Err(format!("it does not name {missing}")),
        None => server_config(bundle).map(|_| ()).map_err(|e| e.to_string()),
    }
}

fn general_name(name: &x509_parser::extensions::GeneralName<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    match *name {
        GeneralName::DNSName(dns) => Some(dns.to_string()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
            _ => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        }
        .map(|ip| ip.to_string()),
        _ => None,
    }
}

/// The server config presenting `bundle`'s certificate (HTTP/1.1 and HTTP/2 offered).
pub fn server_config(bundle: &CertBundle) -> Result<Arc<ServerConfig>, CertError> {
    let unusable = |what: &str, e: &dyn std::fmt::Display| CertError::Unusable(format!("{what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(bundle.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable("tls.crt", &e))?;
    if chain.is_empty() {
        return Err(CertError::Unusable("tls.crt holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(bundle.key.as_bytes()).map_err(|e| unusable("tls.key", &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| unusable("tls.crt and tls.key", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The DNS names a Service is reached by from inside the cluster, plus `extra` hosts.
pub fn service_hosts(service: &str, namespace: &str, extra: &[String]) -> Vec<String> {
    let mut hosts = vec![
        format!("{service}.{namespace}.svc"),
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    hosts.extend(extra.iter().filter(|h| !h.is_empty()).cloned());
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        service_hosts("tally-webhook", "tally-system", &["127.0.0.1".into()])
    }

    #[test]
    fn a_generated_pair_fits_its_hosts_until_close_to_expiry() {
        let now = jiff::Timestamp::now();
        let bundle = generate(&hosts(), now, None).unwrap();
        assert_eq!(fits(&bundle, &hosts(), now), Ok(()));
        assert!(bundle.ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let other = vec!["elsewhere.svc".to_string()];
        assert_eq!(fits(&bundle, &other, now), Err("it does not name elsewhere.svc".into()));
        let later = now + jiff::SignedDuration::from_hours(24 * 366 * 10 - 24 * 20);
        assert!(fits(&bundle, &hosts(), later).unwrap_err().starts_with("it expires in"));
    }

    #[test]
    fn a_renewal_keeps_the_previous_ca_trusted() {
        let now = jiff::Timestamp::now();
        let first = generate(&hosts(), now, None).unwrap();
        let second = generate(&hosts(), now, Some(&first.ca)).unwrap();
        let cas: Vec<_> = CertificateDer::pem_slice_iter(second.ca.as_bytes()).collect();
        assert_eq!(cas.len(), 2);
        assert!(second.ca.ends_with(&first.ca));
        // A third renewal still carries two, not a growing list.
        let third = generate(&hosts(), now, Some(&second.ca)).unwrap();
        assert_eq!(CertificateDer::pem_slice_iter(third.ca.as_bytes()).count(), 2);
    }

    #[test]
    fn broken_material_is_named() {
        let now = jiff::Timestamp::now();
        let mut bundle = generate(&hosts(), now, None).unwrap();
        bundle.key = "not a key".into();
        assert!(server_config(&bundle).unwrap_err().to_string().contains("tls.key"));
        bundle.cert = String::new();
        assert_eq!(fits(&bundle, &hosts(), now), Err("tls.crt holds no certificate".into()));
    }
}
