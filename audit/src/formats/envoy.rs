//! Envoy access logs: JSON (Tally's chart format, or any `json_format` with
//! the usual operator names) and Envoy's default text format
//!
//! `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
//! %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//! %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//! "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"`
//!
//! Text lines are turned into JSON objects with the chart's key names, so one
//! mapping serves both.

use serde_json::{Map, Value};

use crate::field::Field;
use crate::lookup::{self, pick};
use crate::observation::{CallContext, Found, Observation, RetryKey};

/// Keys of the default text format's fields, in order, after the start time and request line.
const TEXT_FIELDS: &[&str] = &[
    "status",
    "response_flags",
    "bytes_received",
    "bytes_sent",
    "duration_ms",
    "upstream_service_time_ms",
    "x_forwarded_for",
    "user_agent",
    "x_request_id",
    "authority",
    "upstream_host",
];

/// Parses default-format lines into JSON objects; counts the lines that are not access-log lines.
pub fn text_records(text: &str) -> (Vec<Value>, usize) {
    let mut out = vec![];
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match text_line(line) {
            Some(v) => out.push(v),
            None => skipped += 1,
        }
    }
    (out, skipped)
}

fn text_line(line: &str) -> Option<Value> {
    let tokens = tokens(line)?;
    let (time, request, rest) = (tokens.first()?, tokens.get(1)?, &tokens[2..]);
    let mut parts = request.splitn(3, ' ');
    let mut m = Map::new();
    m.insert("time".into(), Value::String(time.clone()));
    m.insert("method".into(), Value::String(parts.next()?.into()));
    m.insert("path".into(), Value::String(parts.next()?.into()));
    m.insert("protocol".into(), Value::String(parts.next().unwrap_or("-").into()));
    for (key, value) in TEXT_FIELDS.iter().zip(rest) {
        m.insert((*key).into(), Value::String(value.clone()));
    }
    Some(Value::Object(m))
}

/// `[bracketed]`, `"quoted"` and bare tokens of one line.
fn tokens(line: &str) -> Option<Vec<String>> {
    let mut out = vec![];
    let mut rest = line.trim();
    if !rest.starts_with('[') {
        return None;
    }
    while !rest.is_empty() {
        let (token, tail) = match rest.as_bytes()[0] {
            b'[' => rest[1..].split_once(']')?,
            b'"' => rest[1..].split_once('"')?,
            _ => rest.split_once(' ').unwrap_or((rest, "")),
        };
        out.push(token.to_string());
        rest = tail.trim_start();
    }
    Some(out)
}

pub fn observe(records: &[Value]) -> Vec<Observation> {
    records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| record(i + 1, r))
        .collect()
}

/// The model id in a Bedrock runtime path (`/model/{modelId}/converse`), percent-decoded.
pub fn model_from_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/model/")?;
    let id = rest.rsplit_once('/').map(|(id, _)| id).unwrap_or(rest);
    let decoded = percent_encoding::percent_decode_str(id).decode_utf8().ok()?;
    Some(decoded.into_owned())
}

fn record(n: usize, r: &Value) -> Option<Observation> {
    let path = r.get("path").and_then(Value::as_str).unwrap_or("");
    let path_model = model_from_path(path.split('?').next().unwrap_or(path));
    if path_model.is_none() && !path.starts_with("/async-invoke") {
        return None; // not a Bedrock call: probes, scrapes, other routes
    }
    let mut o = Observation::new(n);
    o.set(
        Field::ModelId,
        pick(r, &["model"]).or_else(|| path_model.map(|m| Found::new("path", m.into()))),
    );
    let authority = r.get("authority").and_then(Value::as_str).unwrap_or("");
    let region = lookup::region_from_host(authority);
    o.set(
        Field::Region,
        region.clone().map(|g| Found::new("authority (host)", g.into())),
    );
    o.set(Field::Latency, pick(r, &["duration_ms", "duration"]));
    o.set(Field::TeamId, pick(r, &["team", "team_id"]));
    o.set(Field::TenantId, pick(r, &["tenant", "tenant_id"]));
    o.set(Field::WorkflowId, pick(r, &["workflow", "workflow_id"]));
    o.set(Field::CostUsd, pick(r, &["cost_usd"]));
    o.set(
        Field::RequestId,
        pick(r, &["tally_request_id", "amz_sdk_invocation_id", "x_request_id"]),
    );
    let status = r.get("status").map(lookup::text).unwrap_or_default();
    let ok = status.starts_with('2');
    // Same client, same request line and body size: attempts of one call.
    let client = ["x_forwarded_for", "downstream_remote_address"]
        .iter()
        .find_map(|k| r.get(*k).filter(|v| !lookup::is_blank(v)).map(lookup::text))
        .map(|c| c.rsplit_once(':').map_or(c.clone(), |(ip, _)| ip.to_string()))
        .unwrap_or_default();
    let retry = pick(r, &["amz_sdk_invocation_id"])
        .map(|f| RetryKey {
            value: lookup::text(&f.value),
            certain: true,
        })
        .unwrap_or_else(|| RetryKey {
            value: lookup::fingerprint(&[
                &client,
                path,
                &r.get("user_agent").map(lookup::text).unwrap_or_default(),
                &r.get("bytes_received").map(lookup::text).unwrap_or_default(),
            ]),
            certain: false,
        });
    o.call = CallContext {
        time: r.get("time").map(lookup::text),
        succeeded: Some(ok),
        failure: (!ok).then(|| status.clone()),
        retry_key: Some(retry),
        endpoint_region: region,
        currency: Some("USD".into()),
        ..CallContext::default()
    };
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"[2026-05-04T09:12:01.201Z] "POST /model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse HTTP/1.1" 429 - 1843 97 412 410 "10.42.3.17" "Boto3/1.38.27 md/Botocore#1.38.27" "5e0c2b7d-8a8e-4d8f-9c61-2f0a4b0b1c11" "bedrock-runtime.us-east-1.amazonaws.com" "52.94.0.10:443""#;

    #[test]
    fn parses_the_default_text_format() {
        let (records, skipped) = text_records(&format!("{LINE}\nnot a log line\n"));
        assert_eq!((records.len(), skipped), (1, 1));
        let r = &records[0];
        assert_eq!(r["status"], "429");
        assert_eq!(r["duration_ms"], "412");
        assert_eq!(r["x_request_id"], "5e0c2b7d-8a8e-4d8f-9c61-2f0a4b0b1c11");
        assert_eq!(r["authority"], "bedrock-runtime.us-east-1.amazonaws.com");
        let o = &observe(&records)[0];
        assert_eq!(
            o.text(Field::ModelId).as_deref(),
            Some("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        );
        assert_eq!(o.text(Field::Region).as_deref(), Some("us-east-1"));
        assert_eq!(o.call.succeeded, Some(false));
    }

    #[test]
    fn other_paths_are_not_calls() {
        let (records, _) = text_records(
            r#"[2026-05-04T09:12:01.201Z] "GET /ready HTTP/1.1" 200 - 0 5 0 - "-" "kube-probe/1.33" "-" "10.0.0.1:8080" "-""#,
        );
        assert!(observe(&records).is_empty());
    }
}
