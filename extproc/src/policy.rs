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
mod tests;
