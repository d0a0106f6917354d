//! The flags of the admission webhook, part of `tally operator`'s; each has a `TALLY_*` twin.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of the validating admission webhook; it is off unless `--webhook-listen` is set.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Address the validating admission webhook serves HTTPS on (path `/validate`), e.g.
    /// `0.0.0.0:9443`. Unset: no webhook.
    #[arg(long, env = "TALLY_WEBHOOK_LISTEN")]
    pub webhook_listen: Option<SocketAddr>,
    /// Directory holding the serving certificate as `tls.crt` and `tls.key` (a mounted
    /// cert-manager Secret), re-read when they change. Unset: the operator makes its own CA and
    /// certificate, keeps them in `--webhook-secret-name` and fills the webhook's caBundle.
    #[arg(long, env = "TALLY_WEBHOOK_CERT_DIR")]
    pub webhook_cert_dir: Option<PathBuf>,
    /// Secret (in the operator's namespace) holding the self-managed CA and certificate, shared
    /// by replicas and restarts.
    #[arg(long, env = "TALLY_WEBHOOK_SECRET_NAME", default_value = "tally-webhook-tls")]
    pub webhook_secret_name: String,
    /// Service the API server reaches the webhook through; the self-managed certificate names
    /// `<service>.<namespace>.svc` and its other in-cluster forms.
    #[arg(long, env = "TALLY_WEBHOOK_SERVICE_NAME", default_value = "tally-webhook")]
    pub webhook_service_name: String,
    /// More DNS names or IP addresses for the self-managed certificate, comma-separated.
    #[arg(long, env = "TALLY_WEBHOOK_CERT_HOSTS", value_delimiter = ',')]
    pub webhook_cert_hosts: Vec<String>,
    /// ValidatingWebhookConfiguration whose webhooks' `caBundle` the leader keeps equal to the
    /// self-managed CA. Empty: the caBundle is left alone.
    #[arg(long, env = "TALLY_WEBHOOK_CONFIGURATION_NAME", default_value = "tally-webhook")]
    pub webhook_configuration_name: String,
}

impl Default for WebhookArgs {
    /// No webhook; the other flags at their documented defaults.
    fn default() -> Self {
        WebhookArgs {
            webhook_listen: None,
            webhook_cert_dir: None,
            webhook_secret_name: "tally-webhook-tls".into(),
            webhook_service_name: "tally-webhook".into(),
            webhook_cert_hosts: vec![],
            webhook_configuration_name: "tally-webhook".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: WebhookArgs,
    }

    #[test]
    fn the_webhook_is_off_by_default_and_defaults_match_the_flags() {
        let parsed = Cli::try_parse_from(["tally"]).unwrap().args;
        let default = WebhookArgs::default();
        assert_eq!(parsed.webhook_listen, None);
        assert_eq!(parsed.webhook_secret_name, default.webhook_secret_name);
        assert_eq!(parsed.webhook_service_name, default.webhook_service_name);
        assert_eq!(parsed.webhook_configuration_name, default.webhook_configuration_name);
        let parsed = Cli::try_parse_from([
            "tally",
            "--webhook-listen",
            "127.0.0.1:9443",
            "--webhook-cert-hosts",
            "127.0.0.1,localhost",
        ])
        .unwrap()
        .args;
        assert_eq!(parsed.webhook_listen, Some("127.0.0.1:9443".parse().unwrap()));
        assert_eq!(parsed.webhook_cert_hosts, ["127.0.0.1", "localhost"]);
    }
}
