//! The flags of `tally operator` and the [`Settings`] built from them once at start: everything
//! the reconciler reads and never changes. Defaults that depend on the pod (`$POD_NAMESPACE`,
//! `$POD_NAME`) are resolved here, so nothing later looks at the environment.

use std::net::SocketAddr;
use std::time::Duration;

use tally_store::args::{RedisArgs, RedisTarget};

use super::error::{Error, Result};
use super::leader::LeaseConfig;

/// Flags of `tally operator`; each has a `TALLY_*` environment twin.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Name of the ConfigMap the compiled config's manifest is written to (key `config.json`); its
    /// shards go to `<name>-shard-<i>` (see `--config-shard-bytes`).
    #[arg(long, env = "TALLY_CONFIG_MAP_NAME", default_value = "tally-config")]
    pub config_map_name: String,
    /// Namespace of that ConfigMap [default in a cluster: the pod's namespace ($POD_NAMESPACE, else
    /// the service account's); outside a cluster it must be given].
    #[arg(long, env = "TALLY_CONFIG_MAP_NAMESPACE")]
    pub config_map_namespace: Option<String>,
    /// Kubeconfig file to reach the API server with [default: in-cluster credentials, else
    /// $KUBECONFIG, else ~/.kube/config].
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The Redis the ext_proc writes the counters to; without `--redis-url`, no live spend.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// How often team statuses are refreshed from Redis even without changes (`30s`, `1m`).
    #[arg(long, env = "TALLY_STATUS_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub status_interval: Duration,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "TALLY_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    pub metrics_listen: SocketAddr,
    /// Namespace of the leader-election Lease [default: the ConfigMap's namespace].
    #[arg(long, env = "TALLY_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "TALLY_LEASE_NAME", default_value = "tally-operator")]
    pub lease_name: String,
    /// How long a leader's lease lasts without renewal; a leader steps down after 2/3 of it.
    #[arg(long, env = "TALLY_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// Identity in the Lease [default: $POD_NAME, else the host name, plus a random suffix].
    #[arg(long, env = "TALLY_IDENTITY")]
    pub identity: Option<String>,
    /// Namespaces whose TeamBudgets are watched, comma-separated; empty: all namespaces.
    #[arg(long, env = "TALLY_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// How the compiled config is cut into ConfigMaps, and how large it may grow.
    #[command(flatten)]
    pub delivery: super::config_map::DeliveryArgs,
    /// The validating admission webhook (off unless `--webhook-listen` is set).
    #[command(flatten)]
    pub webhook: crate::webhook::WebhookArgs,
}

/// Parses `30s`, `1m`, `1m30s`, `500ms` or ISO 8601 (`PT30S`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like \"30s\": {e}"))?;
    Duration::try_from(d).map_err(|_| format!("{s:?} must not be negative"))
}

/// What the operator was told, resolved once: read by every pass, changed by none.
#[derive(Debug)]
pub(super) struct Settings {
    /// Where the compiled config is published.
    pub config_map_name: String,
    pub namespace: String,
    /// This replica's identity: its name in the Lease and the events' `reportingInstance`.
    pub identity: String,
    pub status_interval: Duration,
    /// Namespaces whose TeamBudgets are watched; empty: all.
    pub watch_namespaces: Vec<String>,
    pub lease: LeaseConfig,
    /// The Redis holding the counters (URL checked, CA read); `None`: no live spend.
    pub redis: Option<RedisTarget>,
    pub delivery: super::config_map::DeliveryArgs,
}

impl Settings {
    /// Checks the Redis flags first, so a bad one stops the operator before it does anything.
    pub fn from_args(args: &OperatorArgs) -> Result<Self> {
        let redis = args.redis.target()?;
        let identity = identity(args.identity.as_deref());
        let namespace = config_namespace(
            args.config_map_namespace.as_deref(),
            std::env::var("POD_NAMESPACE").ok(),
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok(),
        )?;
        let mut lease = LeaseConfig::new(
            args.leader_election_namespace
                .clone()
                .unwrap_or_else(|| namespace.clone()),
            args.lease_name.clone(),
            identity.clone(),
        );
        lease.lease_duration = args.lease_duration.max(Duration::from_secs(1));
        lease.renew_deadline = lease.lease_duration * 2 / 3;
        lease.retry_period = (lease.lease_duration / 7).max(Duration::from_millis(200));
        Ok(Settings {
            config_map_name: args.config_map_name.clone(),
            namespace,
            identity,
            status_interval: args.status_interval,
            watch_namespaces: args.watch_namespaces.clone(),
            lease,
            redis,
            delivery: args.delivery.clone(),
        })
    }
}

/// Where a pod's service account namespace is mounted: present only in a cluster.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The ConfigMap's namespace: the flag, else the pod's (`$POD_NAMESPACE`, else its service
/// account's). Never a silent `default`: outside a cluster the flag is required.
fn config_namespace(flag: Option<&str>, pod: Option<String>, service_account: Option<String>) -> Result<String> {
    let nonempty = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    flag.map(str::to_string)
        .or_else(|| pod.and_then(nonempty))
        .or_else(|| service_account.and_then(nonempty))
        .ok_or(Error::NoNamespace)
}

/// The base name plus a suffix that differs per process, so a restarted pod with the same name
/// is a new candidate rather than the old holder.
fn identity(flag: Option<&str>) -> String {
    let base = flag
        .map(str::to_string)
        .or_else(|| std::env::var("POD_NAME").ok())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default()
        });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}_{:08x}",
        if base.is_empty() { "tally-operator" } else { &base },
        nanos ^ std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: OperatorArgs,
    }

    #[test]
    fn flags_have_documented_defaults() {
        let cli = Cli::try_parse_from(["tally"]).unwrap();
        let a = cli.args;
        assert_eq!(a.config_map_name, "tally-config");
        assert_eq!(a.status_interval, Duration::from_secs(30));
        assert_eq!(a.metrics_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(a.lease_name, "tally-operator");
        assert!(a.watch_namespaces.is_empty() && a.redis.url.is_none());
        let cli = Cli::try_parse_from(["tally", "--watch-namespaces", "a,b", "--status-interval", "1m30s"]).unwrap();
        assert_eq!(cli.args.watch_namespaces, ["a", "b"]);
        assert_eq!(cli.args.status_interval, Duration::from_secs(90));
        assert!(Cli::try_parse_from(["tally", "--status-interval", "soon"]).is_err());
        let cli = Cli::try_parse_from(["tally", "--kubeconfig", "/tmp/kc"]).unwrap();
        assert_eq!(cli.args.kubeconfig.as_deref(), Some(std::path::Path::new("/tmp/kc")));
    }

    #[test]
    fn the_config_namespace_is_the_pods_and_never_a_silent_default() {
        let ns = |flag: Option<&str>, pod: Option<&str>, sa: Option<&str>| {
            config_namespace(flag, pod.map(Into::into), sa.map(Into::into)).map_err(|e| e.to_string())
        };
        assert_eq!(ns(Some("a"), Some("b"), Some("c")), Ok("a".into()));
        assert_eq!(ns(None, Some("b"), Some("c")), Ok("b".into()));
        assert_eq!(ns(None, Some(""), Some("c\n")), Ok("c".into()));
        let outside = ns(None, None, None).unwrap_err();
        assert!(outside.contains("--config-map-namespace"), "{outside}");
    }
}
