//! Round trips and refusals of the shard encoding: a reader accepts only one complete,
//! consistent set.

use super::*;
use crate::compiled::{CONFIG_VERSION, Catalog, TeamConfig};

fn config(teams: usize, generation: &str) -> CompiledConfig {
    CompiledConfig {
        version: CONFIG_VERSION,
        generation: generation.into(),
        teams: (0..teams)
            .map(|i| TeamConfig {
                team: format!("team-{i:05}-{:x}", i.wrapping_mul(2_654_435_761)),
                source: format!("ns/t{i}"),
                cost_center: None,
                tenants: vec![],
                budget: None,
                workflows: vec![],
                allowed_models: vec![],
                principals: vec![],
            })
            .collect(),
        catalog: Catalog::default(),
    }
}

fn files(e: &Encoded) -> Vec<Option<Vec<u8>>> {
    e.shards.iter().cloned().map(Some).collect()
}

#[test]
fn a_sharded_config_round_trips() {
    let c = config(2000, "g1");
    let e = encode(&c, 4096);
    assert!(e.shards.len() > 1, "{} shards", e.shards.len());
    assert!(e.shards.iter().all(|s| s.len() <= 4096));
    assert_eq!(e.manifest.shards[1].file, "config-shard-1.gz");
    let FileContent::Manifest(m) = decode_file(e.manifest_json().as_bytes()).unwrap() else {
        panic!("a manifest reads as a manifest");
    };
    assert_eq!(m, e.manifest);
    assert_eq!(assemble(&m, &files(&e)).unwrap(), c);
}

#[test]
fn plain_and_gzip_files_are_configs() {
    let c = config(3, "g1");
    let FileContent::Config(plain) = decode_file(c.to_json_pretty().as_bytes()).unwrap() else {
        panic!("plain JSON is a config");
    };
    assert_eq!(plain, c);
    let e = encode(&c, usize::MAX);
    assert_eq!(e.shards.len(), 1);
    let FileContent::Config(gz) = decode_file(&e.shards[0]).unwrap() else {
        panic!("one gzip shard is a whole config");
    };
    assert_eq!(gz, c);
}

#[test]
fn mixed_generations_are_rejected() {
    let old = encode(&config(2000, "g1"), 4096);
    let mut new_config = config(2000, "g2");
    new_config.teams[1999].team = "changed".into();
    let new = encode(&new_config, 4096);
    let mut mixed = files(&new);
    mixed[0] = Some(old.shards[0].clone());
    let err = assemble(&new.manifest, &mixed).unwrap_err();
    assert!(matches!(err, WireError::Incomplete { .. }), "{err}");
    assert!(
        err.to_string().contains("shard 0 (config-shard-0.gz) is not the one"),
        "{err}"
    );
    // The old manifest with the new shards: refused as well.
    let err = assemble(&old.manifest, &files(&new)).unwrap_err();
    assert!(matches!(err, WireError::Incomplete { .. }), "{err}");
}

#[test]
fn a_missing_shard_is_rejected() {
    let e = encode(&config(2000, "g1"), 4096);
    let mut missing = files(&e);
    let last = missing.len() - 1;
    missing[last] = None;
    let err = assemble(&e.manifest, &missing).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("shard {last} (config-shard-{last}.gz) is missing")),
        "{err}"
    );
    let err = assemble(&e.manifest, &files(&e)[..last]).unwrap_err();
    assert!(matches!(err, WireError::Incomplete { .. }), "{err}");
}

#[test]
fn a_manifest_whose_generation_differs_from_its_shards_is_rejected() {
    let e = encode(&config(10, "g1"), 4096);
    let mut manifest = e.manifest.clone();
    manifest.generation = "g0".into();
    let err = assemble(&manifest, &files(&e)).unwrap_err();
    assert!(err.to_string().contains("hold generation g1"), "{err}");
}

#[test]
fn an_older_reader_refuses_a_manifest_instead_of_reading_an_empty_config() {
    let e = encode(&config(10, "g1"), 4096);
    assert!(CompiledConfig::from_json(e.manifest_json().as_bytes()).is_err());
    let other = e.manifest_json().replace(MANIFEST_FORMAT, "tally.dev/config-shards/v9");
    assert!(decode_file(other.as_bytes()).unwrap_err().to_string().contains("v9"));
}

#[test]
fn corrupt_gzip_is_an_error_not_a_panic() {
    let e = encode(&config(10, "g1"), usize::MAX);
    let mut bytes = e.shards[0].clone();
    bytes.truncate(bytes.len() / 2);
    assert!(matches!(decode_file(&bytes), Err(WireError::Gzip(_))));
}
