//! The report as a terminal table: one block per sample set, verdicts in
//! capitals when they need work, findings and fixes under their field.

use std::fmt::Write;

use super::{FieldReport, Report, SetReport, Verdict, WorkItem, coverage_text};

const WIDTH: usize = 110;
const FIELD_COL: usize = 23;
const VERDICT_COL: usize = 11;

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let catalog = r
        .catalog
        .as_deref()
        .map(|c| format!(" · prices from {c}"))
        .unwrap_or_default();
    let _ = writeln!(out, "tally audit · {} sample set(s){catalog}", r.sets.len());
    for set in &r.sets {
        out.push('\n');
        set_block(&mut out, set);
    }
    let _ = writeln!(out, "\nScore: {} fields present and correct", r.score);
    if !r.work.is_empty() {
        let _ = writeln!(out, "\nWhat to do before a full gateway rollout (smallest first):");
        for (i, item) in r.work.iter().enumerate() {
            work_line(&mut out, i + 1, item);
        }
    }
    out
}

fn set_block(out: &mut String, set: &SetReport) {
    let skipped = if set.skipped > 0 {
        format!(", {} skipped", set.skipped)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{} · {} · {} records{skipped} · score {}",
        set.name, set.format_label, set.records, set.score
    );
    let _ = writeln!(out, "  {:<FIELD_COL$}{:<VERDICT_COL$}EVIDENCE", "FIELD", "VERDICT");
    for f in &set.fields {
        field_rows(out, f);
    }
}

fn verdict_text(v: Verdict) -> String {
    match v {
        Verdict::Present | Verdict::NotApplicable => v.label().to_string(),
        _ => v.label().to_uppercase(),
    }
}

fn field_rows(out: &mut String, f: &FieldReport) {
    let e = &f.evidence;
    let evidence = match f.verdict {
        Verdict::NotApplicable => "not carried by billing data (no per-call rows)".to_string(),
        _ if e.records == 0 && f.evidence.keys.is_empty() => format!("no key found ({})", coverage_text(e)),
        _ => {
            let keys = if e.keys.is_empty() {
                "-".into()
            } else {
                e.keys.join(", ")
            };
            let example = e.example.as_deref().map(|x| format!(" · {x}")).unwrap_or_default();
            format!("{keys} · {}{example}", coverage_text(e))
        }
    };
    let indent = 2 + FIELD_COL + VERDICT_COL;
    let first = format!(
        "  {:<FIELD_COL$}{:<VERDICT_COL$}",
        f.field.label(),
        verdict_text(f.verdict)
    );
    wrap_into(out, &first, &evidence, indent);
    for finding in &f.findings {
        wrap_into(out, &" ".repeat(indent), &format!("↳ {}", finding.text), indent + 2);
    }
    for note in &f.notes {
        wrap_into(out, &" ".repeat(indent), &format!("· {note}"), indent + 2);
    }
    for fix in &f.fixes {
        wrap_into(out, &" ".repeat(indent), &format!("fix: {}", fix.text()), indent + 5);
    }
}

fn work_line(out: &mut String, n: usize, item: &WorkItem) {
    let targets = super::targets_by_set(item);
    let head = format!("  {n:>2}. [{}] ", item.effort.label());
    let indent = head.chars().count();
    wrap_into(out, &head, &format!("{} — {}", item.text, targets.join("; ")), indent);
}

/// Writes `prefix` then `text` word-wrapped at [`WIDTH`], continuation lines indented by `indent`.
fn wrap_into(out: &mut String, prefix: &str, text: &str, indent: usize) {
    let mut line = prefix.to_string();
    let mut len = prefix.chars().count();
    let mut fresh = true;
    for word in text.split(' ') {
        let w = word.chars().count();
        if !fresh && len + 1 + w > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
            len = indent;
            fresh = true;
        }
        if !fresh {
            line.push(' ');
            len += 1;
        }
        line.push_str(word);
        len += w;
        fresh = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}
