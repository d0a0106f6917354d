//! The world the exchange target runs in: a config with a Block team (with a
//! limited workflow, a limited tenant and a restricted workflow), a Warn team and
//! a team without a budget; one priced model; the [`Shared`] state over a fresh
//! memory store; and reads of that store's counters and ledger.

use std::sync::Arc;

use jiff::Timestamp;
use tally_config::compiled::CompiledConfig;
use tally_config::keys::Scope;
use tally_config::ledger::LedgerRecord;
use tally_config::money::Nanos;
use tally_extproc::exchange::{Options, Shared};
use tally_extproc::policy::{Attribution, Policy};
use tally_store::memory::MemoryStore;
use tally_store::{Counters, Store};

pub const BLOCK_TEAM: &str = "search";
pub const WARN_TEAM: &str = "docs";
pub const FREE_TEAM: &str = "free";
/// Where calls naming no configured team are charged.
pub const UNKNOWN_TEAM: &str = tally_config::compiled::UNKNOWN_TEAM;
/// Every team a ledger record can name.
pub const TEAMS: [&str; 4] = [BLOCK_TEAM, WARN_TEAM, FREE_TEAM, UNKNOWN_TEAM];
/// The Block team's workflow with its own limit, and one that may call no model we price.
pub const LIMITED_WORKFLOW: &str = "rag";
pub const RESTRICTED_WORKFLOW: &str = "restricted";
pub const LIMITED_TENANT: &str = "acme";
/// The one priced model: 1 USD / 1M input tokens, 4 USD / 1M output, 1000 output tokens at most.
pub const PRICED_MODEL: &str = "amazon.nova-micro-v1:0";

/// The config, through the loader the ext_proc reads its file with (so optional
/// fields added to the format later need no change here): `block_limit` for the
/// Block team, `warn_limit` for the Warn team.
pub fn config(block_limit: Nanos, warn_limit: Nanos) -> CompiledConfig {
    let budget = |limit: Nanos, enforcement: &str| {
        format!(
            r#"{{"limit":{},"period":"Monthly","timezone":"UTC","enforcement":"{enforcement}"}}"#,
            limit.0
        )
    };
    let json = format!(
        r#"{{"version":1,"generation":"fuzz",
        "teams":[
          {{"team":"{WARN_TEAM}","source":"ns/{WARN_TEAM}","budget":{warn}}},
          {{"team":"{FREE_TEAM}","source":"ns/{FREE_TEAM}"}},
          {{"team":"{BLOCK_TEAM}","source":"ns/{BLOCK_TEAM}","budget":{block},
            "workflows":[{{"id":"{LIMITED_WORKFLOW}","limit":{half}}},
                         {{"id":"{RESTRICTED_WORKFLOW}","allowedModels":["anthropic.*"]}}],
            "tenants":[{{"id":"{LIMITED_TENANT}","limit":{third}}}]}}],
        "catalog":{{"entries":[{{"match":"{PRICED_MODEL}","source":"fuzz","maxOutputTokens":1000,
          "prices":{{"input":1000000000,"output":4000000000,"cacheRead":100000000,
            "cacheWrite5m":1250000000,"cacheWrite1h":2000000000}}}}]}}}}"#,
        warn = budget(warn_limit, "Warn"),
        block = budget(block_limit, "Block"),
        half = block_limit.0 / 2,
        third = block_limit.0 / 3,
    );
    CompiledConfig::from_json(json.as_bytes()).expect("the fuzz world's config is valid")
}

/// Fresh shared state over an empty memory store.
pub fn shared(config: CompiledConfig, opts: Options) -> Arc<Shared> {
    Arc::new(Shared::new(
        Policy::new(config),
        Store::Memory(MemoryStore::new()),
        None,
        opts,
    ))
}

pub fn memory(shared: &Shared) -> &MemoryStore {
    match &shared.store {
        Store::Memory(m) => m,
        Store::Redis(_) => unreachable!("the fuzz world runs on the memory store"),
    }
}

/// The store key of `team`'s counter in `scope`, in the current period.
pub fn counter_key(shared: &Shared, team: &str, scope: &Scope) -> String {
    let who = Attribution {
        team: team.into(),
        ..Attribution::default()
    };
    let plan = shared.policy.load().plan(&who, Timestamp::now());
    tally_config::keys::counter(team, &plan.window.key, scope)
}

pub fn counters(shared: &Shared, team: &str, scope: &Scope) -> Counters {
    memory(shared).counters(&counter_key(shared, team, scope))
}

pub fn ledger(shared: &Shared) -> Vec<LedgerRecord> {
    memory(shared).ledger(usize::MAX)
}
