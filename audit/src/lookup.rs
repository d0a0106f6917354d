//! Finding keys and reading values in JSON records: dotted paths, flattened
//! leaves, key names compared without case or punctuation, and the blank
//! values loggers write for "not set" (`-`, `null`, empty).

use serde_json::{Map, Value};

/// A field found in a record: the key it was under and its value as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub key: String,
    pub value: Value,
}

impl Found {
    pub fn new(key: impl Into<String>, value: Value) -> Found {
        Found { key: key.into(), value }
    }
}

/// Values that mean "not set" in access logs and exports.
const BLANKS: &[&str] = &["", "-", "null", "none", "n/a", "nil", "undefined"];

pub fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => BLANKS.contains(&s.trim().to_ascii_lowercase().as_str()),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `a.b.c` inside `v`; object keys only.
pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| cur.get(key))
}

/// The first of `paths` present and not blank, with the path it was found at.
pub fn pick(v: &Value, paths: &[&str]) -> Option<Found> {
    paths
        .iter()
        .find_map(|p| get(v, p).filter(|x| !is_blank(x)).map(|x| Found::new(*p, x.clone())))
}

/// A number or a numeric string as a count; negative or fractional values are not counts.
pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A number or a numeric string as a float.
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A value as text: strings unquoted, everything else as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `tenant_ID`, `tenant-id`, `tenantId` → `tenantid`.
pub fn normalize(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Every leaf of `v` with its dotted path (arrays are leaves), shallowest first.
pub fn leaves(v: &Value) -> Vec<(String, Value)> {
    let mut out = vec![];
    let mut level: Vec<(String, &Map<String, Value>)> = match v {
        Value::Object(m) => vec![(String::new(), m)],
        _ => return out,
    };
    while !level.is_empty() {
        let mut next = vec![];
        for (prefix, map) in level {
            for (k, val) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match val {
                    Value::Object(m) => next.push((path, m)),
                    other => out.push((path, other.clone())),
                }
            }
        }
        level = next;
    }
    out
}

/// The shallowest leaf whose last key segment, normalized, is one of `names`
/// (already normalized), and whose value is not blank.
pub fn by_name(leaves: &[(String, Value)], names: &[&str]) -> Option<Found> {
    names.iter().find_map(|name| {
        leaves
            .iter()
            .find(|(path, v)| !is_blank(v) && normalize(last_segment(path)) == *name)
            .map(|(path, v)| Found::new(path.clone(), v.clone()))
    })
}

fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// The region in a Bedrock runtime host or URL: `bedrock-runtime.us-east-1.amazonaws.com` → `us-east-1`.
pub fn region_from_host(host: &str) -> Option<String> {
    let rest = host.split("bedrock-runtime").nth(1)?;
    let rest = rest.trim_start_matches("-fips").strip_prefix('.')?;
    let region = rest.split('.').next()?;
    (!region.is_empty() && region.contains('-')).then(|| region.to_string())
}

/// The region of an ARN (`arn:aws:bedrock:eu-west-1:…`), if it names one.
pub fn region_from_arn(arn: &str) -> Option<String> {
    let region = arn.strip_prefix("arn:")?.split(':').nth(2)?;
    (!region.is_empty()).then(|| region.to_string())
}

/// A JSON string field of `v` parsed as JSON (exports store nested objects as text).
pub fn nested_json(v: &Value, key: &str) -> Option<Value> {
    match v.get(key)? {
        Value::String(s) => serde_json::from_str(s).ok(),
        other @ Value::Object(_) => Some(other.clone()),
        _ => None,
    }
}

/// A short stable fingerprint of some text (retry grouping by payload).
pub fn fingerprint(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_the_shallowest_key_by_normalized_name() {
        let v = json!({"ctx": {"tenant_id": "deep"}, "Tenant-ID": "top", "empty": {"tenantId": "-"}});
        let found = by_name(&leaves(&v), &["tenantid"]).unwrap();
        assert_eq!((found.key.as_str(), found.value.as_str()), ("Tenant-ID", Some("top")));
    }

    #[test]
    fn blanks_are_not_values() {
        for blank in [json!(null), json!("-"), json!(""), json!("None"), json!([])] {
            assert!(is_blank(&blank), "{blank}");
        }
        assert!(!is_blank(&json!(0)));
        assert_eq!(
            pick(&json!({"a": "-", "b": {"c": 3}}), &["a", "b.c"]).unwrap().key,
            "b.c"
        );
    }

    #[test]
    fn regions_come_from_hosts_and_arns() {
        assert_eq!(
            region_from_host("https://bedrock-runtime.us-west-2.amazonaws.com/model/x/converse").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            region_from_host("bedrock-runtime-fips.us-east-1.amazonaws.com").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(region_from_host("gateway.platform.svc"), None);
        assert_eq!(
            region_from_arn("arn:aws:bedrock:eu-central-1:123:application-inference-profile/x").as_deref(),
            Some("eu-central-1")
        );
    }
}
