//! The report as Markdown: a table per sample set and the work list, for an
//! issue or a pull request.

use std::fmt::Write;

use super::{FieldReport, Report, Verdict, coverage_text};

pub fn render(r: &Report) -> String {
    let mut out = String::from("# Attribution audit\n\n");
    let _ = writeln!(
        out,
        "**Score: {}** fields present and correct across {} sample set(s).",
        r.score,
        r.sets.len()
    );
    if let Some(c) = &r.catalog {
        let _ = writeln!(out, "Prices from `{}`.", cell(c));
    }
    for set in &r.sets {
        let _ = writeln!(
            out,
            "\n## `{}` — {}\n\n{} records · score {}\n",
            set.name, set.format_label, set.records, set.score
        );
        out.push_str("| field | verdict | evidence | fix |\n|---|---|---|---|\n");
        for f in &set.fields {
            row(&mut out, f);
        }
    }
    if !r.work.is_empty() {
        out.push_str("\n## What to do before a full gateway rollout (smallest first)\n\n");
        for (i, item) in r.work.iter().enumerate() {
            let targets = super::targets_by_set(item);
            let _ = writeln!(
                out,
                "{}. **[{}]** {} — {}",
                i + 1,
                item.effort.label(),
                cell(item.text),
                targets.join("; ")
            );
        }
    }
    out
}

fn row(out: &mut String, f: &FieldReport) {
    let verdict = match f.verdict {
        Verdict::Present => "✅ present",
        Verdict::Absent => "❌ **absent**",
        Verdict::Misscoped => "⚠️ **misscoped**",
        Verdict::NotApplicable => "n/a",
    };
    let e = &f.evidence;
    let mut evidence = if e.keys.is_empty() {
        coverage_text(e)
    } else {
        format!("`{}` · {}", e.keys.join("`, `"), coverage_text(e))
    };
    for finding in &f.findings {
        evidence.push_str("<br>↳ ");
        evidence.push_str(&finding.text);
    }
    for note in &f.notes {
        evidence.push_str("<br>· ");
        evidence.push_str(note);
    }
    let fixes: Vec<&str> = f.fixes.iter().map(|x| x.text()).collect();
    let _ = writeln!(
        out,
        "| {} | {verdict} | {} | {} |",
        f.field.label(),
        cell(&evidence),
        cell(&fixes.join("<br>"))
    );
}

/// Table cells cannot hold `|` or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
