//! The report as one self-contained HTML page (inline CSS, no scripts, no
//! external assets) that a person reads in a browser: the field table with
//! verdict colours, the evidence, and the fix list.

use std::fmt::Write;

use super::{FieldReport, Report, SetReport, Verdict, coverage_text};

/// Verdict badge colours (also what the screenshot test looks for).
pub const PRESENT_RGB: [u8; 3] = [0x2d, 0xa4, 0x4e];
pub const ABSENT_RGB: [u8; 3] = [0xcf, 0x22, 0x2e];
pub const MISSCOPED_RGB: [u8; 3] = [0xd4, 0x8a, 0x00];

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;margin:0;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px}
.sub{color:#59636e;margin:0 0 12px}
.score{display:inline-block;font-size:16px;background:#fff;border:1px solid #d1d9e0;border-radius:6px;padding:6px 12px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d1d9e0}
th,td{text-align:left;vertical-align:top;padding:6px 10px;border-bottom:1px solid #d1d9e0}
th{background:#eef1f4;font-weight:600}
td.field{white-space:nowrap;font-weight:600}
.v{display:inline-block;min-width:84px;text-align:center;border-radius:4px;color:#fff;font-weight:600;padding:2px 6px}
.present{background:#2da44e}.absent{background:#cf222e}.misscoped{background:#d48a00}.na{background:#8c959f}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eef1f4;border-radius:3px;padding:0 3px}
ul{margin:4px 0 0 18px;padding:0}li{margin:2px 0}
.finding{color:#7d4e00}.note{color:#59636e}.fix{color:#1f2328;margin:0 0 8px}
th:nth-child(2){width:96px}th:nth-child(4){width:26%}
ol li{margin:6px 0}.effort{display:inline-block;font-size:12px;border:1px solid #8c959f;border-radius:10px;padding:0 8px;margin-right:6px}
.targets{color:#59636e;font-size:12px}
";

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    out.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    out.push_str("<title>Tally attribution audit</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body><main>\n<h1>Attribution audit</h1>\n");
    let catalog = r
        .catalog
        .as_deref()
        .map(|c| format!(" · prices from <code>{}</code>", esc(c)))
        .unwrap_or_default();
    let _ = writeln!(out, "<p class=\"sub\">{} sample set(s){catalog}</p>", r.sets.len());
    let _ = writeln!(
        out,
        "<p class=\"score\">Score <b>{}/{}</b> ({}%) fields present and correct</p>",
        r.score.correct,
        r.score.expected,
        r.score.percent()
    );
    for set in &r.sets {
        set_section(&mut out, set);
    }
    work_section(&mut out, r);
    out.push_str("</main></body></html>\n");
    out
}

fn set_section(out: &mut String, set: &SetReport) {
    let _ = writeln!(
        out,
        "<section><h2><code>{}</code> — {}</h2><p class=\"sub\">{} records · score {}</p>",
        esc(&set.name),
        esc(set.format_label),
        set.records,
        set.score
    );
    out.push_str("<table><thead><tr><th>Field</th><th>Verdict</th><th>Evidence</th><th>Fix</th></tr></thead><tbody>\n");
    for f in &set.fields {
        field_row(out, f);
    }
    out.push_str("</tbody></table></section>\n");
}

fn field_row(out: &mut String, f: &FieldReport) {
    let class = match f.verdict {
        Verdict::Present => "present",
        Verdict::Absent => "absent",
        Verdict::Misscoped => "misscoped",
        Verdict::NotApplicable => "na",
    };
    let e = &f.evidence;
    let keys: Vec<String> = e.keys.iter().map(|k| format!("<code>{}</code>", esc(k))).collect();
    let mut evidence = format!(
        "{} · {}",
        if keys.is_empty() {
            "no key".into()
        } else {
            keys.join(", ")
        },
        coverage_text(e)
    );
    if let Some(x) = &e.example {
        let _ = write!(evidence, "<br><span class=\"note\">{}</span>", esc(x));
    }
    let items: Vec<String> = f
        .findings
        .iter()
        .map(|x| format!("<li class=\"finding\">{}</li>", code_spans(&x.text)))
        .chain(
            f.notes
                .iter()
                .map(|n| format!("<li class=\"note\">{}</li>", code_spans(n))),
        )
        .collect();
    if !items.is_empty() {
        let _ = write!(evidence, "<ul>{}</ul>", items.concat());
    }
    let fixes: Vec<String> = f
        .fixes
        .iter()
        .map(|x| format!("<div class=\"fix\">{}</div>", code_spans(x.text())))
        .collect();
    let _ = writeln!(
        out,
        "<tr><td class=\"field\">{}</td><td><span class=\"v {class}\">{}</span></td><td>{evidence}</td><td>{}</td></tr>",
        esc(f.field.label()),
        f.verdict.label(),
        fixes.concat()
    );
}

fn work_section(out: &mut String, r: &Report) {
    if r.work.is_empty() {
        return;
    }
    out.push_str("<section><h2>What to do before a full gateway rollout (smallest first)</h2><ol>\n");
    for item in &r.work {
        let targets: Vec<String> = super::targets_by_set(item).iter().map(|t| esc(t)).collect();
        let _ = writeln!(
            out,
            "<li><span class=\"effort\">{}</span>{}<div class=\"targets\">{}</div></li>",
            item.effort.label(),
            code_spans(item.text),
            targets.join(" · ")
        );
    }
    out.push_str("</ol></section>\n");
}

/// Escaped text with its `backticked` parts as `<code>`.
fn code_spans(s: &str) -> String {
    esc(s)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_string()
            }
        })
        .collect()
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
