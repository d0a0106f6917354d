//! `--format html`: one self-contained page (inline CSS and SVG, no script, no external
//! asset) with the statement and two charts — cumulative spend per day by team against each
//! budget's line, and each team's spend per model tier. Pure: a [`Report`] in, a string out.
//! Pixel positions are the only floating-point numbers here; every amount shown is the exact
//! decimal.

use std::fmt::Write;

use super::routing::Tier;
use super::{Report, text};

/// Team line colours, in the teams' order (by spend); they repeat past eight teams.
pub const TEAM_COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// The colour of a model tier's bar segment.
pub fn tier_colour(tier: Tier) -> &'static str {
    match tier {
        Tier::Premium => "#b03a2e",
        Tier::Standard => "#e67e22",
        Tier::Economy => "#229954",
        Tier::Unpriced => "#95a5a6",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}\
table{border-collapse:collapse;margin:8px 0 24px}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f2f2f2}h1{font-size:22px}h2{font-size:17px;margin-top:28px}\
svg{background:#fff;border:1px solid #ddd}text{font-size:11px;fill:#333}";

/// The page.
pub fn page(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Bedrock chargeback {}</title><style>{STYLE}</style></head><body>",
        esc(&report.period)
    );
    let _ = write!(
        out,
        "<h1>Bedrock chargeback, {} ({})</h1><p>{} calls, {} USD; unattributed (team <code>unknown</code>): {} calls, {} USD, {}.</p>",
        esc(&report.period),
        esc(&report.tz),
        report.total.calls,
        report.total.cost,
        report.unattributed.calls,
        report.unattributed.cost,
        report.unattributed.share
    );
    out.push_str("<h2>Spend per day by team, cumulative, with each budget</h2>");
    spend_chart(&mut out, report);
    out.push_str("<h2>Model mix per team (share of spend per tier)</h2>");
    mix_chart(&mut out, report);
    out.push_str("<h2>Statement</h2>");
    let (headers, mut rows) = text::statement(report);
    rows.push(text::total_cells(report));
    html_table(&mut out, &headers, &rows);
    out.push_str("<h2>Model mix and savings if routed</h2>");
    let (headers, rows) = text::mix(report);
    html_table(&mut out, &headers, &rows);
    out.push_str("<h2>Burn rate and forecast</h2>");
    let (headers, rows) = text::burn(report);
    html_table(&mut out, &headers, &rows);
    out.push_str("</body></html>\n");
    out
}

fn html_table(out: &mut String, headers: &[String], rows: &[Vec<String>]) {
    out.push_str("<table><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for c in row {
            let numeric = !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'%');
            let _ = write!(out, "<td{}>{}</td>", if numeric { " class=\"n\"" } else { "" }, esc(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 30.0;

/// Nano-USD as (approximate) dollars, for placing a point on the chart only.
fn px_usd(nanos: i128) -> f64 {
    nanos as f64 / 1e9
}

/// The chart's axes, the top of its scale and the first and last day.
fn axes(out: &mut String, report: &Report, ymax: f64, x: &dyn Fn(usize) -> f64) {
    let days = report.days.len().max(1);
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>",
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"#888\"/>",
        H - BOTTOM
    );
    let _ = write!(
        out,
        "<text x=\"4\" y=\"{}\">{:.2} USD</text><text x=\"4\" y=\"{}\">0</text>",
        TOP + 10.0,
        ymax,
        H - BOTTOM
    );
    for (i, label) in [(0, report.days.first()), (days - 1, report.days.last())] {
        if let Some(l) = label {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x(i),
                H - 10.0,
                esc(l)
            );
        }
    }
}

fn spend_chart(out: &mut String, report: &Report) {
    let days = report.days.len().max(1);
    let cumulative: Vec<Vec<i128>> = report
        .teams
        .iter()
        .map(|t| {
            t.daily
                .iter()
                .scan(0i128, |acc, d| Some(*acc + d.0).inspect(|v| *acc = *v))
                .collect()
        })
        .collect();
    let top = cumulative
        .iter()
        .flatten()
        .copied()
        .chain(report.teams.iter().filter_map(|t| t.budget.map(|b| b.0)))
        .max()
        .unwrap_or(0)
        .max(1);
    let ymax = px_usd(top) * 1.05;
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * i as f64 / (days.max(2) - 1) as f64;
    let y = |usd: f64| TOP + (H - TOP - BOTTOM) * (1.0 - usd / ymax);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\">"
    );
    axes(out, report, ymax, &x);
    for (n, (team, points)) in report.teams.iter().zip(&cumulative).enumerate() {
        let colour = TEAM_COLOURS[n % TEAM_COLOURS.len()];
        let path: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(px_usd(*v))))
            .collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"3\" points=\"{}\"/>",
            path.join(" ")
        );
        if let Some(b) = team.budget {
            let by = y(px_usd(b.0));
            let _ = write!(
                out,
                "<line x1=\"{LEFT}\" y1=\"{by:.1}\" x2=\"{}\" y2=\"{by:.1}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>",
                W - RIGHT
            );
        }
        let ly = TOP + 16.0 * n as f64 + 8.0;
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"{:.1}\">{} {}</text>",
            W - RIGHT + 10.0,
            ly - 10.0,
            W - RIGHT + 28.0,
            ly,
            esc(&team.team),
            team.cost
        );
    }
    out.push_str("</svg>");
}

fn mix_chart(out: &mut String, report: &Report) {
    let bar = 22.0;
    let height = (report.teams.len() as f64 * (bar + 8.0) + 40.0).max(60.0);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" viewBox=\"0 0 {W} {height}\" role=\"img\">"
    );
    let span = W - 140.0 - 20.0;
    for (n, team) in report.teams.iter().enumerate() {
        let top = 10.0 + n as f64 * (bar + 8.0);
        let _ = write!(out, "<text x=\"4\" y=\"{:.1}\">{}</text>", top + 15.0, esc(&team.team));
        let mut left = 140.0;
        for m in &team.mix {
            let width = span * f64::from(m.cost_share.0) / 10_000.0;
            let _ = write!(
                out,
                "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{bar}\" fill=\"{}\"><title>{} {}</title></rect>",
                tier_colour(m.tier),
                m.tier.name(),
                m.cost_share
            );
            left += width;
        }
    }
    let ly = height - 14.0;
    for (i, tier) in Tier::ALL.iter().enumerate() {
        let lx = 140.0 + 120.0 * i as f64;
        let _ = write!(
            out,
            "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{ly}\">{}</text>",
            ly - 10.0,
            tier_colour(*tier),
            lx + 16.0,
            tier.name()
        );
    }
    out.push_str("</svg>");
}
