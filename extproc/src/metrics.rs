//! Prometheus metrics. Money is exported as integer nano-USD counters
//! (`tally_spend_nanos_total`): dashboards divide by 1e9 at display time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub team: String,
    pub tenant: String,
    pub workflow: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub team: String,
    pub tenant: String,
    pub workflow: String,
    pub model: String,
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReservationLabels {
    /// `headers` (tentative, from `content-length` and the output cap) or `body`.
    pub bound: &'static str,
    /// `held`, `refused` (from the headers: the body is read next), `duplicate` or `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub team: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TeamLabels {
    pub team: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GenerationLabels {
    pub generation: String,
}

/// Which attribution a call arrived without: `team` (charged to `unknown`), `tenant` or
/// `workflow`. Bounded on purpose: never a client-sent value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MissingLabels {
    pub missing: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

/// What became of the call spans the ext_proc made (the `trace` module): counted where
/// the span queue and its exporter are, so a collector's trouble is visible here.
#[derive(Clone, Debug, Default)]
pub struct TraceCounters {
    /// Spans not queued because the queue was full (or its worker gone).
    pub dropped: Counter,
    /// Spans the collector accepted.
    pub exported: Counter,
    /// Spans in batches the exporter could not deliver (collector down, timeout).
    pub failed: Counter,
}

pub struct Metrics {
    pub registry: Registry,
    pub spend: Family<CallLabels, Counter>,
    pub tokens: Family<TokenLabels, Counter>,
    pub decisions: Family<DecisionLabels, Counter>,
    pub budget_remaining: Family<TeamLabels, Gauge>,
    pub budget_limit: Family<TeamLabels, Gauge>,
    pub decision_seconds: Histogram,
    pub reservations: Family<ReservationLabels, Counter>,
    pub store_errors: Family<OpLabels, Counter>,
    pub spool_depth: Gauge,
    pub settle_queue_depth: Gauge,
    pub settle_batches: Counter,
    pub spool_replayed: Counter,
    pub spool_quarantined: Counter,
    pub spool_refused: Counter,
    pub config_info: Family<GenerationLabels, Gauge>,
    pub config_reloads: Family<OutcomeLabels, Counter>,
    pub unpriced: Family<ModelLabels, Counter>,
    pub stream_decode_errors: Counter,
    pub unattributed_calls: Family<MissingLabels, Counter>,
    pub unattributed_spend: Family<MissingLabels, Counter>,
    pub traces: TraceCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("tally"),
            spend: Family::<CallLabels, Counter>::default(),
            tokens: Family::<TokenLabels, Counter>::default(),
            decisions: Family::<DecisionLabels, Counter>::default(),
            budget_remaining: Family::<TeamLabels, Gauge>::default(),
            budget_limit: Family::<TeamLabels, Gauge>::default(),
            decision_seconds: Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
            ]),
            reservations: Family::<ReservationLabels, Counter>::default(),
            store_errors: Family::<OpLabels, Counter>::default(),
            spool_depth: Gauge::default(),
            settle_queue_depth: Gauge::default(),
            settle_batches: Counter::default(),
            spool_replayed: Counter::default(),
            spool_quarantined: Counter::default(),
            spool_refused: Counter::default(),
            config_info: Family::<GenerationLabels, Gauge>::default(),
            config_reloads: Family::<OutcomeLabels, Counter>::default(),
            unpriced: Family::<ModelLabels, Counter>::default(),
            stream_decode_errors: Counter::default(),
            unattributed_calls: Family::<MissingLabels, Counter>::default(),
            unattributed_spend: Family::<MissingLabels, Counter>::default(),
            traces: TraceCounters::default(),
        };
        let mut registry = std::mem::take(&mut m.registry);
        m.register(&mut registry);
        m.registry = registry;
        m
    }

    /// Registers every metric, in the order `/metrics` lists them.
    fn register(&self, r: &mut Registry) {
        self.register_spend(r);
        self.register_operations(r);
        self.register_traces(r);
    }

    /// The call spans' fate (`tally_trace_spans_*_total`).
    fn register_traces(&self, r: &mut Registry) {
        let t = &self.traces;
        r.register(
            "trace_spans_dropped",
            "Call spans dropped because the span queue was full: tracing never waits on the data path",
            t.dropped.clone(),
        );
        r.register(
            "trace_spans_exported",
            "Call spans the OTLP collector accepted",
            t.exported.clone(),
        );
        r.register(
            "trace_spans_failed",
            "Call spans in batches the OTLP exporter could not deliver (collector down, timeout)",
            t.failed.clone(),
        );
    }

    /// What calls cost and how they were decided.
    fn register_spend(&self, r: &mut Registry) {
        r.register(
            "spend_nanos",
            "Spend in nano-USD (1e-9 USD) by team, tenant, workflow and model",
            self.spend.clone(),
        );
        r.register(
            "tokens",
            "Tokens by team, tenant, workflow, model and price class",
            self.tokens.clone(),
        );
        r.register(
            "decisions",
            "Bedrock calls by team and outcome (ok, blocked, denied, upstream_error, incomplete, unavailable)",
            self.decisions.clone(),
        );
        r.register(
            "budget_remaining_nanos",
            "Team budget left in the current period, nano-USD",
            self.budget_remaining.clone(),
        );
        r.register(
            "budget_limit_nanos",
            "Team budget limit of the current period, nano-USD",
            self.budget_limit.clone(),
        );
        r.register(
            "decision_duration_seconds",
            "Time to decide on a request (attribution, policy, reservation)",
            self.decision_seconds.clone(),
        );
        r.register(
            "reservations",
            "Worst-case reservations by what bounded them (headers, body) and result (held, refused, duplicate, error)",
            self.reservations.clone(),
        );
        r.register(
            "store_errors",
            "Failed store operations by operation",
            self.store_errors.clone(),
        );
    }

    /// How the ext_proc itself is doing: store, spool, config, decoding, coverage.
    fn register_operations(&self, r: &mut Registry) {
        r.register(
            "spool_depth",
            "Settlements waiting on disk for the store to come back",
            self.spool_depth.clone(),
        );
        r.register(
            "settle_queue_depth",
            "Settlements of finished calls queued in memory for write-behind settlement (--settle-behind-ms)",
            self.settle_queue_depth.clone(),
        );
        r.register(
            "settle_batches",
            "Batches of write-behind settlements sent to the store (calls settled per batch = settled calls / this)",
            self.settle_batches.clone(),
        );
        r.register(
            "spool_replayed",
            "Settlements replayed from the spool",
            self.spool_replayed.clone(),
        );
        r.register(
            "spool_quarantined",
            "Spooled settlements set aside in the spool's quarantine.jsonl: damaged on disk, or refused by the store for what they are",
            self.spool_quarantined.clone(),
        );
        r.register(
            "spool_refused",
            "Settlements the spool could not take (full, or its disk failing) while the store was down: charges not recorded",
            self.spool_refused.clone(),
        );
        r.register(
            "config_info",
            "The loaded compiled config (value 1), labelled by generation",
            self.config_info.clone(),
        );
        r.register(
            "config_reloads",
            "Config file loads by result (ok, invalid, incomplete: a shard set not yet consistent)",
            self.config_reloads.clone(),
        );
        r.register(
            "unpriced_calls",
            "Calls to models no catalog prices (recorded at zero cost)",
            self.unpriced.clone(),
        );
        r.register(
            "stream_decode_errors",
            "Event streams that could not be decoded",
            self.stream_decode_errors.clone(),
        );
        r.register(
            "unattributed_calls",
            "Settled calls that arrived without a team (charged to unknown), a tenant or a workflow, by what was missing",
            self.unattributed_calls.clone(),
        );
        r.register(
            "unattributed_spend_nanos",
            "Spend in nano-USD of settled calls without a team, a tenant or a workflow, by what was missing",
            self.unattributed_spend.clone(),
        );
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
