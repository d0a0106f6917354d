//! A reconciliation as text: a table a person reads, Markdown for a ticket or a wiki, JSON
//! for pipelines, CSV of the compared cells or of the split invoice for spreadsheets.
//! Amounts are exact decimal USD strings; nothing here computes.

use std::fmt::Write as _;

use serde_json::{Value, json};
use tally_config::billing::TokenClass;
use tally_config::money::Nanos;

use super::Reconciliation;
use super::compare::Cell;
use super::summary::{Drift, Finding};

/// Output formats of `tally reconcile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Json,
    /// Every compared cell, one line each.
    Csv,
    /// The split invoice: team, tenant, workflow, billed and charged.
    CsvSplit,
}

pub fn render(r: &Reconciliation, format: Format) -> String {
    match format {
        Format::Table => text(r, false),
        Format::Markdown => text(r, true),
        Format::Json => serde_json::to_string_pretty(&to_json(r)).unwrap_or_default() + "\n",
        Format::Csv => cells_csv(&r.cells),
        Format::CsvSplit => split_csv(r),
    }
}

/// The tolerance as a percentage (`0.5%`).
pub fn percent(ppb: u128) -> String {
    let hundredths = ppb / 100_000; // 1 % = 10^7 ppb; keep 2 decimals
    format!("{}.{:02}%", hundredths / 100, hundredths % 100)
}

fn verdict(r: &Reconciliation) -> String {
    format!(
        "unexplained {} USD = {} of the bill (tolerance {}): {}",
        r.totals.unexplained,
        percent(r.unexplained_ppb()),
        percent(u128::from(r.tolerance.0)),
        if r.exceeded { "EXCEEDED" } else { "within tolerance" }
    )
}

/// Rows of cells padded to columns (table) or as a Markdown table.
fn grid(out: &mut String, header: &[&str], rows: &[Vec<String>], markdown: bool) {
    if markdown {
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for row in rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out.push('\n');
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string()
    };
    let _ = writeln!(out, "  {}", line(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "  {}", line(row.iter().map(String::as_str).collect()));
    }
    out.push('\n');
}

fn tier_name(tier: &str) -> &str {
    if tier.is_empty() { "standard" } else { tier }
}

fn text(r: &Reconciliation, md: bool) -> String {
    let mut out = String::new();
    let title = |out: &mut String, s: &str| {
        let _ = if md {
            writeln!(out, "## {s}\n")
        } else {
            writeln!(out, "{s}")
        };
    };
    let head = format!("tally reconcile {}: days are UTC (the bill's day)", r.period);
    let _ = if md {
        writeln!(out, "# {head}\n")
    } else {
        writeln!(out, "{head}\n")
    };
    let t = &r.totals;
    let rows = vec![
        vec![
            "bill (Bedrock token usage)".into(),
            t.bill_tokens.to_string(),
            t.bill_cost.to_string(),
        ],
        vec![
            "ledger (at catalog prices)".into(),
            t.ledger_tokens.to_string(),
            t.ledger_cost.to_string(),
        ],
        vec!["matched".into(), t.matched_tokens.to_string(), String::new()],
        vec!["explained differences".into(), String::new(), t.explained.to_string()],
        vec!["price drift".into(), String::new(), t.drift.to_string()],
        vec![
            "rounding (within tolerance)".into(),
            String::new(),
            t.rounding.to_string(),
        ],
        vec![
            "unexplained (|tokens| × price)".into(),
            String::new(),
            t.unexplained.to_string(),
        ],
    ];
    title(&mut out, "Totals");
    grid(&mut out, &["", "tokens", "USD"], &rows, md);
    let _ = writeln!(out, "{}\n", verdict(r));
    findings_text(&mut out, &r.findings, md, &title);
    drifts_text(&mut out, &r.drifts, md, &title);
    left_out_text(&mut out, r, md, &title);
    split_text(&mut out, r, md, &title);
    out
}

fn split_text(out: &mut String, r: &Reconciliation, md: bool, title: &dyn Fn(&mut String, &str)) {
    let split = format!(
        "The invoice, split by team: the bill's Bedrock usage cost, {} USD (tokens and other usage), \
         shared per cell in proportion to ledger tokens",
        r.bill.usage_cost()
    );
    title(out, &split);
    let mut rows: Vec<Vec<String>> = r
        .shares
        .iter()
        .filter(|s| !s.billed.is_zero() || !s.charged.is_zero())
        .map(|s| {
            vec![
                s.team.clone(),
                s.tenant.clone(),
                s.workflow.clone(),
                s.billed.to_string(),
                s.charged.to_string(),
            ]
        })
        .collect();
    let billed = r.shares.iter().fold(Nanos::ZERO, |a, s| a.saturating_add(s.billed));
    let charged = r.shares.iter().fold(Nanos::ZERO, |a, s| a.saturating_add(s.charged));
    rows.push(vec![
        "total".into(),
        String::new(),
        String::new(),
        billed.to_string(),
        charged.to_string(),
    ]);
    let header = ["team", "tenant", "workflow", "billed USD", "charged by Tally USD"];
    grid(out, &header, &rows, md);
}

fn findings_text(out: &mut String, findings: &[Finding], md: bool, title: &dyn Fn(&mut String, &str)) {
    if findings.is_empty() {
        return;
    }
    title(out, "Differences and their likely cause (tokens: bill − ledger)");
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            let mut row = vec![
                f.cause.as_str().to_string(),
                f.region.clone(),
                f.model.clone(),
                tier_name(&f.tier).to_string(),
                format!("{}..{} ({} d)", f.first_day, f.last_day, f.days),
            ];
            row.extend(f.tokens.iter().map(|t| format!("{t:+}")));
            row.push(f.dollars.to_string());
            row
        })
        .collect();
    let header = [
        "cause",
        "region",
        "model",
        "tier",
        "days",
        "input",
        "output",
        "cache read",
        "cache write",
        "USD",
    ];
    grid(out, &header, &rows, md);
}

fn drifts_text(out: &mut String, drifts: &[Drift], md: bool, title: &dyn Fn(&mut String, &str)) {
    if drifts.is_empty() {
        return;
    }
    title(
        out,
        "Price drift (the bill's unit price differs from the catalog's beyond the tolerance)",
    );
    let rows: Vec<Vec<String>> = drifts
        .iter()
        .map(|d| {
            vec![
                d.region.clone(),
                d.model.clone(),
                d.class.as_str().into(),
                tier_name(&d.tier).into(),
                d.catalog_price.to_string(),
                d.billed_price.map(|p| p.to_string()).unwrap_or_default(),
                format!("{} ({} d)", d.from_day, d.days),
                d.dollars.to_string(),
            ]
        })
        .collect();
    let header = [
        "region",
        "model",
        "class",
        "tier",
        "catalog USD/1M",
        "billed USD/1M",
        "from",
        "USD",
    ];
    grid(out, &header, &rows, md);
}

fn left_out_text(out: &mut String, r: &Reconciliation, md: bool, title: &dyn Fn(&mut String, &str)) {
    let b = &r.bill;
    let mut rows: Vec<Vec<String>> = b
        .excluded
        .iter()
        .map(|(kind, t)| vec![format!("excluded: {kind}"), t.lines.to_string(), t.cost.to_string()])
        .collect();
    rows.extend(b.other_usage.iter().map(|(usage_type, t)| {
        vec![
            format!("Bedrock usage, not tokens: {usage_type}"),
            t.lines.to_string(),
            t.cost.to_string(),
        ]
    }));
    rows.push(vec![
        "other services' lines".into(),
        b.other_services.to_string(),
        String::new(),
    ]);
    rows.push(vec![
        "lines outside the period".into(),
        b.outside_period.to_string(),
        String::new(),
    ]);
    title(
        out,
        &format!(
            "Bill lines not compared ({} files, {} lines; ledger: {} rows)",
            b.files, b.lines, r.ledger_rows
        ),
    );
    grid(out, &["what", "lines", "USD"], &rows, md);
}

fn to_json(r: &Reconciliation) -> Value {
    let t = &r.totals;
    json!({
        "period": r.period,
        "dayBasis": "UTC",
        "tolerance": percent(u128::from(r.tolerance.0)),
        "exceeded": r.exceeded,
        "totals": {
            "billTokens": t.bill_tokens, "ledgerTokens": t.ledger_tokens, "matchedTokens": t.matched_tokens,
            "billUsd": t.bill_cost.to_string(), "ledgerUsd": t.ledger_cost.to_string(),
            "explainedUsd": t.explained.to_string(), "driftUsd": t.drift.to_string(),
            "roundingUsd": t.rounding.to_string(), "unexplainedUsd": t.unexplained.to_string(),
        },
        "findings": r.findings.iter().map(|f| json!({
            "cause": f.cause.as_str(), "explained": f.cause.explained(), "region": f.region, "model": f.model,
            "tier": tier_name(&f.tier), "firstDay": f.first_day.to_string(), "lastDay": f.last_day.to_string(),
            "days": f.days, "tokens": class_map(&f.tokens), "usd": f.dollars.to_string(),
        })).collect::<Vec<_>>(),
        "drifts": r.drifts.iter().map(|d| json!({
            "region": d.region, "model": d.model, "class": d.class.as_str(), "tier": tier_name(&d.tier),
            "catalogUsdPerMillion": d.catalog_price.to_string(),
            "billedUsdPerMillion": d.billed_price.map(|p| p.to_string()),
            "fromDay": d.from_day.to_string(), "days": d.days, "usd": d.dollars.to_string(),
        })).collect::<Vec<_>>(),
        "excluded": r.bill.excluded.iter().map(|(k, v)| (k.clone(), json!({"lines": v.lines, "usd": v.cost.to_string()}))).collect::<serde_json::Map<_, _>>(),
        "otherUsage": r.bill.other_usage.iter().map(|(k, v)| (k.clone(), json!({"lines": v.lines, "usd": v.cost.to_string()}))).collect::<serde_json::Map<_, _>>(),
        "split": r.shares.iter().map(|s| json!({
            "team": s.team, "tenant": s.tenant, "workflow": s.workflow,
            "billedUsd": s.billed.to_string(), "chargedUsd": s.charged.to_string(),
        })).collect::<Vec<_>>(),
        "cells": r.cells.len(),
    })
}

fn class_map(tokens: &[i128; 4]) -> Value {
    TokenClass::ALL
        .iter()
        .zip(tokens)
        .map(|(c, t)| (c.as_str().to_string(), json!(t.to_string())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn csv_line(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    quoted.join(",") + "\n"
}

fn cells_csv(cells: &[Cell]) -> String {
    let mut out = String::from(
        "day,region,model,class,tier,bill_tokens,ledger_tokens,bill_usd,expected_usd,ledger_usd,catalog_usd_per_million,cause,price_drift\n",
    );
    for c in cells {
        let k = &c.key;
        out += &csv_line(&[
            k.day.to_string(),
            k.region.clone(),
            k.model.clone(),
            k.class.as_str().into(),
            tier_name(&k.tier).into(),
            c.bill.tokens.to_string(),
            c.ledger_tokens.to_string(),
            c.bill.cost.to_string(),
            c.expected_cost.to_string(),
            c.ledger_cost.to_string(),
            c.price.map(|p| p.to_string()).unwrap_or_default(),
            c.cause.map(|x| x.as_str()).unwrap_or("").into(),
            c.drift.to_string(),
        ]);
    }
    out
}

fn split_csv(r: &Reconciliation) -> String {
    let mut out = String::from("team,tenant,workflow,billed_usd,charged_usd\n");
    for s in &r.shares {
        out += &csv_line(&[
            s.team.clone(),
            s.tenant.clone(),
            s.workflow.clone(),
            s.billed.to_string(),
            s.charged.to_string(),
        ]);
    }
    out
}
