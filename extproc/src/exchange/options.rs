//! How every exchange behaves: the settings `tally-extproc`'s flags give.

use std::time::Duration;

/// What to do when the store cannot be reached before a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailMode {
    /// Let the call through unreserved; its charge is spooled if still unreachable after it.
    Open,
    /// Refuse the call with a retryable 503.
    Closed,
}

/// When the request body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RequestBody {
    /// Always, before reserving: the tightest bound (the request's `max_tokens`), and a
    /// Converse `serviceTier` given only in the body is recorded.
    Always,
    /// Only when the headers cannot settle admission: a non-streaming call is
    /// reserved from `content-length` and the model's output cap if that fits
    /// every budget, else the body is read for the tighter `max_tokens` bound.
    /// Streaming calls always have it read. Saves one ext_proc round trip per call
    /// (one pod-network round trip when the ext_proc runs apart from Envoy); a call
    /// cut before its response is then charged the output-cap bound.
    WhenNeeded,
}

/// The longest call the chart's Envoy lets through: its Bedrock route timeout, which
/// is Bedrock's own 60-minute request limit (`gateway.routeTimeoutSeconds`).
pub const LONGEST_CALL: Duration = Duration::from_secs(3600);

/// A reservation outlives the longest call by this much, so it can only expire
/// under a call whose ext_proc stopped refreshing it (see `exchange::hold`).
pub const RESERVATION_TTL_MARGIN: Duration = Duration::from_secs(60);

/// [`LONGEST_CALL`] plus [`RESERVATION_TTL_MARGIN`]: 3,660 s.
pub const DEFAULT_RESERVATION_TTL: Duration = LONGEST_CALL.saturating_add(RESERVATION_TTL_MARGIN);

#[derive(Debug, Clone)]
pub struct Options {
    pub team_header: String,
    pub tenant_header: String,
    pub workflow_header: String,
    pub fail_mode: FailMode,
    pub default_region: String,
    /// The region every call goes to, when Envoy's upstream is fixed.
    pub upstream_region: Option<String>,
    pub reservation_ttl: Duration,
    pub ledger_max_len: u64,
    pub request_body: RequestBody,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            team_header: "x-team-id".into(),
            tenant_header: "x-tenant-id".into(),
            workflow_header: "x-workflow-id".into(),
            fail_mode: FailMode::Open,
            default_region: "us-east-1".into(),
            upstream_region: None,
            reservation_ttl: DEFAULT_RESERVATION_TTL,
            ledger_max_len: 1_000_000,
            request_body: RequestBody::Always,
        }
    }
}
