//! `tally-extproc`'s flags, each with its `TALLY_*` environment twin, and the checks that
//! need more than one flag at a time (reported all at once).

use std::net::SocketAddr;
use std::path::PathBuf;

use tally_store::args::RedisArgs;

use super::tls::TlsArgs;
use crate::exchange::behind::WriteBehind;
use crate::exchange::lease::Leases;
use crate::exchange::{FailMode, RequestBody};

/// Where `/metrics`, `/healthz` and `/readyz` are served without `--metrics-listen`.
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:9464";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Redis,
    Memory,
}

/// `tally-extproc` flags; each has a `TALLY_*` environment twin. Not `Debug`: it holds the
/// Redis password, and nothing should print it by accident.
#[derive(Clone, clap::Parser)]
#[command(
    name = "tally-extproc",
    version,
    about = "Envoy ext_proc service that prices, budgets and records AWS Bedrock calls"
)]
pub struct Args {
    /// Compiled config JSON (from the operator or `tally render`); reloaded when it changes.
    #[arg(long, env = "TALLY_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address (ext_proc and grpc.health.v1), TLS unless --insecure-plaintext.
    #[arg(long, env = "TALLY_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// HTTP listen address of /metrics, /healthz and /readyz (no authentication; nothing
    /// else is served there) [default: 0.0.0.0:9464].
    #[arg(long, env = "TALLY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// The old name of --metrics-listen, accepted for one release.
    #[arg(long, env = "TALLY_ADMIN_LISTEN", value_name = "ADDR", hide = true)]
    pub admin_listen: Option<SocketAddr>,
    /// HTTP listen address of the authenticated API: /v1/ledger and /v1/spend. Started only
    /// with --api-token-file.
    #[arg(long, env = "TALLY_API_LISTEN", value_name = "ADDR", default_value = "0.0.0.0:9465")]
    pub api_listen: SocketAddr,
    /// File holding the bearer token the API requires (`Authorization: Bearer <token>`);
    /// re-read when it changes, so a rotated Secret applies without a restart.
    #[arg(long, env = "TALLY_API_TOKEN_FILE", value_name = "PATH")]
    pub api_token_file: Option<PathBuf>,
    /// Where live spend is kept.
    #[arg(long, env = "TALLY_STORE", value_enum, default_value = "redis")]
    pub store: StoreKind,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// What happens to calls while the store is unreachable.
    #[arg(long, env = "TALLY_FAIL_MODE", value_enum, default_value = "open")]
    pub fail_mode: FailMode,
    /// Directory of the disk spool that holds charges while the store is down.
    #[arg(long, env = "TALLY_SPOOL_DIR", default_value = "/var/lib/tally/spool")]
    pub spool_dir: PathBuf,
    /// Most bytes the spool's segment files may take; beyond it new settlements are refused
    /// (counted in `tally_spool_refused_total`), never dropped silently.
    #[arg(long, env = "TALLY_SPOOL_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub spool_max_bytes: u64,
    /// Region recorded when the host does not name one.
    #[arg(long, env = "TALLY_DEFAULT_REGION", default_value = "us-east-1")]
    pub default_region: String,
    /// The region of the Bedrock endpoint Envoy forwards every call to, when it is
    /// fixed (a standalone gateway): calls are priced and recorded in it, whatever
    /// `Host` or ARN the client sends, so no client can pick a cheaper region's price.
    /// Unset: the region the call's host names (the upstream a mesh routes it to).
    #[arg(long, env = "TALLY_UPSTREAM_REGION")]
    pub upstream_region: Option<String>,
    #[arg(long, env = "TALLY_TEAM_HEADER", default_value = "x-team-id")]
    pub team_header: String,
    #[arg(long, env = "TALLY_TENANT_HEADER", default_value = "x-tenant-id")]
    pub tenant_header: String,
    #[arg(long, env = "TALLY_WORKFLOW_HEADER", default_value = "x-workflow-id")]
    pub workflow_header: String,
    /// How long a reservation holds budget if its ext_proc stops refreshing it (a live call's
    /// hold is refreshed every third of this), seconds. Default: the longest call the chart's
    /// Envoy allows (Bedrock's 3,600 s request limit) plus 60 s.
    #[arg(long, env = "TALLY_RESERVATION_TTL_SECONDS", default_value_t = crate::exchange::options::DEFAULT_RESERVATION_TTL.as_secs())]
    pub reservation_ttl_seconds: u64,
    /// Approximate cap of each team's ledger stream in Redis (and of the memory ledger).
    #[arg(long, env = "TALLY_LEDGER_MAX_LEN", default_value_t = 1_000_000)]
    pub ledger_max_len: u64,
    /// When the request body is read: `always` before every reservation (the request's own
    /// `max_tokens` bound); `when-needed` reserves a non-streaming call from `content-length` and
    /// the model's output cap when that fits every budget (one ext_proc round trip less), and
    /// reads the body only otherwise (and always for streams).
    #[arg(long, env = "TALLY_REQUEST_BODY", value_enum, default_value = "always")]
    pub request_body: RequestBody,
    /// Budget leases (issue #19): each replica holds a slice of each active budget as a
    /// reservation in Redis and admits calls against it in memory, asking Redis only for a
    /// call's shortfall; slices shrink to per-call reservations near the limit. Redis only.
    #[arg(long, env = "TALLY_BUDGET_LEASES", value_enum, default_value = "off")]
    pub budget_leases: Switch,
    /// How long a replica's leases outlive it if it stops renewing them (a killed replica's
    /// headroom comes back after this), seconds; renewed every third of it.
    #[arg(long, env = "TALLY_BUDGET_LEASE_TTL_SECONDS", default_value_t = 30)]
    pub budget_lease_ttl_seconds: u64,
    /// Write-behind settlement (issue #19), milliseconds: `0` settles each finished call
    /// before its response goes on (the cost headers read Redis's answer); `N` > 0 queues it
    /// and sends the queue in pipelined batches at most `N` ms later (sooner at 1,024 queued),
    /// so no response waits on Redis. The call's worst case stays held until its batch is
    /// applied (budgets stay strict); live counters lag by up to `N` ms plus a round trip;
    /// `x-tally-budget-remaining-usd` is estimated from the last answer this replica saw; a
    /// SIGKILL loses the queued charges (at most `N` ms of calls), a stop flushes them.
    #[arg(long, env = "TALLY_SETTLE_BEHIND_MS", default_value_t = 0)]
    pub settle_behind_ms: u64,
    /// How often the config file is checked for changes, milliseconds.
    #[arg(long, env = "TALLY_CONFIG_POLL_MS", default_value_t = 1000)]
    pub config_poll_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Args {
    /// This replica's leases, if `--budget-leases on` with the Redis store (the memory store
    /// serves one process, which leases would not speed up: they stay off, said once).
    pub fn leases(&self) -> Option<Leases> {
        match (self.budget_leases, self.store) {
            (Switch::Off, _) => None,
            (Switch::On, StoreKind::Memory) => {
                tracing::warn!("--budget-leases on needs --store redis; admitting per call");
                None
            }
            (Switch::On, StoreKind::Redis) => Some(Leases::new(std::time::Duration::from_secs(
                self.budget_lease_ttl_seconds.max(1),
            ))),
        }
    }

    /// The write-behind settlement queue, if `--settle-behind-ms` is above zero.
    pub fn write_behind(&self) -> Option<WriteBehind> {
        (self.settle_behind_ms > 0).then(|| WriteBehind::new(std::time::Duration::from_millis(self.settle_behind_ms)))
    }

    /// `--metrics-listen`, else the old `--admin-listen`, else the default.
    pub fn metrics_addr(&self) -> anyhow::Result<SocketAddr> {
        match (self.metrics_listen, self.admin_listen) {
            (Some(m), Some(a)) if m != a => anyhow::bail!(
                "--metrics-listen {m} and --admin-listen {a} disagree: --admin-listen is the old name of \
                 --metrics-listen, pass only one"
            ),
            (Some(addr), _) | (None, Some(addr)) => Ok(addr),
            (None, None) => Ok(DEFAULT_METRICS_LISTEN.parse().expect("a socket address")),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(flags: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("tally-extproc").chain(flags.iter().copied())).unwrap()
    }

    #[test]
    fn the_metrics_port_keeps_its_old_name_for_one_release() {
        assert_eq!(parse(&[]).metrics_addr().unwrap().to_string(), DEFAULT_METRICS_LISTEN);
        let new = parse(&["--metrics-listen", "127.0.0.1:1"]);
        assert_eq!(new.metrics_addr().unwrap().to_string(), "127.0.0.1:1");
        let old = parse(&["--admin-listen", "127.0.0.1:2"]);
        assert_eq!(old.metrics_addr().unwrap().to_string(), "127.0.0.1:2");
        let both = parse(&["--metrics-listen", "127.0.0.1:1", "--admin-listen", "127.0.0.1:2"]);
        assert!(both.metrics_addr().unwrap_err().to_string().contains("pass only one"));
    }

    #[test]
    fn help_names_the_security_flags_and_hides_the_old_one() {
        let help = <Args as clap::CommandFactory>::command().render_long_help().to_string();
        for flag in [
            "--tls-cert-file",
            "--tls-key-file",
            "--tls-client-ca-file",
            "--trusted-client-id",
            "--insecure-plaintext",
            "--trust-plaintext-peer-attributes",
            "--metrics-listen",
            "--api-listen",
            "--api-token-file",
            "/v1/ledger",
            "/v1/spend",
        ] {
            assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
        }
        assert!(!help.contains("--admin-listen"), "{help}");
    }
}
