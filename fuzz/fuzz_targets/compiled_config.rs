//! The compiled-config loader the ext_proc reads its config file with. A config
//! it accepts survives a round trip through the operator's writer unchanged
//! and without unknown fields, and the policy built from it plans and prices
//! every team and catalog entry without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_config::compiled::CompiledConfig;
use tally_extproc::policy::{Attribution, Policy};

fuzz_target!(|bytes: &[u8]| {
    let Ok((config, _unknown)) = CompiledConfig::from_json_reporting_unknown(bytes) else {
        return;
    };
    let written = config.to_json_pretty();
    let (again, unknown) =
        CompiledConfig::from_json_reporting_unknown(written.as_bytes()).expect("a written config reads back");
    assert_eq!(again, config, "round trip changed the config");
    assert!(
        unknown.is_empty(),
        "the writer wrote fields the reader does not know: {unknown:?}"
    );
    let policy = Policy::new(config.clone());
    let now = jiff::Timestamp::now();
    for team in &config.teams {
        let who = Attribution {
            team: team.team.clone(),
            tenant: team.tenants.first().map(|t| t.id.clone()),
            workflow: team.workflows.first().map(|w| w.id.clone()),
            claimed_team: None,
        };
        let plan = policy.plan(&who, now);
        assert_eq!(plan.team, team.team);
    }
    for entry in &config.catalog.entries {
        let _ = policy.price(&entry.pattern, "us-east-1");
    }
    for alias in &config.catalog.aliases {
        let _ = policy.price(&alias.id, "eu-west-1");
    }
});
