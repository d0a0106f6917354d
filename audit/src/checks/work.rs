//! The instrumentation work, smallest first: every fix the verdicts call for,
//! once, with the fields of the sets it fixes.

use std::collections::BTreeMap;

use crate::field::Field;
use crate::fix::Fix;
use crate::report::{SetReport, Target, WorkItem};

/// The work that makes an absent field present.
pub fn absent_fix(field: Field, billing: bool) -> Fix {
    match field {
        Field::TeamId | Field::TenantId | Field::WorkflowId if billing => Fix::TagPrincipals,
        Field::TeamId | Field::TenantId | Field::WorkflowId => Fix::AttributionHeaders,
        Field::CostUsd | Field::BudgetRemaining => Fix::Gateway,
        Field::RequestId => Fix::StableRequestId,
        _ => Fix::LogUsage,
    }
}

pub fn plan(sets: &[SetReport]) -> Vec<WorkItem> {
    let mut by_fix: BTreeMap<Fix, Vec<Target>> = BTreeMap::new();
    for set in sets {
        for f in &set.fields {
            for fix in &f.fixes {
                by_fix.entry(*fix).or_default().push(Target {
                    set: set.name.clone(),
                    field: f.field,
                });
            }
        }
    }
    let mut work: Vec<WorkItem> = by_fix
        .into_iter()
        .map(|(fix, targets)| WorkItem {
            fix,
            effort: fix.effort(),
            text: fix.text(),
            targets,
        })
        .collect();
    // Smallest effort first; among equals, the work that fixes most first.
    work.sort_by(|a, b| {
        a.effort
            .cmp(&b.effort)
            .then(b.targets.len().cmp(&a.targets.len()))
            .then(a.fix.cmp(&b.fix))
    });
    work
}
