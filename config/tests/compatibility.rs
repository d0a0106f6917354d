//! The rolling-upgrade contract: this build (the "old reader") reads a config
//! a newer operator wrote with fields it does not know yet, and refuses a
//! config of another major version.

use tally_config::compiled::{CONFIG_VERSION, CompiledConfig, ConfigError};
use tally_config::money::Nanos;

/// A config as a newer writer might produce it: every level gains a field.
fn newer_config() -> String {
    format!(
        r#"{{
  "version": {CONFIG_VERSION},
  "generation": "abc123",
  "leases": {{"sliceNanos": 1000}},
  "teams": [{{
    "team": "search",
    "source": "ns/search",
    "forecast": {{"projectedNanos": 5}},
    "budget": {{"limit": 5000000000, "period": "Monthly", "timezone": "UTC", "enforcement": "Block", "burnRate": true}},
    "workflows": [{{"id": "rag", "limit": 1000000000, "priority": 3}}],
    "tenants": []
  }}],
  "catalog": {{
    "entries": [{{
      "match": "amazon.nova-reel-v1:0",
      "prices": {{"input": 1, "output": 2, "perFrame": 80000000}},
      "maxOutputTokens": 10,
      "contextWindowClass": "long",
      "source": "test"
    }}]
  }}
}}"#
    )
}

#[test]
fn an_older_reader_ignores_fields_a_newer_writer_added_and_names_them() {
    let (config, unknown) = CompiledConfig::from_json_reporting_unknown(newer_config().as_bytes()).unwrap();
    assert_eq!(config.teams[0].budget.as_ref().unwrap().limit, Nanos(5_000_000_000));
    assert_eq!(config.teams[0].workflows[0].limit, Some(Nanos(1_000_000_000)));
    assert_eq!(config.catalog.entries[0].max_output_tokens, 10);
    assert_eq!(
        unknown,
        [
            "catalog.entries[0].contextWindowClass",
            "catalog.entries[0].prices.perFrame",
            "leases",
            "teams[0].budget.burnRate",
            "teams[0].forecast",
            "teams[0].workflows[0].priority",
        ]
    );
    // The logging form accepts it too.
    assert_eq!(CompiledConfig::from_json(newer_config().as_bytes()).unwrap(), config);
}

#[test]
fn a_config_this_build_wrote_has_no_unknown_fields() {
    let (config, _) = CompiledConfig::from_json_reporting_unknown(newer_config().as_bytes()).unwrap();
    let (again, unknown) = CompiledConfig::from_json_reporting_unknown(config.to_json_pretty().as_bytes()).unwrap();
    assert_eq!((again, unknown), (config, vec![]));
}

#[test]
fn another_major_version_is_refused() {
    let next = newer_config().replacen(
        &format!("\"version\": {CONFIG_VERSION}"),
        &format!("\"version\": {}", CONFIG_VERSION + 1),
        1,
    );
    let err = CompiledConfig::from_json(next.as_bytes()).unwrap_err();
    assert!(
        matches!(err, ConfigError::Version { found } if found == CONFIG_VERSION + 1),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "config version {} is not supported (this build reads version {CONFIG_VERSION})",
            CONFIG_VERSION + 1
        )
    );
}
