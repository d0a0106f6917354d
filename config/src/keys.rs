//! The Redis key layout, shared by the data path and the operator's status reader.
//!
//! Every key of one team carries the `{team}` hash tag, so each Lua script
//! touches a single Redis Cluster slot. Counters are keyed by period, so a new
//! period starts from zero without a reset job.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `tally:{T}:c:<period>:<scope>` | hash | `spent`, `reserved` (nano-USD), `requests`, `blocked` (refused by a budget); the team scope also `denied` (refused by an allowlist) and `m/<model>` (nano-USD spent on each catalog model) |
//! | `tally:{T}:resv` | zset | live reservations: charge id → expiry (ms since epoch) |
//! | `tally:{T}:resv:data` | hash | charge id → `amount|counter key|counter key…` |
//! | `tally:{T}:done:m<minute>` | set | settled charge ids (idempotency) of the calls that started in that
//! minute (minutes since the epoch), as 16-byte digests; expires a while after its last member |
//! | `tally:{T}:ledger` | stream | one entry per finished call |
//! | `tally:{T}:ledger:dropped` | string | ledger entries the length guard cut before they were exported |
//!
//! Scopes: `team`, `wf/<workflow id>`, `tn/<tenant id>`.

/// What a counter counts spend for, within one team.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Team,
    Workflow(String),
    Tenant(String),
}

impl Scope {
    pub fn suffix(&self) -> String {
        match self {
            Scope::Team => "team".to_string(),
            Scope::Workflow(w) => format!("wf/{w}"),
            Scope::Tenant(t) => format!("tn/{t}"),
        }
    }
}

fn tag(team: &str) -> String {
    format!("tally:{{{team}}}")
}

pub fn counter(team: &str, period_key: &str, scope: &Scope) -> String {
    format!("{}:c:{period_key}:{}", tag(team), scope.suffix())
}

pub fn reservations(team: &str) -> String {
    format!("{}:resv", tag(team))
}

pub fn reservation_data(team: &str) -> String {
    format!("{}:resv:data", tag(team))
}

/// The settled ids of `team`'s calls that started in `minute` (minutes since the Unix epoch):
/// one set per team and minute, so a marker costs a set member, not a key, and lives
/// about as long as the set's expiry after the minute's last settlement.
pub fn settled(team: &str, minute: i64) -> String {
    format!("{}:done:m{minute}", tag(team))
}

pub fn ledger(team: &str) -> String {
    format!("{}:ledger", tag(team))
}

/// How many of the team's ledger entries the last-resort length guard removed before the
/// exporter acknowledged them (the SETTLE script derives it as `<ledger key>:dropped`).
pub fn ledger_dropped(team: &str) -> String {
    format!("{}:dropped", ledger(team))
}

/// Hash fields of a counter.
pub mod field {
    pub const SPENT: &str = "spent";
    pub const RESERVED: &str = "reserved";
    pub const REQUESTS: &str = "requests";
    pub const BLOCKED: &str = "blocked";
    /// Team scope only: calls refused by a model allowlist or identity rule.
    pub const DENIED: &str = "denied";
    /// Team scope only: prefix of the per-model spend fields (`m/<catalog model>`).
    pub const MODEL_PREFIX: &str = "m/";

    /// The team counter's field holding the nano-USD spent on catalog model `model`.
    pub fn model_spend(model: &str) -> String {
        format!("{MODEL_PREFIX}{model}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_team_hash_tag() {
        assert_eq!(
            counter("search", "2026-11", &Scope::Team),
            "tally:{search}:c:2026-11:team"
        );
        assert_eq!(
            counter("search", "2026-11", &Scope::Workflow("rag".into())),
            "tally:{search}:c:2026-11:wf/rag"
        );
        assert_eq!(
            counter("search", "2026-11", &Scope::Tenant("acme".into())),
            "tally:{search}:c:2026-11:tn/acme"
        );
        assert_eq!(ledger("search"), "tally:{search}:ledger");
        assert_eq!(settled("search", 29_460_000), "tally:{search}:done:m29460000");
    }
}
