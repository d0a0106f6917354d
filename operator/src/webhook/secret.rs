//! Where the serving certificate comes from, and the `caBundle` the API server trusts it by.
//!
//! Self-managed ([`Source::Secret`]): every replica reads the Secret; the first to find it
//! missing, or holding a pair that no longer fits (other hosts, near expiry), generates a new
//! pair and stores it, with the resourceVersion as a guard so two replicas starting together
//! agree on one pair (the loser re-reads). Only the leader writes the `caBundle` of the
//! ValidatingWebhookConfiguration ([`ensure_ca_bundle`]), from the Secret, on each election
//! and every refresh, so a `helm upgrade` that resets it is repaired within a refresh.
//!
//! Mounted ([`Source::Dir`], cert-manager): `tls.crt` and `tls.key` are read from the directory;
//! cert-manager's CA injector owns the `caBundle`, so it is never touched.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::certs::{self, CertBundle};

/// Keys of the Secret: the usual `kubernetes.io/tls` pair plus the CA bundle.
const CA_KEY: &str = "ca.crt";
const CERT_KEY: &str = "tls.crt";
const KEY_KEY: &str = "tls.key";

/// Where the serving certificate is read from.
#[derive(Clone)]
pub enum Source {
    /// The self-managed pair in this Secret, for these hosts.
    Secret {
        api: Box<Api<Secret>>,
        name: String,
        hosts: Vec<String>,
    },
    /// `tls.crt` and `tls.key` in this directory.
    Dir(PathBuf),
}

impl Source {
    /// The current material; in self-managed mode made (and stored) when missing or unfit.
    pub async fn load(&self) -> Result<CertBundle, String> {
        match self {
            Source::Dir(dir) => {
                let read = |file: &str| {
                    std::fs::read_to_string(dir.join(file)).map_err(|e| format!("{}: {e}", dir.join(file).display()))
                };
                Ok(CertBundle {
                    ca: String::new(),
                    cert: read(CERT_KEY)?,
                    key: read(KEY_KEY)?,
                })
            }
            Source::Secret { api, name, hosts } => load_or_create(api, name, hosts).await,
        }
    }
}

/// The Secret's pair if it fits `hosts`, else a new one stored in its place.
async fn load_or_create(api: &Api<Secret>, name: &str, hosts: &[String]) -> Result<CertBundle, String> {
    let ns = api.namespace().unwrap_or_default().to_string();
    let failed = |what: &str, e: kube::Error| format!("cannot {what} Secret {ns}/{name}: {e}");
    // A few rounds: a conflict means another replica stored a pair first; read that one.
    for _ in 0..5 {
        let existing = api.get_opt(name).await.map_err(|e| failed("read", e))?;
        let now = jiff::Timestamp::now();
        let current = existing.as_ref().and_then(bundle_of);
        let why = match &current {
            Some(bundle) => match certs::fits(bundle, hosts, now) {
                Ok(()) => return Ok(bundle.clone()),
                Err(why) => why,
            },
            None => "it holds no certificate".to_string(),
        };
        let previous_ca = current.as_ref().map(|b| b.ca.as_str());
        let fresh = certs::generate(hosts, now, previous_ca).map_err(|e| e.to_string())?;
        let mut secret = secret_of(name, &fresh);
        let stored = match existing {
            Some(old) => {
                tracing::info!(secret = %format!("{ns}/{name}"), %why, "renewing the webhook certificate");
                secret.metadata.resource_version = old.metadata.resource_version;
                api.replace(name, &PostParams::default(), &secret).await
            }
            None => api.create(&PostParams::default(), &secret).await,
        };
        match stored {
            Ok(_) => return Ok(fresh),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(failed("store", e)),
        }
    }
    Err(format!("Secret {ns}/{name} kept changing while it was being stored"))
}

fn bundle_of(secret: &Secret) -> Option<CertBundle> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| data.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok());
    Some(CertBundle {
        ca: text(CA_KEY)?,
        cert: text(CERT_KEY)?,
        key: text(KEY_KEY)?,
    })
}

fn secret_of(name: &str, bundle: &CertBundle) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "tally-operator".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            (CA_KEY.to_string(), bytes(&bundle.ca)),
            (CERT_KEY.to_string(), bytes(&bundle.cert)),
            (KEY_KEY.to_string(), bytes(&bundle.key)),
        ])),
        ..Secret::default()
    }
}

/// Sets every webhook's `caBundle` in ValidatingWebhookConfiguration `name` to `ca`; `Ok(true)`
/// when it had to change. A missing configuration is an error (the chart creates it).
pub async fn ensure_ca_bundle(api: &Api<ValidatingWebhookConfiguration>, name: &str, ca: &str) -> Result<bool, String> {
    let failed = |what: &str, e: kube::Error| format!("cannot {what} ValidatingWebhookConfiguration {name}: {e}");
    let mut config = api.get(name).await.map_err(|e| failed("read", e))?;
    let wanted = ByteString(ca.as_bytes().to_vec());
    let mut changed = false;
    for webhook in config.webhooks.iter_mut().flatten() {
        if webhook.client_config.ca_bundle.as_ref() != Some(&wanted) {
            webhook.client_config.ca_bundle = Some(wanted.clone());
            changed = true;
        }
    }
    if changed {
        // The read's resourceVersion guards the write: a concurrent change makes it fail, and
        // the next refresh tries again on the new version.
        api.replace(name, &PostParams::default(), &config)
            .await
            .map_err(|e| failed("update", e))?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_pair_reads_back_as_it_was_made() {
        let hosts = certs::service_hosts("w", "ns", &[]);
        let bundle = certs::generate(&hosts, jiff::Timestamp::now(), None).unwrap();
        let secret = secret_of("tls", &bundle);
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(bundle_of(&secret), Some(bundle));
        assert_eq!(bundle_of(&Secret::default()), None);
    }

    #[tokio::test]
    async fn a_mounted_pair_is_read_from_its_directory_and_a_missing_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = certs::generate(&["w.ns.svc".to_string()], jiff::Timestamp::now(), None).unwrap();
        std::fs::write(dir.path().join(CERT_KEY), &bundle.cert).unwrap();
        let missing = Source::Dir(dir.path().to_path_buf()).load().await.unwrap_err();
        assert!(missing.contains("tls.key"), "{missing}");
        std::fs::write(dir.path().join(KEY_KEY), &bundle.key).unwrap();
        let read = Source::Dir(dir.path().to_path_buf()).load().await.unwrap();
        assert_eq!((read.cert, read.key, read.ca), (bundle.cert, bundle.key, String::new()));
    }
}
