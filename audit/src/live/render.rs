//! Live coverage as a terminal table, Markdown, or a self-contained HTML page.

use std::fmt::Write;

use tally_config::money::Nanos;

use super::{Coverage, share};
use crate::report::html::esc;

fn pct(part: usize, whole: usize) -> String {
    format!("{:.1}%", share(part as i64, whole as i64))
}

fn head(c: &Coverage) -> String {
    let since = c.since.as_deref().map(|s| format!(" since {s}")).unwrap_or_default();
    format!(
        "attribution coverage of {}{since}: {} calls, ${}",
        c.ledger,
        c.calls,
        Nanos(c.spend_nanos)
    )
}

/// Rows of (dimension, calls, share of calls, spend, share of spend).
fn missing_rows(c: &Coverage) -> Vec<[String; 5]> {
    c.missing
        .iter()
        .map(|m| {
            [
                m.dimension.to_string(),
                m.calls.to_string(),
                pct(m.calls, c.calls),
                format!("${}", Nanos(m.spend_nanos)),
                format!("{:.1}%", share(m.spend_nanos, c.spend_nanos)),
            ]
        })
        .collect()
}

pub fn table(c: &Coverage) -> String {
    let mut out = head(c) + "\n\n";
    let _ = writeln!(
        out,
        "{:<10}{:>10}{:>10}{:>16}{:>10}",
        "MISSING", "CALLS", "SHARE", "SPEND", "SHARE"
    );
    for r in missing_rows(c) {
        let _ = writeln!(out, "{:<10}{:>10}{:>10}{:>16}{:>10}", r[0], r[1], r[2], r[3], r[4]);
    }
    let _ = writeln!(
        out,
        "\n{:<52}{:>8}{:>10}{:>10}{:>12}{:>14}",
        "SOURCE", "CALLS", "NO TEAM", "NO TENANT", "NO WORKFLOW", "SPEND"
    );
    for s in &c.by_source {
        let _ = writeln!(
            out,
            "{:<52}{:>8}{:>10}{:>10}{:>12}{:>14}",
            s.source,
            s.calls,
            s.no_team,
            s.no_tenant,
            s.no_workflow,
            format!("${}", Nanos(s.spend_nanos))
        );
    }
    out
}

pub fn markdown(c: &Coverage) -> String {
    let mut out = format!("# Attribution coverage\n\n{}\n\n", head(c));
    out.push_str("| missing | calls | share of calls | spend | share of spend |\n|---|---:|---:|---:|---:|\n");
    for r in missing_rows(c) {
        let _ = writeln!(out, "| {} | {} | {} | {} | {} |", r[0], r[1], r[2], r[3], r[4]);
    }
    out.push_str("\n| source | calls | no team | no tenant | no workflow | spend |\n|---|---:|---:|---:|---:|---:|\n");
    for s in &c.by_source {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | ${} |",
            s.source.replace('|', "\\|"),
            s.calls,
            s.no_team,
            s.no_tenant,
            s.no_workflow,
            Nanos(s.spend_nanos)
        );
    }
    out
}

pub fn html(c: &Coverage) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tally attribution coverage</title><style>\
body{font:14px/1.45 system-ui,sans-serif;color:#1f2328;max-width:1000px;margin:24px auto}\
table{border-collapse:collapse;width:100%;margin:12px 0}th,td{border-bottom:1px solid #d1d9e0;padding:6px 10px;text-align:left}\
th{background:#eef1f4}td.n{text-align:right}</style></head><body>\n",
    );
    let _ = writeln!(out, "<h1>Attribution coverage</h1><p>{}</p>", esc(&head(c)));
    out.push_str("<table><tr><th>Missing</th><th>Calls</th><th>Share</th><th>Spend</th><th>Share</th></tr>");
    for r in missing_rows(c) {
        let cells: Vec<String> = r.iter().map(|x| format!("<td>{}</td>", esc(x))).collect();
        let _ = write!(out, "<tr>{}</tr>", cells.concat());
    }
    out.push_str("</table>\n<table><tr><th>Source</th><th>Calls</th><th>No team</th><th>No tenant</th><th>No workflow</th><th>Spend</th></tr>");
    for s in &c.by_source {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">${}</td></tr>",
            esc(&s.source),
            s.calls,
            s.no_team,
            s.no_tenant,
            s.no_workflow,
            Nanos(s.spend_nanos)
        );
    }
    out.push_str("</table></body></html>\n");
    out
}
