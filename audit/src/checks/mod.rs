//! The verdicts: coverage of each field ([`coverage`]), then the checks that
//! turn a present field into a misscoped one — request ids ([`request_id`]),
//! cost ([`cost`]), token conventions ([`tokens`]), model ids and regions
//! ([`model`]), billing identities and tags ([`billing`]) — then what only
//! several sources together show ([`cross`]), the score and the work list
//! ([`work`]). Pure: parsed samples in, a [`Report`] out.

pub mod billing;
pub mod clock;
pub mod cost;
pub mod coverage;
pub mod cross;
pub mod model;
pub mod request_id;
pub mod tokens;
pub mod work;

use tally_config::compiled::CompiledConfig;
use tally_config::pricing::PriceBook;

use crate::field::Field;
use crate::fix::Fix;
use crate::formats::Sample;
use crate::report::{FieldReport, Finding, Report, Score, SetReport, Verdict};

/// What the checks compare against.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The catalog that prices calls (cost checks); `None` skips them.
    pub book: Option<PriceBook>,
    /// Teams, when the catalog came with TeamBudgets: which teams have a budget.
    pub config: Option<CompiledConfig>,
    /// Where the catalog came from, for the report.
    pub catalog: Option<String>,
}

impl Context {
    pub fn new(config: CompiledConfig, catalog: impl Into<String>) -> Context {
        Context {
            book: Some(PriceBook::new(&config.catalog)),
            config: Some(config),
            catalog: Some(catalog.into()),
        }
    }

    /// `Some(false)` when the config knows `team` and it has no budget.
    pub fn team_has_budget(&self, team: &str) -> Option<bool> {
        let config = self.config.as_ref().filter(|c| !c.teams.is_empty())?;
        Some(config.teams.iter().any(|t| t.team == team && t.budget.is_some()))
    }
}

/// Audits every sample and puts the report together.
pub fn audit(samples: &[Sample], ctx: &Context) -> Report {
    let mut sets: Vec<SetReport> = samples.iter().map(|s| audit_set(s, ctx)).collect();
    cross::apply(samples, &mut sets);
    let mut score = Score::default();
    for set in &mut sets {
        for f in &mut set.fields {
            finish(f, set.format.is_billing());
        }
        set.score = score_of(&set.fields);
        score = score.plus(set.score);
    }
    Report {
        work: work::plan(&sets),
        sets,
        score,
        catalog: ctx.catalog.clone(),
    }
}

/// One sample set, on its own.
pub fn audit_set(sample: &Sample, ctx: &Context) -> SetReport {
    let fields = Field::ALL
        .iter()
        .map(|&field| {
            let mut report = coverage::judge(sample, field, ctx);
            if report.verdict != Verdict::Absent && report.verdict != Verdict::NotApplicable {
                let (findings, notes) = misscopes(sample, field, ctx);
                report.findings.extend(findings);
                report.notes.extend(notes);
            }
            if field == Field::TeamId && sample.format.is_billing() {
                billing::team(sample, &mut report);
            }
            report
        })
        .collect();
    SetReport {
        name: sample.name.clone(),
        format: sample.format,
        format_label: sample.format.label(),
        records: sample.observations.len(),
        skipped: sample.skipped,
        fields,
        score: Score::default(),
    }
}

/// The field-specific checks of a field that is carried.
fn misscopes(sample: &Sample, field: Field, ctx: &Context) -> (Vec<Finding>, Vec<String>) {
    match field {
        Field::RequestId => (request_id::check(&sample.observations), vec![]),
        Field::CostUsd => cost::check(sample, ctx),
        Field::InputTokens => (tokens::convention(sample).into_iter().collect(), vec![]),
        Field::CacheReadTokens | Field::CacheWriteTokens => {
            (tokens::split(sample, field).into_iter().collect(), vec![])
        }
        Field::ModelId => (model::profiles(sample, ctx).into_iter().collect(), vec![]),
        Field::Region => (model::region(sample).into_iter().collect(), vec![]),
        _ => (vec![], vec![]),
    }
}

/// Settles the verdict from the findings and lists the fixes.
fn finish(f: &mut FieldReport, billing: bool) {
    if f.verdict == Verdict::Present && !f.findings.is_empty() {
        f.verdict = Verdict::Misscoped;
    }
    let mut fixes: Vec<Fix> = match f.verdict {
        Verdict::Absent => vec![work::absent_fix(f.field, billing)],
        Verdict::Misscoped => f.findings.iter().map(|x| x.fix).collect(),
        _ => vec![],
    };
    fixes.sort();
    fixes.dedup();
    f.fixes = fixes;
}

fn score_of(fields: &[FieldReport]) -> Score {
    Score {
        correct: fields.iter().filter(|f| f.verdict == Verdict::Present).count(),
        expected: fields.iter().filter(|f| f.verdict != Verdict::NotApplicable).count(),
    }
}
