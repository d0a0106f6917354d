//! What the suite reads back from the apiserver and the operator, and the poller that waits
//! for it: the published config, TeamBudget conditions and status, Events, the leader Lease,
//! and the operator's HTTP endpoints.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tally_api::crd::TeamBudget;
use tally_config::compiled::CompiledConfig;
use tally_config::wire::{self, FileContent};

use crate::NS;

/// How long a reconcile step may take before a test gives up on it.
pub const STEP: Duration = Duration::from_secs(20);

/// Polls `check` until it returns `Ok(Some(_))`, failing with its last error after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition not met");
    loop {
        match check().await {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The compiled config the operator published (its manifest in `tally-config`, its shards in
/// `tally-config-shard-<i>`), with its content hash; `None` before the first.
pub async fn published(admin: &Client) -> Result<Option<(String, CompiledConfig)>> {
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    let Some(cm) = cms.get_opt("tally-config").await? else {
        return Ok(None);
    };
    let hash = cm
        .annotations()
        .get("tally.dev/config-hash")
        .cloned()
        .context("no hash annotation")?;
    let text = cm
        .data
        .and_then(|d| d.get("config.json").cloned())
        .context("no config.json")?;
    let FileContent::Manifest(manifest) = wire::decode_file(text.as_bytes())? else {
        bail!("config.json is a whole config, not the shard manifest");
    };
    let mut shards = vec![];
    for (i, named) in manifest.shards.iter().enumerate() {
        let shard = cms.get_opt(&format!("tally-config-shard-{i}")).await?;
        shards.push(shard.and_then(|cm| Some(cm.binary_data?.remove(&named.file)?.0)));
    }
    let config = wire::assemble(&manifest, &shards)?;
    assert_eq!(hash, config.generation, "the annotation is the content hash");
    Ok(Some((hash, config)))
}

/// Waits until the published config satisfies `ready`; returns it with its hash.
pub async fn wait_for_config(
    admin: &Client,
    what: &str,
    timeout: Duration,
    ready: impl Fn(&CompiledConfig) -> bool,
) -> (String, CompiledConfig) {
    eventually(what, timeout, || async {
        Ok(published(admin).await?.filter(|(_, c)| ready(c)))
    })
    .await
}

/// The names of the teams in a compiled config, in its order.
pub fn team_names(config: &CompiledConfig) -> Vec<&str> {
    config.teams.iter().map(|t| t.team.as_str()).collect()
}

/// Waits until TeamBudget `name` satisfies `ready`; returns it.
pub async fn wait_for_team_budget(
    api: &Api<TeamBudget>,
    name: &str,
    what: &str,
    timeout: Duration,
    ready: impl Fn(&TeamBudget) -> bool,
) -> TeamBudget {
    eventually(what, timeout, || async {
        let tb = api.get(name).await?;
        Ok(ready(&tb).then_some(tb))
    })
    .await
}

/// Waits until the status of TeamBudget `name` shows spend read from Redis.
pub async fn wait_for_spend(api: &Api<TeamBudget>, name: &str, what: &str) -> TeamBudget {
    wait_for_team_budget(api, name, what, Duration::from_secs(30), |tb| {
        tb.status.as_ref().and_then(|s| s.spent_usd.as_ref()).is_some()
    })
    .await
}

/// A condition of a TeamBudget as (status, reason, message).
pub fn condition(tb: &TeamBudget, type_: &str) -> Option<(String, String, String)> {
    let status = tb.status.as_ref()?;
    let c = status.conditions.iter().find(|c| c.type_ == type_)?;
    Some((format!("{:?}", c.status), c.reason.clone(), c.message.clone()))
}

/// The Events about object `name` in `ns`, counted by reason (`ThresholdCrossed/<pct>` per
/// threshold), but for `ProjectedOverrun` ([`overrun_events`]); an error while the namespace has
/// no events at all.
pub async fn events_of(admin: &Client, ns: &str, name: &str) -> Result<BTreeMap<String, usize>> {
    let mut counts = all_events_of(admin, ns, name).await?;
    counts.remove(PROJECTED_OVERRUN);
    Ok(counts)
}

/// Whether spend projects past the limit depends on the day of the month the suite runs on
/// (the operator forecasts from the real clock), so the counts of [`events_of`] leave this
/// event out and the tests that look for it compare it with the status's own forecast.
pub const PROJECTED_OVERRUN: &str = "ProjectedOverrun";

/// How many `ProjectedOverrun` Events object `name` in `ns` has had.
pub async fn overrun_events(admin: &Client, ns: &str, name: &str) -> Result<usize> {
    Ok(all_events_of(admin, ns, name)
        .await?
        .get(PROJECTED_OVERRUN)
        .copied()
        .unwrap_or(0))
}

async fn all_events_of(admin: &Client, ns: &str, name: &str) -> Result<BTreeMap<String, usize>> {
    let api: Api<Event> = Api::namespaced(admin.clone(), ns);
    let mut counts = BTreeMap::new();
    let list = api.list(&ListParams::default()).await?;
    if list.items.is_empty() {
        bail!("no events in namespace {ns}");
    }
    for e in list {
        if e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) {
            let reason = e.reason.unwrap_or_default();
            let note = e.note.unwrap_or_default();
            let key = if reason == "ThresholdCrossed" {
                let pct = note
                    .split("reached ")
                    .nth(1)
                    .and_then(|s| s.split('%').next())
                    .unwrap_or("?")
                    .to_string();
                format!("ThresholdCrossed/{pct}")
            } else {
                reason
            };
            *counts.entry(key).or_default() += e.series.map_or(1, |s| s.count as usize);
        }
    }
    Ok(counts)
}

/// Waits until the operator's Lease is held by an identity starting with `replica`.
pub async fn wait_for_leader(leases: &Api<Lease>, replica: &str, timeout: Duration) {
    eventually(&format!("{replica} holds the lease"), timeout, || async {
        Ok(leases
            .get_opt("tally-operator")
            .await?
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| h.starts_with(replica))
            .map(|_| ()))
    })
    .await
}

/// One plain HTTP/1.0 GET on loopback: (status code, body).
pub async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    let code = buf.split_whitespace().nth(1).context("no status line")?.parse()?;
    Ok((code, buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()))
}
