//! The audit's result and its renderings: a table for the terminal
//! ([`table`]), Markdown ([`markdown`]), one self-contained HTML page
//! ([`html`]), and JSON (serde).

pub mod html;
pub mod markdown;
pub mod table;

use serde::Serialize;

use crate::detect::Format;
use crate::field::Field;
use crate::fix::{Effort, Fix};

/// What an audit says about one field in one sample set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Carried on every record it applies to, and correct.
    Present,
    /// Carried by no record.
    Absent,
    /// Carried, but wrong: per-attempt ids, a float cost, dropped on some paths …
    Misscoped,
    /// The source cannot carry it by nature (billing rows have no request id).
    NotApplicable,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Present => "present",
            Verdict::Absent => "absent",
            Verdict::Misscoped => "misscoped",
            Verdict::NotApplicable => "n/a",
        }
    }
}

/// Where the verdict comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// Keys the field was found under, most used first.
    pub keys: Vec<String>,
    /// Records carrying the field …
    pub records: usize,
    /// … of the records it applies to.
    pub of: usize,
    /// One value as found, with its record number.
    pub example: Option<String>,
}

/// Why a present field is wrong, and which work fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub fix: Fix,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldReport {
    pub field: Field,
    pub verdict: Verdict,
    pub evidence: Evidence,
    /// Why the field is misscoped (empty unless it is).
    pub findings: Vec<Finding>,
    /// Observations that do not change the verdict (a team that never sends a tenant).
    pub notes: Vec<String>,
    /// The work that makes this field present and correct.
    pub fixes: Vec<Fix>,
}

/// Fields present and correct out of the fields expected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Score {
    pub correct: usize,
    pub expected: usize,
}

impl Score {
    pub fn percent(self) -> usize {
        (self.correct * 100).checked_div(self.expected).unwrap_or(0)
    }

    pub fn plus(self, other: Score) -> Score {
        Score {
            correct: self.correct + other.correct,
            expected: self.expected + other.expected,
        }
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({}%)", self.correct, self.expected, self.percent())
    }
}

/// One sample set (a file, stdin) and its verdicts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetReport {
    pub name: String,
    pub format: Format,
    pub format_label: &'static str,
    /// Calls (or billing rows) read.
    pub records: usize,
    /// Records that were not calls or did not parse.
    pub skipped: usize,
    pub fields: Vec<FieldReport>,
    pub score: Score,
}

impl SetReport {
    pub fn field(&self, field: Field) -> &FieldReport {
        self.fields
            .iter()
            .find(|f| f.field == field)
            .expect("every field is judged")
    }
}

/// A field of a set that a piece of work fixes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Target {
    pub set: String,
    pub field: Field,
}

/// One piece of instrumentation work and what it fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkItem {
    pub fix: Fix,
    pub effort: Effort,
    pub text: &'static str,
    pub targets: Vec<Target>,
}

/// The whole audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub sets: Vec<SetReport>,
    pub score: Score,
    /// Smallest first: what to do before a full gateway rollout.
    pub work: Vec<WorkItem>,
    /// Where prices for the cost check came from.
    pub catalog: Option<String>,
}

impl Report {
    pub fn set(&self, name: &str) -> Option<&SetReport> {
        self.sets.iter().find(|s| s.name == name)
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes") + "\n"
    }
}

/// What a work item fixes, one entry per set: `app.jsonl: region, cost (USD)`.
pub fn targets_by_set(item: &WorkItem) -> Vec<String> {
    let mut out: Vec<(String, Vec<&str>)> = vec![];
    for t in &item.targets {
        match out.iter_mut().find(|(set, _)| *set == t.set) {
            Some((_, fields)) => fields.push(t.field.label()),
            None => out.push((t.set.clone(), vec![t.field.label()])),
        }
    }
    out.into_iter()
        .map(|(set, fields)| format!("{set}: {}", fields.join(", ")))
        .collect()
}

/// `present on 12 of 40 records` style counts.
pub fn coverage_text(e: &Evidence) -> String {
    if e.of == 0 {
        "no records".into()
    } else {
        format!("{}/{} records", e.records, e.of)
    }
}
