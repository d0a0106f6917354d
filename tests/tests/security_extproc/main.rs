//! The ext_proc's security, against the real `tally-extproc` binary: the gRPC listener admits
//! only the gateway's certificate and believes only its request attributes ([`transport`]);
//! the ledger and spend API needs the bearer token and streams the ledger in bounded memory
//! ([`api`]); the process refuses to start unsecured, and README and `--help` agree ([`docs`]);
//! a renewed server certificate applies without a restart ([`renewal`]).

mod api;
mod docs;
mod renewal;
mod transport;

use tally_config::compiled::{CompiledConfig, TeamConfig};

/// The workload identity the `secure` team accepts calls from.
pub const APP_ID: &str = "spiffe://cluster.local/ns/apps/sa/app";
/// The gateway's identity, as the chart's certificate names it.
pub const GATEWAY_ID: &str = "spiffe://cluster.local/ns/tally-system/sa/tally-gateway";

/// Team `secure` bound to [`APP_ID`], and team `search` without principals.
pub fn config() -> CompiledConfig {
    let team = |id: &str, principals: Vec<String>| TeamConfig {
        team: id.into(),
        source: format!("{id}/{id}"),
        cost_center: None,
        tenants: vec![],
        budget: None,
        workflows: vec![],
        allowed_models: vec![],
        principals,
    };
    let mut c = CompiledConfig::empty();
    c.generation = "security".into();
    c.teams = vec![team("search", vec![]), team("secure", vec![APP_ID.into()])];
    c
}
