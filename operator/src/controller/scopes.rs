//! The workflow, tenant and model lines of a `TeamBudget`'s status: which scopes are shown (every
//! workflow; tenants with a limit of their own first, then the others, by id, at most
//! [`MAX_TENANTS_SHOWN`] so a status stays small) and each one's spend against its limit in force.
//! Pure: the counters are read by `counters`, in the order [`shown`] gives.

use tally_api::crd::TeamBudgetStatus;
use tally_api::crd::team_budget::{ModelSpend, ScopeStatus, utilization_percent};
use tally_config::compiled::TeamConfig;
use tally_config::keys::Scope;
use tally_config::money::Nanos;

use super::status::Counters;

/// Most tenants listed in a status (a team may have 10,000).
pub const MAX_TENANTS_SHOWN: usize = 100;

/// The workflow and tenant scopes a status shows, in the order their lines appear.
pub fn shown(team: &TeamConfig) -> Vec<Scope> {
    let mut tenants: Vec<_> = team.tenants.iter().collect();
    tenants.sort_by(|a, b| (a.limit.is_none(), &a.id).cmp(&(b.limit.is_none(), &b.id)));
    let workflows = team.workflows.iter().map(|w| Scope::Workflow(w.id.clone()));
    let tenants = tenants
        .into_iter()
        .take(MAX_TENANTS_SHOWN)
        .map(|t| Scope::Tenant(t.id.clone()));
    workflows.chain(tenants).collect()
}

/// Sets the workflow and tenant lines of `status` from `counters`, read for [`shown`]`(team)`.
pub fn fill(status: &mut TeamBudgetStatus, team: &TeamConfig, counters: &[Counters]) {
    status.workflows.clear();
    status.tenants.clear();
    for (scope, c) in shown(team).iter().zip(counters) {
        match scope {
            Scope::Workflow(id) => {
                let limit = team.workflows.iter().find(|w| &w.id == id).and_then(|w| w.limit);
                status.workflows.push(line(id, limit, c));
            }
            Scope::Tenant(id) => {
                let limit = team.tenants.iter().find(|t| &t.id == id).and_then(|t| t.limit);
                status.tenants.push(line(id, limit, c));
            }
            Scope::Team => {}
        }
    }
    let hidden = team.tenants.len().saturating_sub(status.tenants.len());
    status.tenants_not_shown = (hidden > 0).then(|| i64::try_from(hidden).unwrap_or(i64::MAX));
}

/// Keeps the previous lines (Redis did not answer).
pub fn keep(status: &mut TeamBudgetStatus, prev: Option<&TeamBudgetStatus>) {
    if let Some(prev) = prev.filter(|p| p.period_start == status.period_start) {
        status.workflows = prev.workflows.clone();
        status.tenants = prev.tenants.clone();
        status.tenants_not_shown = prev.tenants_not_shown;
        status.top_models = prev.top_models.clone();
    }
}

/// Most models listed under `topModels`.
pub const TOP_MODELS: usize = 5;

/// The [`TOP_MODELS`] models with the most spend, most first (ties by name), from the team
/// counter's per-model spend; models with nothing spent are left out.
pub fn top_models(mut spend: Vec<(String, Nanos)>) -> Vec<ModelSpend> {
    spend.retain(|(_, n)| *n > Nanos::ZERO);
    spend.sort_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
    spend
        .into_iter()
        .take(TOP_MODELS)
        .map(|(model, n)| ModelSpend {
            model,
            spent_usd: n.to_string(),
        })
        .collect()
}

fn line(id: &str, limit: Option<Nanos>, c: &Counters) -> ScopeStatus {
    let committed = c.spent.saturating_add(c.reserved);
    ScopeStatus {
        id: id.to_string(),
        limit_usd: limit.map(|l| l.to_string()),
        spent_usd: c.spent.to_string(),
        reserved_usd: c.reserved.to_string(),
        remaining_usd: limit.map(|l| l.saturating_sub(committed).to_string()),
        utilization: limit.and_then(|l| utilization_percent(committed, l)),
        requests: i64::try_from(c.requests).unwrap_or(i64::MAX),
        blocked: i64::try_from(c.blocked).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_config::compiled::{TenantConfig, WorkflowConfig};

    const USD: i64 = 1_000_000_000;

    fn team(tenants: usize) -> TeamConfig {
        TeamConfig {
            team: "search".into(),
            source: "search/search".into(),
            cost_center: None,
            tenants: (0..tenants)
                .map(|i| TenantConfig {
                    id: format!("t{i:03}"),
                    limit: (i == 7).then_some(Nanos(5 * USD)),
                })
                .collect(),
            budget: None,
            workflows: vec![WorkflowConfig {
                id: "rag".into(),
                limit: Some(Nanos(2 * USD)),
                allowed_models: vec![],
            }],
            allowed_models: vec![],
            principals: vec![],
        }
    }

    fn counters(spent: i64) -> Counters {
        Counters {
            spent: Nanos(spent),
            reserved: Nanos(0),
            requests: 3,
            blocked: 1,
            denied: 0,
        }
    }

    #[test]
    fn workflows_and_limited_tenants_first_and_at_most_a_hundred_tenants() {
        let team = team(150);
        let scopes = shown(&team);
        assert_eq!(scopes.len(), 1 + MAX_TENANTS_SHOWN);
        assert_eq!(scopes[0], Scope::Workflow("rag".into()));
        assert_eq!(scopes[1], Scope::Tenant("t007".into()), "the tenant with a limit first");
        assert_eq!(scopes[2], Scope::Tenant("t000".into()));
        let mut status = TeamBudgetStatus::default();
        let read: Vec<_> = scopes.iter().map(|_| counters(3 * USD / 2)).collect();
        fill(&mut status, &team, &read);
        let rag = &status.workflows[0];
        assert_eq!(
            (
                rag.limit_usd.as_deref(),
                rag.spent_usd.as_str(),
                rag.remaining_usd.as_deref()
            ),
            (Some("2.00"), "1.50", Some("0.50"))
        );
        assert_eq!(
            (rag.utilization.as_deref(), rag.requests, rag.blocked),
            (Some("75.0"), 3, 1)
        );
        assert_eq!(status.tenants[0].utilization.as_deref(), Some("30.0"));
        assert_eq!(
            (
                status.tenants[1].limit_usd.as_ref(),
                status.tenants[1].utilization.as_ref()
            ),
            (None, None)
        );
        assert_eq!(status.tenants_not_shown, Some(50));
    }

    #[test]
    fn top_models_are_the_five_dearest_most_first() {
        let spend = |m: &str, n: i64| (m.to_string(), Nanos(n));
        let got = top_models(vec![
            spend("nova-micro", 5),
            spend("opus", 900),
            spend("haiku", 40),
            spend("sonnet", 300),
            spend("nova-pro", 40),
            spend("titan", 0),
            spend("llama", 7),
            spend("mistral", 6),
        ]);
        let names: Vec<_> = got.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(names, ["opus", "sonnet", "haiku", "nova-pro", "llama"]);
        assert_eq!(got[0].spent_usd, Nanos(900).to_string());
        assert!(top_models(vec![spend("titan", 0)]).is_empty());
    }
}
