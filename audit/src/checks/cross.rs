//! What only several sources together show: attribution the application
//! knows (its logs carry the tenant) that another source of the same calls
//! lacks (the gateway dropped it). The source that lacks it gets the verdict.

use std::collections::BTreeMap;

use crate::field::Field;
use crate::fix::Fix;
use crate::formats::Sample;
use crate::report::{Finding, SetReport, Verdict};

const CALLER_FIELDS: [Field; 3] = [Field::TenantId, Field::TeamId, Field::WorkflowId];

pub fn apply(samples: &[Sample], sets: &mut [SetReport]) {
    let mut changes: Vec<(usize, Field, Finding)> = vec![];
    for field in CALLER_FIELDS {
        let carriers: Vec<usize> = (0..sets.len())
            .filter(|&i| !sets[i].format.is_billing() && sets[i].field(field).evidence.records > 0)
            .collect();
        for (i, set) in sets.iter().enumerate() {
            if set.format.is_billing() || set.field(field).verdict != Verdict::Absent || set.records == 0 {
                continue;
            }
            let Some(&from) = carriers.iter().find(|&&c| c != i) else {
                continue;
            };
            let source = &sets[from];
            let e = &source.field(field).evidence;
            let joined = join_example(&samples[from], &samples[i], field)
                .map(|x| format!("; e.g. {x}"))
                .unwrap_or_default();
            let text = format!(
                "present in {} ({}/{} records, `{}`) but absent here: dropped between the two{joined}",
                source.name,
                e.records,
                e.of,
                e.keys.first().map_or("", String::as_str)
            );
            changes.push((
                i,
                field,
                Finding {
                    fix: Fix::ForwardAttribution,
                    text,
                },
            ));
        }
    }
    for (i, field, finding) in changes {
        let f = sets[i]
            .fields
            .iter_mut()
            .find(|f| f.field == field)
            .expect("every field is judged");
        f.verdict = Verdict::Misscoped;
        f.findings.push(finding);
    }
}

/// A call both sources recorded (same request id) whose `field` only `with` has.
fn join_example(with: &Sample, without: &Sample, field: Field) -> Option<String> {
    let values: BTreeMap<String, String> = with
        .observations
        .iter()
        .filter_map(|o| Some((o.text(Field::RequestId)?, o.text(field)?)))
        .collect();
    without.observations.iter().find_map(|o| {
        let id = o.text(Field::RequestId)?;
        let value = values.get(&id)?;
        Some(format!(
            "call {id} has {} {value:?} in {} but none in record {} here",
            field.label(),
            with.name,
            o.record
        ))
    })
}
