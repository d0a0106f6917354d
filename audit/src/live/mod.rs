//! Live attribution coverage of a running Tally: of the calls (and the spend)
//! in its ledger, the share that arrived without a team, a tenant or a
//! workflow, by source (workload identity, SDK client, claimed team), so a
//! rollout can be tracked to 100 %. [`fetch`] reads the ledger API; the
//! numbers are computed here from plain records.

pub mod fetch;
pub mod render;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use tally_config::compiled::UNKNOWN_TEAM;

use crate::checks::clock;
use crate::lookup::is_blank;

/// Calls and spend missing one attribution dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// `team`, `tenant` or `workflow`.
    pub dimension: &'static str,
    pub calls: usize,
    pub spend_nanos: i64,
}

/// One source of calls and what its calls lacked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceRow {
    pub source: String,
    pub calls: usize,
    pub spend_nanos: i64,
    pub no_team: usize,
    pub no_tenant: usize,
    pub no_workflow: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The ledger URL read.
    pub ledger: String,
    /// Only records at or after this instant (RFC 3339).
    pub since: Option<String>,
    pub calls: usize,
    pub spend_nanos: i64,
    pub missing: Vec<Missing>,
    /// Sources with the most unattributed calls first.
    pub by_source: Vec<SourceRow>,
}

/// Share of `part` in `whole`, in percent (0 when `whole` is 0).
pub fn share(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Who sent a call: its workload identity, else its SDK client, else the team
/// it claimed, else the team it was charged to.
fn source(r: &Value) -> String {
    let s = |k: &str| r.get(k).filter(|v| !is_blank(v)).and_then(Value::as_str);
    if let Some(p) = s("principal") {
        format!("principal {p}")
    } else if let Some(c) = s("client") {
        format!("client {c}")
    } else if let Some(t) = s("claimedTeam") {
        format!("x-team-id {t} (not a configured team)")
    } else {
        match s("team") {
            Some(t) if t != UNKNOWN_TEAM => format!("team {t}"),
            _ => "(no identity, no attribution headers)".into(),
        }
    }
}

/// Coverage of the ledger `records` (as the API returns them) from `since` on.
pub fn coverage(ledger: &str, records: &[Value], since: Option<Timestamp>) -> Coverage {
    let mut c = Coverage {
        ledger: ledger.to_string(),
        since: since.map(|t| t.to_string()),
        missing: ["team", "tenant", "workflow"]
            .into_iter()
            .map(|dimension| Missing {
                dimension,
                ..Missing::default()
            })
            .collect(),
        ..Coverage::default()
    };
    let mut sources: BTreeMap<String, SourceRow> = BTreeMap::new();
    for r in records.iter().filter(|r| r.get("requestId").is_some()) {
        let at = r.get("time").and_then(Value::as_str).and_then(clock::parse);
        if since.is_some_and(|s| at.is_none_or(|a| a.at < s)) {
            continue;
        }
        let spend = r.get("costNanos").and_then(Value::as_i64).unwrap_or(0);
        let lacks = [
            r.get("team").and_then(Value::as_str).is_none_or(|t| t == UNKNOWN_TEAM),
            r.get("tenant").is_none_or(is_blank),
            r.get("workflow").is_none_or(is_blank),
        ];
        c.calls += 1;
        c.spend_nanos += spend;
        let row = sources.entry(source(r)).or_default();
        row.calls += 1;
        row.spend_nanos += spend;
        for (i, lack) in lacks.into_iter().enumerate() {
            if lack {
                c.missing[i].calls += 1;
                c.missing[i].spend_nanos += spend;
                *[&mut row.no_team, &mut row.no_tenant, &mut row.no_workflow][i] += 1;
            }
        }
    }
    c.by_source = sources
        .into_iter()
        .map(|(source, row)| SourceRow { source, ..row })
        .collect();
    c.by_source.sort_by(|a, b| {
        (b.no_team + b.no_tenant + b.no_workflow)
            .cmp(&(a.no_team + a.no_tenant + a.no_workflow))
            .then(b.calls.cmp(&a.calls))
            .then(a.source.cmp(&b.source))
    });
    c
}

/// `24h`, `30m`, `7d`, `90s` as a duration.
pub fn parse_since(s: &str) -> Option<jiff::SignedDuration> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    Some(jiff::SignedDuration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rec(team: &str, tenant: Option<&str>, workflow: Option<&str>, cost: i64, time: &str) -> Value {
        let mut r = json!({"requestId": "r", "team": team, "costNanos": cost, "time": time});
        if let Some(t) = tenant {
            r["tenant"] = json!(t);
        }
        if let Some(w) = workflow {
            r["workflow"] = json!(w);
        }
        r
    }

    #[test]
    fn counts_calls_and_spend_missing_each_dimension() {
        let records = [
            rec("search", Some("acme"), Some("rag"), 600, "2026-05-04T10:00:00Z"),
            rec("search", None, Some("rag"), 300, "2026-05-04T10:00:01Z"),
            rec("unknown", None, None, 100, "2026-05-04T10:00:02Z"),
            rec("search", None, None, 999, "2026-05-01T00:00:00Z"),
        ];
        let since = "2026-05-04T00:00:00Z".parse().ok();
        let c = coverage("http://x", &records, since);
        assert_eq!((c.calls, c.spend_nanos), (3, 1000));
        assert_eq!((c.missing[0].calls, c.missing[0].spend_nanos), (1, 100));
        assert_eq!((c.missing[1].calls, c.missing[1].spend_nanos), (2, 400));
        assert_eq!((c.missing[2].calls, c.missing[2].spend_nanos), (1, 100));
        assert_eq!(c.by_source[0].source, "(no identity, no attribution headers)");
        assert_eq!(c.by_source[1].source, "team search");
        assert_eq!(share(400, 1000), 40.0);
    }

    #[test]
    fn sources_prefer_identity_then_client_then_claimed_team() {
        assert_eq!(
            source(&json!({"principal": "spiffe://a", "client": "app/x"})),
            "principal spiffe://a"
        );
        assert_eq!(source(&json!({"client": "app/x", "team": "t"})), "client app/x");
        assert_eq!(
            source(&json!({"claimedTeam": "serch", "team": "unknown"})),
            "x-team-id serch (not a configured team)"
        );
        assert_eq!(parse_since("24h"), Some(jiff::SignedDuration::from_hours(24)));
        assert_eq!(parse_since("7d"), Some(jiff::SignedDuration::from_hours(168)));
        assert_eq!(parse_since("soon"), None);
    }
}
