//! `GET /v1/spend[?team=T]`: the current period's counters of every configured team (and
//! `unknown`), or of one, with their workflows and tenants. The counter keys and limits come
//! from [`Policy::plan`], the function that charges calls, so this reads exactly what the
//! data path writes. Money is decimal USD strings.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tally_config::compiled::UNKNOWN_TEAM;
use tally_config::money::Nanos;
use tally_store::{Budget, Counters, Store, StoreError};

use super::Api;
use crate::policy::{Attribution, Plan, Policy};

#[derive(serde::Deserialize)]
pub struct SpendQuery {
    team: Option<String>,
}

/// One counter: a team's, or one of its workflows' or tenants'.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Scope {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    limit_usd: Option<String>,
    spent_usd: String,
    reserved_usd: String,
    /// limit − spent − reserved (negative when a `Warn` budget is overspent).
    remaining_usd: Option<String>,
    requests: u64,
    blocked: u64,
}

fn scope(id: Option<&str>, budget: &Budget, c: Counters) -> Scope {
    Scope {
        id: id.map(str::to_string),
        limit_usd: budget.limit.map(|l| l.to_string()),
        spent_usd: c.spent.to_string(),
        reserved_usd: c.reserved.to_string(),
        remaining_usd: budget
            .limit
            .map(|l| Nanos(l.0.saturating_sub(c.spent.0).saturating_sub(c.reserved.0)).to_string()),
        requests: c.requests,
        blocked: c.blocked,
    }
}

pub async fn spend(State(api): State<Arc<Api>>, Query(q): Query<SpendQuery>) -> Response {
    let policy = api.shared.policy.load_full();
    let configured = |t: &str| policy.team(t).is_some() || t == UNKNOWN_TEAM;
    let teams: Vec<String> = match q.team {
        Some(t) if configured(&t) => vec![t],
        Some(t) => return (StatusCode::NOT_FOUND, format!("team {t:?} is not configured\n")).into_response(),
        None => {
            let mut all: Vec<String> = policy.config.teams.iter().map(|t| t.team.clone()).collect();
            if !all.iter().any(|t| t == UNKNOWN_TEAM) {
                all.push(UNKNOWN_TEAM.into());
            }
            all
        }
    };
    let now = jiff::Timestamp::now();
    let mut out = Vec::with_capacity(teams.len());
    for team in &teams {
        match team_spend(&api.shared.store, &policy, team, now).await {
            Ok(v) => out.push(v),
            Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
        }
    }
    Json(serde_json::json!({ "teams": out })).into_response()
}

/// The plan a call with just this team, workflow or tenant would be charged by: its last
/// budget is that scope's counter.
fn plan(policy: &Policy, team: &str, workflow: Option<&str>, tenant: Option<&str>, now: jiff::Timestamp) -> Plan {
    let who = Attribution {
        team: team.to_string(),
        workflow: workflow.map(str::to_string),
        tenant: tenant.map(str::to_string),
        claimed_team: None,
    };
    policy.plan(&who, now)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TeamSpend {
    team: String,
    /// The period's counter key: `2026-12-06`, `2026-W49` or `2026-12`.
    period: String,
    period_start: String,
    period_end: String,
    #[serde(flatten)]
    totals: Scope,
    workflows: Vec<Scope>,
    tenants: Vec<Scope>,
}

async fn team_spend(store: &Store, policy: &Policy, team: &str, now: jiff::Timestamp) -> Result<TeamSpend, StoreError> {
    let own = plan(policy, team, None, None, now);
    let config = policy.team(team);
    let workflows: Vec<&str> = config.map_or(vec![], |t| t.workflows.iter().map(|w| w.id.as_str()).collect());
    let tenants: Vec<&str> = config.map_or(vec![], |t| t.tenants.iter().map(|w| w.id.as_str()).collect());
    let mut budgets = vec![own.budgets[0].clone()];
    for w in &workflows {
        budgets.extend(plan(policy, team, Some(w), None, now).budgets.pop());
    }
    for t in &tenants {
        budgets.extend(plan(policy, team, None, Some(t), now).budgets.pop());
    }
    let keys: Vec<String> = budgets.iter().map(|b| b.key.clone()).collect();
    let counters = store.counters_of_team(&keys).await?;
    let mut scopes = budgets.iter().zip(counters);
    let (team_budget, team_counters) = scopes.next().expect("the team's own counter comes first");
    let workflows = workflows
        .iter()
        .zip(scopes.by_ref())
        .map(|(id, (b, c))| scope(Some(id), b, c))
        .collect();
    let tenants = tenants
        .iter()
        .zip(scopes)
        .map(|(id, (b, c))| scope(Some(id), b, c))
        .collect();
    Ok(TeamSpend {
        team: team.to_string(),
        period: own.window.key,
        period_start: own.window.start.to_string(),
        period_end: own.window.end.to_string(),
        totals: scope(None, team_budget, team_counters),
        workflows,
        tenants,
    })
}
