//! The report as text: `table` (aligned columns for a terminal), `csv` (the statement, one
//! line per group, for spreadsheets), `markdown` (what a team lead reads) and `json`. The
//! three tabular forms share their cells, so they never disagree.

use std::fmt::Write;

use super::{Line, Report, TeamView};

/// Headers and cells of the statement: the `--by` columns, then the totals.
pub fn statement(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let mut headers: Vec<String> = report.by.iter().map(|s| s.to_string()).collect();
    headers.extend(
        [
            "calls",
            "refused",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_5m_tokens",
            "cache_write_1h_tokens",
            "cost_usd",
            "share",
        ]
        .map(String::from),
    );
    let rows = report.groups.iter().map(|l| cells(l, l.key.clone())).collect();
    (headers, rows)
}

fn cells(l: &Line, mut key: Vec<String>) -> Vec<String> {
    let t = &l.tokens;
    key.extend([
        l.calls.to_string(),
        l.refused.to_string(),
        t.input.to_string(),
        t.output.to_string(),
        t.cache_read.to_string(),
        t.cache_write_5m.to_string(),
        t.cache_write_1h.to_string(),
        l.cost.to_string(),
        l.share.to_string(),
    ]);
    key
}

/// The total line, its key padded to the `--by` columns.
pub fn total_cells(report: &Report) -> Vec<String> {
    let mut key = vec!["TOTAL".to_string()];
    key.resize(report.by.len().max(1), String::new());
    cells(&report.total, key)
}

/// Per team: the tier mix, where the dearest spend goes and what routing would save.
pub fn mix(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let headers = [
        "team",
        "cost_usd",
        "premium",
        "standard",
        "economy",
        "unpriced",
        "top_workflows_on_dearest",
        "cheapest_allowed",
        "savings_if_routed_usd",
    ];
    let rows = report.teams.iter().map(|v| {
        let mut row = vec![v.team.clone(), v.cost.to_string()];
        row.extend(super::routing::Tier::ALL.iter().map(|tier| {
            v.mix.iter().find(|m| m.tier == *tier).map_or("-".into(), |m| {
                format!("{} calls / {} spend", m.calls_share, m.cost_share)
            })
        }));
        let top: Vec<String> = v
            .top_workflows
            .iter()
            .map(|w| format!("{} {}", w.workflow, w.cost))
            .collect();
        let dearest = v.dearest_tier.map_or("", |t| t.name());
        row.push(if top.is_empty() {
            "-".into()
        } else {
            format!("{dearest}: {}", top.join(", "))
        });
        row.push(v.cheapest_model.clone().unwrap_or_else(|| "-".into()));
        row.push(format!("{} ({})", v.savings, v.savings_share));
        row
    });
    (headers.map(String::from).to_vec(), rows.collect())
}

/// Per team: spend so far, the projection and the budget.
pub fn burn(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let headers = [
        "team",
        "cost_center",
        "spent_usd",
        "rate_usd_per_day",
        "projected_usd",
        "budget_usd",
        "exhausted_on",
    ];
    let days = report.days.len().max(1) as i128;
    let rows = report.teams.iter().map(|v: &TeamView| {
        vec![
            v.team.clone(),
            v.cost_center.clone(),
            v.cost.to_string(),
            super::Money(v.projected.0 / days).to_string(),
            v.projected.to_string(),
            v.budget.map_or("-".into(), |b| b.to_string()),
            v.exhausts_at.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    (headers.map(String::from).to_vec(), rows.collect())
}

fn heading(report: &Report) -> String {
    format!(
        "{} calls in {} ({}, {} to {}), {} ledger files",
        report.total.calls, report.period, report.tz, report.from, report.to, report.files
    )
}

fn unattributed(report: &Report) -> String {
    let u = &report.unattributed;
    format!(
        "unattributed (team `unknown`): {} calls, {} USD, {} of the cost",
        u.calls, u.cost, u.share
    )
}

/// Columns padded to their widest cell; numbers right-aligned.
fn grid(out: &mut String, headers: &[String], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let numeric = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'%' || b == b'-')
    };
    for row in std::iter::once(&headers.iter().map(|h| h.to_uppercase()).collect()).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                if numeric(c) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
}

/// What a person reads in a terminal.
pub fn table(report: &Report) -> String {
    let mut out = format!("Tally chargeback: {}\n\n", heading(report));
    let (headers, mut rows) = statement(report);
    rows.push(total_cells(report));
    grid(&mut out, &headers, &rows);
    let _ = writeln!(
        out,
        "\n{}\n\nModel mix (share of calls / spend per tier) and savings if routed",
        unattributed(report)
    );
    let (headers, rows) = mix(report);
    grid(&mut out, &headers, &rows);
    out.push_str("\nBurn rate and forecast\n");
    let (headers, rows) = burn(report);
    grid(&mut out, &headers, &rows);
    out
}

/// The statement for spreadsheets: one line per group, money as exact decimals.
pub fn csv(report: &Report) -> String {
    let (headers, rows) = statement(report);
    let mut w = csv::Writer::from_writer(vec![]);
    for row in std::iter::once(&headers).chain(&rows) {
        w.write_record(row).expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("UTF-8 in, UTF-8 out")
}

/// The whole report as JSON (field names stable, money as decimal strings).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report serializes") + "\n"
}

fn md_table(out: &mut String, headers: &[String], rows: &[Vec<String>]) {
    let esc = |c: &str| c.replace('|', "\\|");
    let _ = writeln!(
        out,
        "| {} |",
        headers.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
    for row in rows {
        let _ = writeln!(
            out,
            "| {} |",
            row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        );
    }
}

/// A report a team lead reads.
pub fn markdown(report: &Report) -> String {
    let mut out = format!(
        "# Bedrock chargeback, {}\n\n{}.\n\n## Statement\n\n",
        report.period,
        heading(report)
    );
    let (headers, mut rows) = statement(report);
    rows.push(total_cells(report));
    md_table(&mut out, &headers, &rows);
    let _ = writeln!(
        out,
        "\n{}.\n\n## Model mix and savings if routed\n",
        unattributed(report)
    );
    out.push_str(
        "Tiers by output price: premium from $20, standard from $6, economy below (per million output tokens). ",
    );
    out.push_str("Savings if routed: the same calls priced on the team's cheapest allowed model.\n\n");
    let (headers, rows) = mix(report);
    md_table(&mut out, &headers, &rows);
    out.push_str("\n## Burn rate and forecast\n\n");
    let (headers, rows) = burn(report);
    md_table(&mut out, &headers, &rows);
    out
}
