//! `TeamBudget` → [`TeamConfig`]: per-object checks and conversion, then the
//! cross-object rules (a team id and a tenant are claimed once cluster-wide).

use std::collections::HashMap;

use tally_config::compiled::{self, BudgetConfig, TeamConfig, TenantConfig, WorkflowConfig};
use tally_config::money::Nanos;
use tally_config::period::{self, Period};

use super::syntax::{check_model_glob, check_principal, check_team_id, check_tenant_or_workflow_id};
use super::{CompileError, ObjectRef, Problems};
use crate::crd::{Budget, BudgetPeriod, Enforcement, TeamBudget, Usd};

/// Compiles every team, applies the cross-object rules, and returns the teams
/// sorted by id with the errors of the objects left out.
pub(super) fn compile_teams(teams: &[TeamBudget]) -> (Vec<TeamConfig>, Vec<CompileError>) {
    // Older objects keep their claims; without timestamps (offline), namespace/name decides.
    let mut order: Vec<&TeamBudget> = teams.iter().collect();
    order.sort_by_cached_key(|tb| {
        let created = tb.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (created.is_none(), created, ObjectRef::team_budget(tb))
    });

    let mut errors = vec![];
    let mut accepted: Vec<TeamConfig> = vec![];
    let mut team_owner: HashMap<String, ObjectRef> = HashMap::new();
    let mut tenant_owner: HashMap<String, (String, ObjectRef)> = HashMap::new();
    for tb in order {
        let config = match compile_team(tb) {
            Ok(config) => config,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let mut problems = Problems::new(ObjectRef::team_budget(tb));
        if let Some(other) = team_owner.get(&config.team) {
            problems.push(
                "spec.team",
                format!(
                    "team {:?} is already declared by {other}; a team id is unique across the cluster \
                     (the older object keeps it)",
                    config.team
                ),
            );
        }
        for (i, tenant) in config.tenants.iter().enumerate() {
            if let Some((team, other)) = tenant_owner.get(&tenant.id) {
                problems.push(
                    format!("spec.tenants[{i}].id"),
                    format!(
                        "tenant {:?} already belongs to team {team:?} ({other}); a tenant belongs to one team \
                         (the older object keeps it)",
                        tenant.id
                    ),
                );
            }
        }
        if !problems.errors.is_empty() {
            errors.extend(problems.errors);
            continue;
        }
        team_owner.insert(config.team.clone(), problems.object.clone());
        for tenant in &config.tenants {
            tenant_owner.insert(tenant.id.clone(), (config.team.clone(), problems.object.clone()));
        }
        accepted.push(config);
    }
    accepted.sort_by(|a, b| a.team.cmp(&b.team));
    (accepted, errors)
}

/// Checks one `TeamBudget` on its own and converts it, or returns all its errors.
pub fn compile_team(tb: &TeamBudget) -> Result<TeamConfig, Vec<CompileError>> {
    let object = ObjectRef::team_budget(tb);
    let mut p = Problems::new(object);
    if tb.metadata.name.as_deref().unwrap_or("").is_empty() {
        p.push("metadata.name", "must be set");
    }
    if tb.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        p.push("metadata.namespace", "must be set (TeamBudget is namespaced)");
    }
    let spec = &tb.spec;
    p.check("spec.team", check_team_id(&spec.team));

    let budget = spec.budget.as_ref().and_then(|b| compile_budget(b, &mut p));
    let team_limit = budget.as_ref().map(|b| b.limit);
    let has_budget = spec.budget.is_some();

    let mut tenant_ids = SubBudgets::new("tenant", "spec.tenants", has_budget, team_limit);
    let tenants = spec
        .tenants
        .iter()
        .enumerate()
        .map(|(i, tenant)| TenantConfig {
            id: tenant.id.clone(),
            limit: tenant_ids.check(i, &tenant.id, tenant.limit_usd.as_ref(), &mut p),
        })
        .collect();

    let mut workflow_ids = SubBudgets::new("workflow", "spec.workflows", has_budget, team_limit);
    let mut workflows = Vec::with_capacity(spec.workflows.len());
    for (i, wf) in spec.workflows.iter().enumerate() {
        let limit = workflow_ids.check(i, &wf.id, wf.limit_usd.as_ref(), &mut p);
        for (j, glob) in wf.allowed_models.iter().enumerate() {
            p.check(
                format!("spec.workflows[{i}].allowedModels[{j}]"),
                check_model_glob(glob),
            );
        }
        workflows.push(WorkflowConfig {
            id: wf.id.clone(),
            limit,
            allowed_models: wf.allowed_models.clone(),
        });
    }

    for (j, glob) in spec.allowed_models.iter().enumerate() {
        p.check(format!("spec.allowedModels[{j}]"), check_model_glob(glob));
    }
    for (j, principal) in spec.principals.iter().enumerate() {
        p.check(format!("spec.principals[{j}]"), check_principal(principal));
    }

    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    Ok(TeamConfig {
        team: spec.team.clone(),
        source: tb.key(),
        cost_center: spec.cost_center.clone().filter(|c| !c.is_empty()),
        tenants,
        budget,
        workflows,
        allowed_models: spec.allowed_models.clone(),
        principals: spec.principals.clone(),
    })
}

/// The budget, or `None` after recording why it is invalid.
fn compile_budget(b: &Budget, p: &mut Problems) -> Option<BudgetConfig> {
    let errors_before = p.errors.len();
    let limit = Nanos::parse_usd(b.limit_usd.as_str());
    if let Err(e) = &limit {
        p.push("spec.budget.limitUSD", e.to_string());
    }
    if let Err(e) = period::timezone(&b.timezone) {
        p.push("spec.budget.timezone", e.to_string());
    }
    for (i, t) in b.alert_thresholds.iter().enumerate() {
        if !(1..=100).contains(t) {
            p.push(
                format!("spec.budget.alertThresholds[{i}]"),
                format!("{t} is not a percentage from 1 to 100"),
            );
        }
    }
    if let Some(w) = b.alert_thresholds.windows(2).find(|w| w[0] >= w[1]) {
        p.push(
            "spec.budget.alertThresholds",
            format!("must be strictly ascending, but {} comes after {}", w[1], w[0]),
        );
    }
    if p.errors.len() > errors_before {
        return None;
    }
    Some(BudgetConfig {
        limit: limit.ok()?,
        period: b.period.into(),
        timezone: b.timezone.clone(),
        enforcement: b.enforcement.into(),
        alert_thresholds: b.alert_thresholds.clone(),
    })
}

/// The one rule for tenants and workflows: an id of the allowed syntax, unique among its kind in
/// the object, and an optional limit that needs the team's budget and fits under its limit.
struct SubBudgets<'a> {
    /// `tenant` or `workflow`, as the messages say it.
    kind: &'static str,
    /// The list's field, `spec.tenants` or `spec.workflows`.
    list: &'static str,
    has_budget: bool,
    team_limit: Option<Nanos>,
    seen: HashMap<&'a str, usize>,
}

impl<'a> SubBudgets<'a> {
    fn new(kind: &'static str, list: &'static str, has_budget: bool, team_limit: Option<Nanos>) -> Self {
        SubBudgets {
            kind,
            list,
            has_budget,
            team_limit,
            seen: HashMap::new(),
        }
    }

    /// Checks item `i` of the list; returns its limit if it parses.
    fn check(&mut self, i: usize, id: &'a str, limit: Option<&Usd>, p: &mut Problems) -> Option<Nanos> {
        let (kind, list) = (self.kind, self.list);
        p.check(format!("{list}[{i}].id"), check_tenant_or_workflow_id(id));
        if let Some(j) = self.seen.insert(id, i) {
            p.push(
                format!("{list}[{i}].id"),
                format!("duplicate {kind} id {id:?} (also {list}[{j}])"),
            );
        }
        self.limit(limit, &format!("{list}[{i}].limitUSD"), p)
    }

    /// The limit: parsed, under the team's budget, not above its limit.
    fn limit(&self, limit: Option<&Usd>, field: &str, p: &mut Problems) -> Option<Nanos> {
        let kind = self.kind;
        let limit = match Nanos::parse_usd(limit?.as_str()) {
            Ok(n) => n,
            Err(e) => {
                p.push(field, e.to_string());
                return None;
            }
        };
        if !self.has_budget {
            p.push(
                field,
                format!("a {kind} limit needs spec.budget: the budget's period is the period it applies to"),
            );
        } else if let Some(team) = self.team_limit
            && limit > team
        {
            p.push(
                field,
                format!("{kind} limit {limit} USD is above the team's limit {team} USD (spec.budget.limitUSD)"),
            );
        }
        Some(limit)
    }
}

// The CRD spells the contract's enums its own way (CamelCase in the API);
// converting them is the compiler's job, so the CRD types need no contract import.
impl From<BudgetPeriod> for Period {
    fn from(p: BudgetPeriod) -> Self {
        match p {
            BudgetPeriod::Daily => Self::Daily,
            BudgetPeriod::Weekly => Self::Weekly,
            BudgetPeriod::Monthly => Self::Monthly,
        }
    }
}

impl From<Enforcement> for compiled::Enforcement {
    fn from(e: Enforcement) -> Self {
        match e {
            Enforcement::Block => Self::Block,
            Enforcement::Warn => Self::Warn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_objects::{budget, team};
    use super::super::{compile, compile_lenient};
    use super::*;
    use crate::crd::{Tenant, Workflow};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn fields(errors: &[CompileError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    fn tenant(id: &str, limit: Option<&str>) -> Tenant {
        Tenant {
            id: id.into(),
            limit_usd: limit.map(Usd::from),
        }
    }

    fn workflow(id: &str, limit: Option<&str>) -> Workflow {
        Workflow {
            id: id.into(),
            limit_usd: limit.map(Usd::from),
            allowed_models: vec![],
        }
    }

    #[test]
    fn converts_money_to_nanos_and_keeps_everything() {
        let mut tb = team("search", "search", "search");
        tb.spec.cost_center = Some("CC-1234".into());
        tb.spec.budget = Some(budget("250.50"));
        tb.spec.tenants = vec![tenant("acme", Some("25")), tenant("globex", None)];
        tb.spec.workflows = vec![workflow("rag", Some("100.000000001"))];
        tb.spec.allowed_models = vec!["anthropic.*".into()];
        tb.spec.principals = vec!["spiffe://cluster.local/ns/search/sa/api".into()];
        let c = compile_team(&tb).unwrap();
        assert_eq!(c.source, "search/search");
        assert_eq!(c.cost_center.as_deref(), Some("CC-1234"));
        assert_eq!(c.budget.as_ref().unwrap().limit, Nanos(250_500_000_000));
        assert_eq!(c.tenants[0].limit, Some(Nanos(25_000_000_000)));
        assert_eq!(c.tenants[1].limit, None);
        assert_eq!(c.workflows[0].limit, Some(Nanos(100_000_000_001)));
        assert_eq!(c.allowed_models, ["anthropic.*"]);
        assert_eq!(c.principals.len(), 1);
    }

    #[test]
    fn no_budget_means_attribution_only() {
        let c = compile_team(&team("ns", "n", "unknown")).unwrap();
        assert_eq!(c.budget, None);
    }

    #[test]
    fn every_per_object_error_is_reported_at_once() {
        let mut tb = team("ns", "bad", "Bad_Team");
        let mut b = budget("12.x");
        b.timezone = "Mars/Olympus_Mons".into();
        b.alert_thresholds = vec![0, 80, 80, 101];
        tb.spec.budget = Some(b);
        tb.spec.tenants = vec![
            tenant("acme", None),
            tenant("acme", Some("1.0000000001")),
            tenant("-x", None),
        ];
        tb.spec.workflows = vec![
            workflow("rag", None),
            Workflow {
                id: "rag".into(),
                limit_usd: None,
                allowed_models: vec!["claude-3-?".into(), "".into()],
            },
        ];
        tb.spec.allowed_models = vec!["anthropic.[a-z]*".into()];
        tb.spec.principals = vec!["spiffe://a b".into()];
        let errors = compile_team(&tb).unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "spec.team",
                "spec.budget.limitUSD",
                "spec.budget.timezone",
                "spec.budget.alertThresholds[0]",
                "spec.budget.alertThresholds[3]",
                "spec.budget.alertThresholds",
                "spec.tenants[1].id",
                "spec.tenants[1].limitUSD",
                "spec.tenants[2].id",
                "spec.workflows[1].id",
                "spec.workflows[1].allowedModels[0]",
                "spec.workflows[1].allowedModels[1]",
                "spec.allowedModels[0]",
                "spec.principals[0]",
            ]
        );
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with("TeamBudget ns/bad: spec.team: \"Bad_Team\""),
            "{}",
            text[0]
        );
        assert!(text[1].contains("\"12.x\" is not a decimal number"), "{}", text[1]);
        assert!(
            text[2].contains("unknown timezone \"Mars/Olympus_Mons\""),
            "{}",
            text[2]
        );
        assert!(text[5].contains("80 comes after 80"), "{}", text[5]);
        assert!(
            text[6].contains("duplicate tenant id \"acme\" (also spec.tenants[0])"),
            "{}",
            text[6]
        );
        assert!(text[7].contains("more than 9 decimal places"), "{}", text[7]);
        assert!(text[10].contains("'?'"), "{}", text[10]);
    }

    #[test]
    fn sub_limits_must_fit_the_team_limit_and_need_a_budget() {
        let mut tb = team("ns", "n", "t");
        tb.spec.budget = Some(budget("100"));
        tb.spec.workflows = vec![workflow("ok", Some("100")), workflow("big", Some("100.01"))];
        tb.spec.tenants = vec![tenant("big", Some("250"))];
        let errors = compile_team(&tb).unwrap_err();
        assert_eq!(
            fields(&errors),
            ["spec.tenants[0].limitUSD", "spec.workflows[1].limitUSD"]
        );
        assert!(
            errors[1]
                .message
                .contains("workflow limit 100.01 USD is above the team's limit 100.00 USD"),
            "{}",
            errors[1]
        );

        let mut tb = team("ns", "n", "t");
        tb.spec.workflows = vec![workflow("w", Some("5"))];
        tb.spec.tenants = vec![tenant("x", Some("5"))];
        let errors = compile_team(&tb).unwrap_err();
        assert_eq!(
            fields(&errors),
            ["spec.tenants[0].limitUSD", "spec.workflows[0].limitUSD"]
        );
        assert!(errors[0].message.contains("needs spec.budget"), "{}", errors[0]);
    }

    #[test]
    fn unnamed_objects_are_refused() {
        let mut tb = team("", "", "t");
        tb.metadata.name = None;
        let errors = compile_team(&tb).unwrap_err();
        assert_eq!(fields(&errors), ["metadata.name", "metadata.namespace"]);
    }

    #[test]
    fn a_team_id_is_claimed_once_and_the_older_object_keeps_it() {
        let mut older = team("zeta", "search", "search");
        older.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
        let mut newer = team("alpha", "search", "search");
        newer.metadata.creation_timestamp = Some(Time("2026-02-01T00:00:00Z".parse().unwrap()));
        let compiled = compile_lenient(&[newer.clone(), older], &[]);
        assert_eq!(compiled.config.teams.len(), 1);
        assert_eq!(compiled.config.teams[0].source, "zeta/search");
        assert_eq!(compiled.errors.len(), 1);
        let e = &compiled.errors[0];
        assert_eq!(e.object, ObjectRef::team_budget(&newer));
        assert_eq!(e.field, "spec.team");
        assert!(e.message.contains("already declared by TeamBudget zeta/search"), "{e}");
        // Offline, without timestamps, namespace/name decides.
        let errors = compile(&[team("b", "x", "t"), team("a", "x", "t")], &[]).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "TeamBudget b/x: spec.team: team \"t\" is already declared by TeamBudget a/x; a team id is unique across the cluster (the older object keeps it)"
        );
    }

    #[test]
    fn a_tenant_belongs_to_one_team() {
        let mut a = team("a", "a", "alpha");
        a.spec.tenants = vec![tenant("acme", None)];
        let mut b = team("b", "b", "beta");
        b.spec.tenants = vec![tenant("globex", None), tenant("acme", None)];
        let errors = compile(&[b, a], &[]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "TeamBudget b/b: spec.tenants[1].id: tenant \"acme\" already belongs to team \"alpha\" (TeamBudget a/a); \
             a tenant belongs to one team (the older object keeps it)"
        );
    }

    #[test]
    fn an_invalid_object_claims_nothing() {
        // The older object is invalid, so the newer one gets the team id.
        let mut bad = team("a", "a", "t");
        bad.spec.budget = Some(budget("x"));
        let good = team("b", "b", "t");
        let compiled = compile_lenient(&[bad, good], &[]);
        assert_eq!(compiled.config.teams[0].source, "b/b");
        assert_eq!(fields(&compiled.errors), ["spec.budget.limitUSD"]);
    }

    #[test]
    fn teams_are_sorted_by_id() {
        let config = compile(
            &[team("a", "a", "zulu"), team("b", "b", "alpha"), team("c", "c", "mike")],
            &[],
        )
        .unwrap();
        let ids: Vec<&str> = config.teams.iter().map(|t| t.team.as_str()).collect();
        assert_eq!(ids, ["alpha", "mike", "zulu"]);
    }
}
