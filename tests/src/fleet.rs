//! A synthetic fleet of `TeamBudget`s the size issue #18 asks for (10,000 teams × 10 workflows ×
//! 10 tenants), as manifests for a real API server and as the config the operator compiles from
//! them with the shipped catalog (`examples/catalog`). The scale suite and the reconcile-latency
//! benchmark share it so both measure the same fleet.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tally_api::crd::{ModelPricing, TeamBudget};
use tally_config::compiled::CompiledConfig;

use crate::tools::workspace_root;

/// The shape of a fleet: how many teams, and workflows and tenants per team.
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    pub teams: usize,
    pub workflows: usize,
    pub tenants: usize,
    /// Teams per namespace (a platform gives each group of teams its own namespace).
    pub per_namespace: usize,
}

impl Fleet {
    /// The fleet of issue #18.
    pub const ISSUE_18: Fleet = Fleet {
        teams: 10_000,
        workflows: 10,
        tenants: 10,
        per_namespace: 100,
    };

    pub fn team_id(&self, i: usize) -> String {
        format!("team-{i:05}")
    }

    /// Tenant `t` of team `i`: a UUID-like id, as customers' ids are. Random-looking on purpose:
    /// ids are most of a config's bytes and random ones do not compress, so the fleet is as large
    /// on the wire as a real one (regular ids would gzip 28×).
    pub fn tenant_id(&self, i: usize, t: usize) -> String {
        let a = splitmix64((i * 1_000 + t) as u64);
        let b = splitmix64(a);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    pub fn namespace(&self, i: usize) -> String {
        format!("fleet-{:03}", i / self.per_namespace.max(1))
    }

    /// Every namespace the fleet uses.
    pub fn namespaces(&self) -> Vec<String> {
        let per = self.per_namespace.max(1);
        (0..self.teams.div_ceil(per)).map(|n| self.namespace(n * per)).collect()
    }

    /// Team `i`'s spec: a monthly limit of `limit_cents`, each workflow limited to a tenth of it,
    /// each tenant to a fifth.
    pub fn spec(&self, i: usize, limit_cents: u64) -> Value {
        let id = self.team_id(i);
        let workflows: Vec<Value> = (0..self.workflows)
            .map(|w| json!({"id": format!("wf-{w:02}"), "limitUSD": usd(limit_cents / 10)}))
            .collect();
        let tenants: Vec<Value> = (0..self.tenants)
            .map(|t| json!({"id": self.tenant_id(i, t), "limitUSD": usd(limit_cents / 5)}))
            .collect();
        json!({"team": id, "budget": {"limitUSD": usd(limit_cents), "period": "Monthly"},
               "workflows": workflows, "tenants": tenants})
    }

    /// Team `i` as a whole `TeamBudget` manifest.
    pub fn manifest(&self, i: usize, limit_cents: u64) -> Value {
        json!({"apiVersion": "tally.dev/v1alpha1", "kind": "TeamBudget",
               "metadata": {"name": self.team_id(i), "namespace": self.namespace(i)},
               "spec": self.spec(i, limit_cents)})
    }

    /// The fleet's `TeamBudget` objects, as the compiler takes them.
    pub fn team_budgets(&self, limit_cents: u64) -> Result<Vec<TeamBudget>> {
        (0..self.teams)
            .map(|i| serde_json::from_value(self.manifest(i, limit_cents)).context("a fleet TeamBudget"))
            .collect()
    }

    /// The config the operator publishes for this fleet with the shipped catalog.
    pub fn compiled(&self, limit_cents: u64) -> Result<CompiledConfig> {
        let teams = self.team_budgets(limit_cents)?;
        tally_api::compiler::compile(&teams, &shipped_catalog()?)
            .map_err(|errors| anyhow::anyhow!("the fleet does not compile: {errors:?}"))
    }
}

/// A deterministic, well-mixed 64-bit value of `x` (SplitMix64's finalizer).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `cents` as the decimal USD string the CRDs take.
fn usd(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The `ModelPricing` objects of `examples/catalog` (the catalog the chart installs).
pub fn shipped_catalog() -> Result<Vec<ModelPricing>> {
    let dir = workspace_root().join("examples/catalog");
    let mut out = vec![];
    for file in ["bedrock-on-demand.yaml", "application-profiles.yaml"] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(doc)?;
            if value["kind"].as_str() == Some("ModelPricing") {
                out.push(serde_yaml::from_value(value)?);
            }
        }
    }
    Ok(out)
}

/// Field manager of what the fleet helpers apply.
const MANAGER: &str = "tally-fleet";

/// Creates (or updates) `fleet`'s TeamBudgets, team `i` limited to `limit(i)` cents, with
/// `parallel` server-side applies in flight; returns how long it took.
pub async fn apply_fleet(
    client: &Client,
    fleet: &Fleet,
    limit: impl Fn(usize) -> u64,
    parallel: usize,
) -> Result<Duration> {
    let started = Instant::now();
    let params = PatchParams::apply(MANAGER).force();
    futures::stream::iter(0..fleet.teams)
        .map(|i| {
            let api: Api<TeamBudget> = Api::namespaced(client.clone(), &fleet.namespace(i));
            let body = fleet.manifest(i, limit(i));
            let params = &params;
            async move {
                api.patch(&fleet.team_id(i), params, &Patch::Apply(&body))
                    .await
                    .with_context(|| format!("applying TeamBudget {}", fleet.team_id(i)))
                    .map(|_| ())
            }
        })
        .buffer_unordered(parallel.max(1))
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

/// Applies the shipped catalog's `ModelPricing`s.
pub async fn apply_catalog(client: &Client) -> Result<()> {
    let api: Api<ModelPricing> = Api::all(client.clone());
    let params = PatchParams::apply(MANAGER).force();
    for mp in shipped_catalog()? {
        let name = mp.metadata.name.clone().context("a named ModelPricing")?;
        api.patch(&name, &params, &Patch::Apply(&mp)).await?;
    }
    Ok(())
}
