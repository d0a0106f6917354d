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
    pub workflow: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub team: String,
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
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
    pub spool_replayed: Counter,
    pub config_info: Family<GenerationLabels, Gauge>,
    pub config_reloads: Family<OutcomeLabels, Counter>,
    pub unpriced: Family<ModelLabels, Counter>,
    pub stream_decode_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tally");
        let spend = Family::<CallLabels, Counter>::default();
        registry.register(
            "spend_nanos",
            "Spend in nano-USD (1e-9 USD) by team, workflow and model",
            spend.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Tokens by team, workflow, model and price class",
            tokens.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Bedrock calls by team and outcome (ok, blocked, denied, upstream_error, incomplete, unavailable)",
            decisions.clone(),
        );
        let budget_remaining = Family::<TeamLabels, Gauge>::default();
        registry.register(
            "budget_remaining_nanos",
            "Team budget left in the current period, nano-USD",
            budget_remaining.clone(),
        );
        let budget_limit = Family::<TeamLabels, Gauge>::default();
        registry.register(
            "budget_limit_nanos",
            "Team budget limit of the current period, nano-USD",
            budget_limit.clone(),
        );
        let decision_seconds = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        ]);
        registry.register(
            "decision_duration_seconds",
            "Time to decide on a request (attribution, policy, reservation)",
            decision_seconds.clone(),
        );
        let reservations = Family::<ReservationLabels, Counter>::default();
        registry.register(
            "reservations",
            "Worst-case reservations by what bounded them (headers, body) and result (held, refused, duplicate, error)",
            reservations.clone(),
        );
        let store_errors = Family::<OpLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Failed store operations by operation",
            store_errors.clone(),
        );
        let spool_depth = Gauge::default();
        registry.register(
            "spool_depth",
            "Settlements waiting on disk for the store to come back",
            spool_depth.clone(),
        );
        let spool_replayed = Counter::default();
        registry.register(
            "spool_replayed",
            "Settlements replayed from the spool",
            spool_replayed.clone(),
        );
        let config_info = Family::<GenerationLabels, Gauge>::default();
        registry.register(
            "config_info",
            "The loaded compiled config (value 1), labelled by generation",
            config_info.clone(),
        );
        let config_reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config file loads by result (ok, invalid)",
            config_reloads.clone(),
        );
        let unpriced = Family::<ModelLabels, Counter>::default();
        registry.register(
            "unpriced_calls",
            "Calls to models no catalog prices (recorded at zero cost)",
            unpriced.clone(),
        );
        let stream_decode_errors = Counter::default();
        registry.register(
            "stream_decode_errors",
            "Event streams that could not be decoded",
            stream_decode_errors.clone(),
        );
        Metrics {
            registry,
            spend,
            tokens,
            decisions,
            budget_remaining,
            budget_limit,
            decision_seconds,
            reservations,
            store_errors,
            spool_depth,
            spool_replayed,
            config_info,
            config_reloads,
            unpriced,
            stream_decode_errors,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
