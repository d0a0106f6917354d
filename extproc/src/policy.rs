//! Decisions about one call, from the compiled config: who is charged, may they
//! call this model, and which budgets a reservation must fit in.
//!
//! [`Policy`] is the compiled config indexed for the request path (team and
//! tenant maps, parsed timezones, the price book). Everything here is pure: the
//! store applies the resulting [`Plan`] atomically.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use tally_config::compiled::{CompiledConfig, Enforcement, TeamConfig, UNKNOWN_TEAM};
use tally_config::keys::{self, Scope};
use tally_config::money::Nanos;
use tally_config::period::{self, Period, Window};
use tally_config::pricing::{PriceBook, Priced, glob_matches, strip_geo_prefix};
use tally_store::Budget;

/// Longest attribution header value kept; longer values are treated as absent.
pub const MAX_ID_LEN: usize = 128;

/// The label value every id outside the compiled config folds into, so a client
/// cannot grow the metrics registry with random header values or model ids.
pub const OTHER_LABEL: &str = "other";

/// The compiled config, indexed.
#[derive(Debug)]
pub struct Policy {
    pub config: Arc<CompiledConfig>,
    teams: HashMap<String, usize>,
    tenants: HashMap<String, usize>,
    /// The catalog's exact (glob-free) model ids: the only model label values.
    models: HashSet<String>,
    zones: Vec<TimeZone>,
    pub prices: PriceBook,
}

/// Who a call is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribution {
    pub team: String,
    pub tenant: Option<String>,
    pub workflow: Option<String>,
    /// A team header that named no configured team (charged to `unknown`).
    pub claimed_team: Option<String>,
}

/// What the client sent that attribution depends on.
#[derive(Debug, Clone, Default)]
pub struct Claims<'a> {
    pub team: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub workflow: Option<&'a str>,
    /// Workload identities Envoy vouches for (peer certificate URI SANs).
    pub principals: Vec<&'a str>,
}

/// Why a call is refused before any budget is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The workload's identity may not charge this team.
    Principal { team: String, principal: Option<String> },
    /// The model is not on the team's or workflow's allowlist.
    Model { model: String, scope: String },
}

impl Denial {
    pub fn message(&self) -> String {
        match self {
            Denial::Principal {
                team,
                principal: Some(p),
            } => {
                format!("Tally: workload identity {p:?} is not allowed to charge team {team:?}")
            }
            Denial::Principal { team, principal: None } => {
                format!(
                    "Tally: team {team:?} only accepts calls from listed workload identities, and this call presented none"
                )
            }
            Denial::Model { model, scope } => format!("Tally: model {model:?} is not allowed for {scope}"),
        }
    }
}

/// Everything the store needs to reserve and later settle a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub team: String,
    pub window: Window,
    /// The team counter first, then workflow and tenant counters.
    pub budgets: Vec<Budget>,
    /// What each budget is, in `budgets` order, as `x-tally-budget-scope` names it:
    /// `team`, `workflow/<id>`, `tenant/<id>`.
    pub scopes: Vec<String>,
}

impl Plan {
    /// The team's own limit, recorded in the ledger as the team budget's remainder.
    pub fn team_limit(&self) -> Option<Nanos> {
        self.budgets.first().and_then(|b| b.limit)
    }

    /// The tightest applicable budget after a call: the least remaining of every limited
    /// budget given each one's `used` (spent + reserved, in `budgets` order), and its scope.
    /// Ties go to the broader budget (the team's first).
    pub fn tightest(&self, used: &[Nanos]) -> Option<(Nanos, &str)> {
        let remaining = self.budgets.iter().zip(used).zip(&self.scopes);
        remaining
            .filter_map(|((b, &u), scope)| b.limit.map(|l| (l.saturating_sub(u), scope.as_str())))
            .fold(None, |best, (r, scope)| match best {
                Some((b, _)) if b <= r => best,
                _ => Some((r, scope)),
            })
    }
}

fn clean(v: Option<&str>) -> Option<&str> {
    v.map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_ID_LEN && v.chars().all(|c| !c.is_control()))
}

impl Policy {
    pub fn new(config: CompiledConfig) -> Self {
        let mut teams = HashMap::new();
        let mut tenants = HashMap::new();
        let mut zones = Vec::with_capacity(config.teams.len());
        for (i, t) in config.teams.iter().enumerate() {
            teams.insert(t.team.clone(), i);
            for tenant in &t.tenants {
                tenants.insert(tenant.id.clone(), i);
            }
            let tz = t
                .budget
                .as_ref()
                .and_then(|b| period::timezone(&b.timezone).ok())
                .unwrap_or(TimeZone::UTC);
            zones.push(tz);
        }
        let prices = PriceBook::new(&config.catalog);
        let models = config
            .catalog
            .entries
            .iter()
            .filter(|e| !e.pattern.contains('*'))
            .map(|e| e.pattern.clone())
            .collect();
        Policy {
            config: Arc::new(config),
            teams,
            tenants,
            models,
            zones,
            prices,
        }
    }

    pub fn team(&self, id: &str) -> Option<&TeamConfig> {
        self.teams.get(id).map(|&i| &self.config.teams[i])
    }

    /// The `workflow` label of a call charged to `team`: a workflow the team
    /// configures is itself, none is `none`, anything else [`OTHER_LABEL`].
    pub fn label_for_workflow<'a>(&self, team: &str, workflow: Option<&'a str>) -> &'a str {
        match workflow {
            None => "none",
            Some(w) if self.team(team).is_some_and(|t| t.workflows.iter().any(|x| x.id == w)) => w,
            Some(_) => OTHER_LABEL,
        }
    }

    /// The `tenant` label of a call charged to `team`: a tenant the team configures is
    /// itself, none is `none`, anything else [`OTHER_LABEL`].
    pub fn label_for_tenant<'a>(&self, team: &str, tenant: Option<&'a str>) -> &'a str {
        match tenant {
            None => "none",
            Some(t) if self.team(team).is_some_and(|x| x.tenants.iter().any(|y| y.id == t)) => t,
            Some(_) => OTHER_LABEL,
        }
    }

    /// The `model` label: a model id the catalog names exactly is itself; any
    /// other id (unpriced, or priced only by a glob) is [`OTHER_LABEL`].
    pub fn label_for_model<'a>(&self, model: &'a str) -> &'a str {
        if self.models.contains(model) {
            model
        } else {
            OTHER_LABEL
        }
    }

    /// Team header, else the tenant's team, else `unknown`.
    pub fn attribute(&self, claims: &Claims<'_>) -> Attribution {
        let tenant = clean(claims.tenant).map(str::to_string);
        let workflow = clean(claims.workflow).map(str::to_string);
        let claimed = clean(claims.team);
        let (team, claimed_team) = match claimed {
            Some(t) if self.teams.contains_key(t) => (t.to_string(), None),
            Some(t) => (UNKNOWN_TEAM.to_string(), Some(t.to_string())),
            None => match tenant.as_deref().and_then(|t| self.tenants.get(t)) {
                Some(&i) => (self.config.teams[i].team.clone(), None),
                None => (UNKNOWN_TEAM.to_string(), None),
            },
        };
        Attribution {
            team,
            tenant,
            workflow,
            claimed_team,
        }
    }

    /// Identity binding and model allowlists. `model` is the id as resolved
    /// (alias followed); allowlists match it or its geo-less base id.
    pub fn authorize(&self, who: &Attribution, principals: &[&str], model: Option<&str>) -> Result<(), Denial> {
        let Some(team) = self.team(&who.team) else {
            return Ok(());
        };
        if !team.principals.is_empty()
            && !principals
                .iter()
                .any(|p| team.principals.iter().any(|allowed| allowed == p))
        {
            return Err(Denial::Principal {
                team: team.team.clone(),
                principal: principals.first().map(|p| p.to_string()),
            });
        }
        let Some(model) = model else { return Ok(()) };
        let allowed = |globs: &[String]| {
            globs.is_empty()
                || globs
                    .iter()
                    .any(|g| glob_matches(g, model) || strip_geo_prefix(model).is_some_and(|b| glob_matches(g, b)))
        };
        if !allowed(&team.allowed_models) {
            return Err(Denial::Model {
                model: model.to_string(),
                scope: format!("team {:?}", team.team),
            });
        }
        if let Some(wf) = who
            .workflow
            .as_deref()
            .and_then(|w| team.workflows.iter().find(|x| x.id == w))
            && !allowed(&wf.allowed_models)
        {
            return Err(Denial::Model {
                model: model.to_string(),
                scope: format!("workflow {:?} of team {:?}", wf.id, team.team),
            });
        }
        Ok(())
    }

    /// The counters a call is charged to at `now`, with their limits.
    /// Teams without a budget are still counted, by calendar month in UTC.
    pub fn plan(&self, who: &Attribution, now: Timestamp) -> Plan {
        let team = self.team(&who.team);
        let idx = self.teams.get(&who.team).copied();
        let budget = team.and_then(|t| t.budget.as_ref());
        let (period, tz) = match (budget, idx) {
            (Some(b), Some(i)) => (b.period, &self.zones[i]),
            _ => (Period::Monthly, &TimeZone::UTC),
        };
        let window = period::window(now, period, tz);
        let enforce = budget.is_some_and(|b| b.enforcement == Enforcement::Block);
        let key = |scope: &Scope| keys::counter(&who.team, &window.key, scope);
        let mut budgets = vec![Budget {
            key: key(&Scope::Team),
            label: format!("team {:?}", who.team),
            limit: budget.map(|b| b.limit),
            enforce,
        }];
        let mut scopes = vec!["team".to_string()];
        if let Some(t) = team {
            if let Some(wf) = who
                .workflow
                .as_deref()
                .and_then(|w| t.workflows.iter().find(|x| x.id == w))
            {
                budgets.push(Budget {
                    key: key(&Scope::Workflow(wf.id.clone())),
                    label: format!("workflow \"{}/{}\"", t.team, wf.id),
                    limit: wf.limit.filter(|_| budget.is_some()),
                    enforce,
                });
                scopes.push(format!("workflow/{}", wf.id));
            }
            if let Some(tn) = who.tenant.as_deref().and_then(|x| t.tenants.iter().find(|y| y.id == x)) {
                budgets.push(Budget {
                    key: key(&Scope::Tenant(tn.id.clone())),
                    label: format!("tenant \"{}/{}\"", t.team, tn.id),
                    limit: tn.limit.filter(|_| budget.is_some()),
                    enforce,
                });
                scopes.push(format!("tenant/{}", tn.id));
            }
        }
        Plan {
            team: who.team.clone(),
            window,
            budgets,
            scopes,
        }
    }

    /// The price entry for a model id as called, in a region: alias first, then
    /// the id inside an ARN, then the geo-less base id.
    pub fn price<'a>(&'a self, model_as_called: &'a str, region: &str) -> Option<Priced<'a>> {
        let aliased = self.prices.alias(model_as_called);
        self.prices.lookup(crate::bedrock::pricing_model_id(aliased), region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_config::compiled::*;
    use tally_config::money::NanosPerMillion;

    fn config() -> CompiledConfig {
        let team = |id: &str| TeamConfig {
            team: id.into(),
            source: format!("ns/{id}"),
            cost_center: None,
            tenants: vec![],
            budget: None,
            workflows: vec![],
            allowed_models: vec![],
            principals: vec![],
        };
        let mut search = team("search");
        search.budget = Some(BudgetConfig {
            limit: Nanos(100),
            period: Period::Daily,
            timezone: "Europe/Berlin".into(),
            enforcement: Enforcement::Block,
            alert_thresholds: vec![],
        });
        search.tenants = vec![
            TenantConfig {
                id: "acme".into(),
                limit: Some(Nanos(10)),
            },
            TenantConfig {
                id: "globex".into(),
                limit: None,
            },
        ];
        search.workflows = vec![WorkflowConfig {
            id: "rag".into(),
            limit: Some(Nanos(50)),
            allowed_models: vec!["amazon.nova-*".into()],
        }];
        search.allowed_models = vec!["amazon.*".into(), "anthropic.claude-3-5-haiku*".into()];
        let mut secure = team("secure");
        secure.principals = vec!["spiffe://cluster.local/ns/secure/sa/app".into()];
        let mut cfg = CompiledConfig::empty();
        cfg.teams = vec![search, secure, team("unknown")];
        cfg.catalog.entries = vec![PriceEntry {
            pattern: "amazon.nova-pro-v1:0".into(),
            regions: vec![],
            prices: Prices {
                input: NanosPerMillion(800_000_000),
                output: NanosPerMillion(3_200_000_000),
                ..Prices::default()
            },
            max_output_tokens: 10_000,
            source: "test".into(),
            ..PriceEntry::default()
        }];
        cfg
    }

    fn claims<'a>(team: Option<&'a str>, tenant: Option<&'a str>, workflow: Option<&'a str>) -> Claims<'a> {
        Claims {
            team,
            tenant,
            workflow,
            principals: vec![],
        }
    }

    #[test]
    fn attribution_order() {
        let p = Policy::new(config());
        assert_eq!(p.attribute(&claims(Some("search"), None, Some("rag"))).team, "search");
        assert_eq!(p.attribute(&claims(None, Some("acme"), None)).team, "search");
        let a = p.attribute(&claims(Some("nope"), Some("acme"), None));
        assert_eq!((a.team.as_str(), a.claimed_team.as_deref()), ("unknown", Some("nope")));
        assert_eq!(p.attribute(&claims(None, None, None)).team, "unknown");
        assert_eq!(
            p.attribute(&claims(Some("  "), Some(&"x".repeat(500)), None)).tenant,
            None
        );
    }

    #[test]
    fn only_configured_ids_become_label_values() {
        let p = Policy::new(config());
        assert_eq!(p.label_for_workflow("search", Some("rag")), "rag");
        assert_eq!(p.label_for_workflow("search", None), "none");
        assert_eq!(p.label_for_workflow("search", Some("adhoc")), OTHER_LABEL);
        // A workflow id of another team, or of no configured team, is not this team's.
        assert_eq!(p.label_for_workflow("secure", Some("rag")), OTHER_LABEL);
        assert_eq!(p.label_for_workflow("nope", Some("rag")), OTHER_LABEL);
        assert_eq!(p.label_for_tenant("search", Some("acme")), "acme");
        assert_eq!(p.label_for_tenant("search", None), "none");
        assert_eq!(p.label_for_tenant("search", Some("initech")), OTHER_LABEL);
        assert_eq!(p.label_for_tenant("secure", Some("acme")), OTHER_LABEL);
        assert_eq!(p.label_for_model("amazon.nova-pro-v1:0"), "amazon.nova-pro-v1:0");
        assert_eq!(p.label_for_model("meta.llama3-1-8b-instruct-v1:0"), OTHER_LABEL);
        assert_eq!(p.label_for_model(&"x".repeat(2048)), OTHER_LABEL);
    }

    #[test]
    fn principals_bind_identity() {
        let p = Policy::new(config());
        let who = p.attribute(&claims(Some("secure"), None, None));
        assert!(
            p.authorize(&who, &["spiffe://cluster.local/ns/secure/sa/app"], None)
                .is_ok()
        );
        assert!(matches!(
            p.authorize(&who, &["spiffe://cluster.local/ns/other/sa/x"], None),
            Err(Denial::Principal { .. })
        ));
        assert!(matches!(
            p.authorize(&who, &[], None),
            Err(Denial::Principal { principal: None, .. })
        ));
        // A team without principals trusts headers.
        let who = p.attribute(&claims(Some("search"), None, None));
        assert!(p.authorize(&who, &[], None).is_ok());
    }

    #[test]
    fn allowlists_for_team_and_workflow() {
        let p = Policy::new(config());
        let team = p.attribute(&claims(Some("search"), None, None));
        assert!(p.authorize(&team, &[], Some("amazon.nova-pro-v1:0")).is_ok());
        assert!(
            p.authorize(&team, &[], Some("us.anthropic.claude-3-5-haiku-20241022-v1:0"))
                .is_ok()
        );
        let denied = p
            .authorize(&team, &[], Some("anthropic.claude-3-opus-20240229-v1:0"))
            .unwrap_err();
        assert!(denied.message().contains("team \"search\""), "{}", denied.message());
        let rag = p.attribute(&claims(Some("search"), None, Some("rag")));
        assert!(p.authorize(&rag, &[], Some("amazon.nova-pro-v1:0")).is_ok());
        let denied = p
            .authorize(&rag, &[], Some("amazon.titan-text-express-v1"))
            .unwrap_err();
        assert!(denied.message().contains("workflow \"rag\""), "{}", denied.message());
    }

    #[test]
    fn plan_covers_every_limited_scope_in_the_team_period() {
        let p = Policy::new(config());
        let now: Timestamp = "2026-11-26T23:30:00Z".parse().unwrap(); // already the 27th in Berlin
        let plan = p.plan(&p.attribute(&claims(Some("search"), Some("acme"), Some("rag"))), now);
        assert_eq!(plan.window.key, "2026-11-27");
        let got: Vec<_> = plan
            .budgets
            .iter()
            .map(|b| (b.key.as_str(), b.limit, b.enforce))
            .collect();
        assert_eq!(
            got,
            vec![
                ("tally:{search}:c:2026-11-27:team", Some(Nanos(100)), true),
                ("tally:{search}:c:2026-11-27:wf/rag", Some(Nanos(50)), true),
                ("tally:{search}:c:2026-11-27:tn/acme", Some(Nanos(10)), true),
            ]
        );
        // Unconfigured workflow and unlimited tenant: counted, not limited.
        let plan = p.plan(
            &p.attribute(&claims(Some("search"), Some("globex"), Some("adhoc"))),
            now,
        );
        assert_eq!(plan.budgets.len(), 2);
        assert_eq!(plan.budgets[1].limit, None);
        // No budget: counted by UTC month, never limited.
        let plan = p.plan(&p.attribute(&claims(None, None, None)), now);
        assert_eq!(plan.budgets[0].key, "tally:{unknown}:c:2026-11:team");
        assert_eq!(plan.team_limit(), None);
    }

    #[test]
    fn the_tightest_budget_is_the_least_remaining_of_the_limited_ones() {
        let p = Policy::new(config());
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        // Limits: team 100, workflow rag 50, tenant acme 10.
        let plan = p.plan(&p.attribute(&claims(Some("search"), Some("acme"), Some("rag"))), now);
        assert_eq!(plan.scopes, ["team", "workflow/rag", "tenant/acme"]);
        assert_eq!(
            plan.tightest(&[Nanos(20), Nanos(10), Nanos(4)]),
            Some((Nanos(6), "tenant/acme"))
        );
        assert_eq!(
            plan.tightest(&[Nanos(95), Nanos(10), Nanos(4)]),
            Some((Nanos(5), "team"))
        );
        assert_eq!(
            plan.tightest(&[Nanos(20), Nanos(45), Nanos(0)]),
            Some((Nanos(5), "workflow/rag"))
        );
        // A tie goes to the broader budget; an overspent one (`Warn`) reads negative, as in status.
        assert_eq!(
            plan.tightest(&[Nanos(90), Nanos(40), Nanos(0)]),
            Some((Nanos(10), "team"))
        );
        assert_eq!(
            plan.tightest(&[Nanos(20), Nanos(60), Nanos(0)]),
            Some((Nanos(-10), "workflow/rag"))
        );
        // The unlimited tenant is never the tightest; no budget at all: none.
        let plan = p.plan(&p.attribute(&claims(Some("search"), Some("globex"), None)), now);
        assert_eq!(plan.tightest(&[Nanos(99), Nanos(1_000)]), Some((Nanos(1), "team")));
        let plan = p.plan(&p.attribute(&claims(None, None, None)), now);
        assert_eq!(plan.tightest(&[Nanos(5)]), None);
    }
}
