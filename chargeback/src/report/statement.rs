//! The statement: the cells of an [`Aggregator`] turned into the report's views — totals per
//! group, the unattributed share, and per team the model mix, the savings if routed and the
//! burn rate. Pure; money stays integer nano-USD until it is rendered.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use tally_config::compiled::UNKNOWN_TEAM;
use tally_config::period::Period as BudgetPeriod;

use super::aggregate::{Aggregator, CellKey, Totals};
use super::burn::Progress;
use super::routing::{Routing, Tier};
use super::{Dim, Line, Money, Report, Share, TeamView, TierShare, WorkflowSpend};
use crate::ledger::ScanStats;
use crate::period::Period;

/// Shown for a tenant, workflow or cost center a call or team does not have.
pub const NONE: &str = "(none)";
/// How many workflows the model-mix view lists per team.
const TOP_WORKFLOWS: usize = 3;

/// What the statement is computed for.
pub struct Options<'a> {
    pub period: &'a Period,
    pub by: &'a [Dim],
    /// The moment the burn rate is measured at (the period's end once it is over).
    pub now: Timestamp,
}

/// The report of `agg`'s cells.
pub fn build(agg: &Aggregator<'_>, opts: &Options<'_>, scanned: ScanStats) -> Report {
    let routing = &agg.routing;
    let name = |id: u32| agg.strings.name(id);
    let or_none = |s: &str| if s.is_empty() { NONE.to_string() } else { s.to_string() };
    let cost_center = |team: &str| {
        routing
            .team(team)
            .and_then(|t| t.cost_center.clone())
            .unwrap_or_else(|| NONE.to_string())
    };
    let mut total = Totals::default();
    let mut groups: HashMap<Vec<String>, Totals> = HashMap::new();
    for (key, t) in &agg.cells {
        total.add(t);
        let group = opts
            .by
            .iter()
            .map(|d| match d {
                Dim::CostCenter => cost_center(name(key.team)),
                Dim::Team => name(key.team).to_string(),
                Dim::Tenant => or_none(name(key.tenant)),
                Dim::Workflow => or_none(name(key.workflow)),
                Dim::Model => name(key.model).to_string(),
                Dim::Region => name(key.region).to_string(),
                Dim::Operation => name(key.operation).to_string(),
            })
            .collect();
        groups.entry(group).or_default().add(t);
    }
    let mut lines: Vec<Line> = groups.into_iter().map(|(k, t)| Line::of(k, &t, total.cost)).collect();
    lines.sort_by(|a, b| b.cost.cmp(&a.cost).then_with(|| a.key.cmp(&b.key)));
    let unknown: Totals =
        agg.cells
            .iter()
            .filter(|(k, _)| name(k.team) == UNKNOWN_TEAM)
            .fold(Totals::default(), |mut acc, (_, t)| {
                acc.add(t);
                acc
            });
    let period = opts.period;
    Report {
        period: period.label.clone(),
        tz: period.tz_name().to_string(),
        from: period.from.to_string(),
        to: period.to.to_string(),
        by: opts.by.iter().map(|d| d.name()).collect(),
        days: period.days().iter().map(ToString::to_string).collect(),
        total: Line::of(vec!["total".into()], &total, total.cost),
        unattributed: Line::of(vec![UNKNOWN_TEAM.into()], &unknown, total.cost),
        groups: lines,
        teams: team_views(agg, routing, opts, total.cost),
        files: scanned.files,
        rows: scanned.rows,
    }
}

/// Per team: its cells, by team id, in name order.
fn by_team<'a>(agg: &'a Aggregator<'_>) -> BTreeMap<&'a str, Vec<(&'a CellKey, &'a Totals)>> {
    let mut teams: BTreeMap<&'a str, Vec<(&'a CellKey, &'a Totals)>> = BTreeMap::new();
    for (k, t) in &agg.cells {
        teams.entry(agg.strings.name(k.team)).or_default().push((k, t));
    }
    teams
}

fn team_views(agg: &Aggregator<'_>, routing: &Routing<'_>, opts: &Options<'_>, grand: i128) -> Vec<TeamView> {
    let days = opts.period.days().len();
    let progress = Progress::at(opts.period.from, opts.period.to, opts.now);
    let mut tiers_of: HashMap<(u32, u32), Tier> = HashMap::new();
    let mut views: Vec<TeamView> = by_team(agg)
        .into_iter()
        .map(|(team, cells)| {
            let mut total = Totals::default();
            let mut tiers: BTreeMap<Tier, Totals> = BTreeMap::new();
            let mut workflows: HashMap<(Tier, u32), i128> = HashMap::new();
            let mut daily = vec![0i128; days];
            for (k, t) in cells {
                let tier = *tiers_of
                    .entry((k.model, k.region))
                    .or_insert_with(|| routing.tier(agg.strings.name(k.model), agg.strings.name(k.region)));
                total.add(t);
                tiers.entry(tier).or_default().add(t);
                *workflows.entry((tier, k.workflow)).or_default() += t.cost;
                if let Some(d) = daily.get_mut(usize::from(k.day)) {
                    *d += t.cost;
                }
            }
            let dearest = tiers.iter().find(|(_, t)| t.cost > 0).map(|(tier, _)| *tier);
            let mut top: Vec<(i128, &str)> = workflows
                .iter()
                .filter(|((tier, _), cost)| Some(*tier) == dearest && **cost > 0)
                .map(|((_, w), cost)| (*cost, agg.strings.name(*w)))
                .collect();
            top.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
            let config = routing.team(team);
            let budget = config
                .and_then(|c| c.budget.as_ref())
                .filter(|b| comparable(b.period, opts.period));
            TeamView {
                team: team.to_string(),
                cost_center: config
                    .and_then(|c| c.cost_center.clone())
                    .unwrap_or_else(|| NONE.into()),
                calls: total.calls,
                cost: Money(total.cost),
                share: Share::of(total.cost, grand),
                mix: tiers
                    .iter()
                    .map(|(tier, t)| TierShare {
                        tier: *tier,
                        calls: t.calls,
                        calls_share: Share::of(i128::from(t.calls), i128::from(total.calls)),
                        cost: Money(t.cost),
                        cost_share: Share::of(t.cost, total.cost),
                    })
                    .collect(),
                dearest_tier: dearest,
                top_workflows: top
                    .into_iter()
                    .take(TOP_WORKFLOWS)
                    .map(|(cost, w)| WorkflowSpend {
                        workflow: if w.is_empty() { NONE.into() } else { w.to_string() },
                        cost: Money(cost),
                    })
                    .collect(),
                cheapest_model: routing.cheapest_for(team).map(|e| e.pattern.clone()),
                routed: Money(total.routed),
                savings: Money(total.cost - total.routed),
                savings_share: Share::of(total.cost - total.routed, total.cost),
                daily: daily.into_iter().map(Money).collect(),
                projected: Money(progress.forecast(total.cost)),
                budget: budget.map(|b| Money(i128::from(b.limit.0))),
                exhausts_at: budget
                    .and_then(|b| progress.exhaustion(total.cost, i128::from(b.limit.0)))
                    .map(|t| t.to_zoned(opts.period.tz.clone()).date().to_string()),
            }
        })
        .collect();
    views.sort_by(|a, b| b.cost.cmp(&a.cost).then_with(|| a.team.cmp(&b.team)));
    views
}

/// Whether a budget's limit is a limit for the report's period: a monthly budget against a
/// month, a daily one against a day (a daily limit says nothing about a month's spend).
fn comparable(budget: BudgetPeriod, period: &Period) -> bool {
    let days = period.days().len();
    match budget {
        BudgetPeriod::Monthly => period.label.len() == 7,
        BudgetPeriod::Daily => days == 1,
        BudgetPeriod::Weekly => false,
    }
}
