//! What the chart sizes from its own settings: the reservation TTL from the longest call
//! the gateway's Envoy allows (the Bedrock route's timeout plus a margin), and each team's
//! ledger cap from the bundled Redis's memory and the teams it is sized for.

use crate::render::{arg, documents, envoy_bootstrap, pod_spec, render};

/// The ext_proc's value of `flag` rendered with `sets`.
fn extproc_flag(sets: &[&str], flag: &str) -> String {
    let docs = documents(&render(None, sets));
    let container = &pod_spec(&docs, "Deployment", "tally-extproc")["containers"][0];
    arg(container, flag)
        .unwrap_or_else(|| panic!("tally-extproc has no {flag}"))
        .to_string()
}

#[test]
fn the_reservation_ttl_outlives_the_longest_call_envoy_allows() {
    let bootstrap = envoy_bootstrap(&[]);
    assert!(
        bootstrap.contains("timeout: 3600s"),
        "the Bedrock route stops calls at 60 minutes:\n{bootstrap}"
    );
    assert_eq!(extproc_flag(&[], "--reservation-ttl-seconds"), "3660");
    let shorter = [
        "gateway.routeTimeoutSeconds=600",
        "extproc.reservationTtlMarginSeconds=30",
    ];
    assert!(envoy_bootstrap(&shorter).contains("timeout: 600s"));
    assert_eq!(extproc_flag(&shorter, "--reservation-ttl-seconds"), "630");
}

#[test]
fn the_ledger_cap_divides_the_bundled_redis_among_its_teams() {
    // 768 MiB × 40 % / (20 teams × 1000 B).
    assert_eq!(extproc_flag(&[], "--ledger-max-len"), "16106");
    // 2 GiB × 25 % / (10 × 1000 B).
    let sized = [
        "redis.maxmemory=2gb",
        "redis.sizing.teams=10",
        "redis.sizing.ledgerPercent=25",
    ];
    assert_eq!(extproc_flag(&sized, "--ledger-max-len"), "53687");
    assert_eq!(extproc_flag(&["extproc.ledgerMaxLen=5000"], "--ledger-max-len"), "5000");
    let external = ["redis.bundled=false", "redis.url=redis://redis.example:6379"];
    assert_eq!(extproc_flag(&external, "--ledger-max-len"), "100000");
}
