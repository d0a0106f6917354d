//! Team attribution in billing rows (CUR 2.0): cost-allocation tags on the
//! row or on the IAM principal, and the principal itself. A principal with no
//! team tag that carries most of the spend is a shared identity standing for
//! every team behind it; a tag that appears mid-period lags (tags are never
//! applied retroactively).

use std::collections::BTreeMap;

use crate::field::Field;
use crate::fix::Fix;
use crate::formats::Sample;
use crate::lookup;
use crate::observation::Observation;
use crate::report::{FieldReport, Finding, Verdict};

/// A shared principal: no team tag and at least this share of the spend.
const SHARED_SHARE: f64 = 0.5;

fn dollars(o: &Observation) -> f64 {
    o.get(Field::CostUsd)
        .and_then(|f| lookup::as_f64(&f.value))
        .unwrap_or(0.0)
}

fn principal(o: &Observation) -> &str {
    o.call.principal.as_deref().unwrap_or("(no principal column)")
}

/// Rows of one principal: their spend, and when the tag was first and last missing.
#[derive(Default)]
struct Rows<'a> {
    tagged: Vec<&'a Observation>,
    untagged: Vec<&'a Observation>,
}

pub fn team(sample: &Sample, report: &mut FieldReport) {
    report.findings.retain(|f| f.fix != Fix::AttributionHeaders);
    let rows = &sample.observations;
    let total: f64 = rows.iter().map(dollars).sum();
    let mut by_principal: BTreeMap<&str, Rows<'_>> = BTreeMap::new();
    for o in rows {
        let entry = by_principal.entry(principal(o)).or_default();
        if o.get(Field::TeamId).is_some() {
            entry.tagged.push(o);
        } else {
            entry.untagged.push(o);
        }
    }
    for (p, r) in &by_principal {
        if let Some(f) = lagging(p, r) {
            report.findings.push(f);
        }
    }
    let has_principals = rows.iter().any(|o| o.call.principal.is_some());
    if let Some(f) = shared(&by_principal, total).filter(|_| has_principals) {
        report.findings.push(f);
    }
    if report.verdict == Verdict::Absent && has_principals {
        // The principal is the only attribution: it is there, but stands for teams it cannot tell apart.
        report.verdict = Verdict::Misscoped;
        report.evidence.keys = vec!["line_item_iam_principal".into()];
    }
}

/// Tagged and untagged rows of one principal, all untagged ones before the first tagged one.
fn lagging(principal: &str, r: &Rows<'_>) -> Option<Finding> {
    if r.tagged.is_empty() || r.untagged.is_empty() {
        return None;
    }
    let time = |o: &&Observation| o.call.time.clone().unwrap_or_default();
    let first_tagged = r.tagged.iter().map(time).min()?;
    let last_untagged = r.untagged.iter().map(time).max()?;
    let spend: f64 = r.untagged.iter().map(|o| dollars(o)).sum();
    let key = r.tagged[0].get(Field::TeamId).map_or("", |f| f.key.as_str());
    let text = if last_untagged < first_tagged {
        format!(
            "tags lagging: `{key}` first appears on {principal}'s rows at {first_tagged}; {} earlier row(s) (${spend:.4}) are untagged and stay so (tags are not applied retroactively)",
            r.untagged.len()
        )
    } else {
        format!(
            "tags missing on {} of {} rows of {principal} (${spend:.4})",
            r.untagged.len(),
            r.untagged.len() + r.tagged.len()
        )
    };
    Some(Finding {
        fix: Fix::TagPrincipals,
        text,
    })
}

/// The principal with no team tag at all that carries the largest share of spend, if it is large.
fn shared(by_principal: &BTreeMap<&str, Rows<'_>>, total: f64) -> Option<Finding> {
    let (p, r) = by_principal
        .iter()
        .filter(|(_, r)| r.tagged.is_empty())
        .max_by(|a, b| spend(a.1).total_cmp(&spend(b.1)))?;
    let share = if total > 0.0 { spend(r) / total } else { 1.0 };
    if share < SHARED_SHARE && by_principal.len() > 1 {
        return Some(Finding {
            fix: Fix::TagPrincipals,
            text: format!("no team tag on {p} ({} rows, ${:.4})", r.untagged.len(), spend(r)),
        });
    }
    Some(Finding {
        fix: Fix::PerTeamIdentity,
        text: format!(
            "one IAM principal stands for many callers: {p} carries ${:.4} ({:.0}% of Bedrock spend in these rows) with no team tag",
            spend(r),
            share * 100.0
        ),
    })
}

fn spend(r: &Rows<'_>) -> f64 {
    r.untagged.iter().chain(&r.tagged).map(|o| dollars(o)).sum()
}
