//! Is a field carried, on how many of the records it applies to, under which
//! keys. A field carried on some records only is misscoped — except the
//! fields a caller decides (tenant, workflow, budget), which are judged per
//! team: a team that never sends a tenant has none, a team that sometimes
//! does drops it.

use std::collections::BTreeMap;

use crate::field::Field;
use crate::fix::Fix;
use crate::formats::Sample;
use crate::observation::Observation;
use crate::report::{Evidence, FieldReport, Finding, Verdict};

use super::Context;

/// Billing rows have no per-call fields.
pub fn expected(sample: &Sample, field: Field) -> bool {
    !(sample.format.is_billing() && matches!(field, Field::Latency | Field::BudgetRemaining | Field::RequestId))
}

/// Whether `field` applies to `o`, given what the config says about budgets.
fn applies(o: &Observation, field: Field, ctx: &Context) -> bool {
    if field == Field::BudgetRemaining {
        let team = o.text(Field::TeamId).unwrap_or_default();
        if ctx.team_has_budget(&team) == Some(false) {
            return false;
        }
    }
    o.applies(field)
}

pub fn judge(sample: &Sample, field: Field, ctx: &Context) -> FieldReport {
    let mut report = FieldReport {
        field,
        verdict: Verdict::Absent,
        evidence: Evidence::default(),
        findings: vec![],
        notes: vec![],
        fixes: vec![],
    };
    if !expected(sample, field) {
        report.verdict = Verdict::NotApplicable;
        return report;
    }
    let applicable: Vec<&Observation> = sample.observations.iter().filter(|o| applies(o, field, ctx)).collect();
    let carrying: Vec<&Observation> = applicable.iter().copied().filter(|o| o.get(field).is_some()).collect();
    report.evidence = evidence(&carrying, applicable.len(), field);
    if carrying.is_empty() {
        return report;
    }
    report.verdict = Verdict::Present;
    if sample.profile.zero_when_missing.contains(&field) {
        // The format omits the key when the count is zero.
        report.evidence.records = applicable.len();
        return report;
    }
    if carrying.len() < applicable.len() {
        partial(&applicable, field, &mut report);
    }
    report
}

fn evidence(carrying: &[&Observation], of: usize, field: Field) -> Evidence {
    let mut keys: BTreeMap<&str, usize> = BTreeMap::new();
    for o in carrying {
        *keys.entry(o.get(field).map_or("", |f| f.key.as_str())).or_default() += 1;
    }
    let mut keys: Vec<(&str, usize)> = keys.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let several = keys.len() > 1;
    Evidence {
        keys: keys.into_iter().map(|(k, _)| k.to_string()).collect(),
        records: carrying.len(),
        of,
        example: carrying.first().map(|o| example(o, field, several)),
    }
}

/// `record 3: "acme"`, or `record 3: tenant_id = "acme"` when the field has several keys.
pub fn example(o: &Observation, field: Field, with_key: bool) -> String {
    let found = o.get(field).expect("carried");
    let mut value = found.value.to_string();
    if value.len() > 90 {
        value = format!("{}…", value.chars().take(88).collect::<String>());
    }
    if with_key {
        format!("record {}: {} = {value}", o.record, found.key)
    } else {
        format!("record {}: {value}", o.record)
    }
}

fn partial(applicable: &[&Observation], field: Field, report: &mut FieldReport) {
    let missing = applicable
        .iter()
        .find(|o| o.get(field).is_none())
        .map_or(0, |o| o.record);
    if !field.is_attribution() {
        report.findings.push(Finding {
            fix: partial_fix(field),
            text: format!(
                "missing on {} of {} records (e.g. record {missing}): dropped on some paths",
                applicable.len() - report.evidence.records,
                applicable.len()
            ),
        });
        return;
    }
    let mut by_team: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for o in applicable {
        let team = o.text(Field::TeamId).unwrap_or_else(|| "(no team)".into());
        let entry = by_team.entry(team).or_insert((0, 0, 0));
        entry.1 += 1;
        if o.get(field).is_some() {
            entry.0 += 1;
        } else if entry.2 == 0 {
            entry.2 = o.record;
        }
    }
    let mut never = vec![];
    for (team, (with, total, first_missing)) in &by_team {
        if *with == 0 {
            never.push(format!("{team} ({total})"));
        } else if with < total {
            report.findings.push(Finding {
                fix: partial_fix(field),
                text: format!(
                    "dropped on some calls of team {team}: {with} of {total} carry it (missing e.g. on record {first_missing})"
                ),
            });
        }
    }
    if !never.is_empty() {
        report.notes.push(format!("never sent by team {}", never.join(", ")));
    }
}

fn partial_fix(field: Field) -> Fix {
    match field {
        Field::TeamId => Fix::AttributionHeaders,
        Field::TenantId | Field::WorkflowId => Fix::ForwardAttribution,
        Field::CostUsd | Field::BudgetRemaining => Fix::Gateway,
        Field::RequestId => Fix::StableRequestId,
        _ => Fix::LogUsage,
    }
}
