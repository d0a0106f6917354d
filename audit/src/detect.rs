//! Which format a sample is in, from its first bytes and first record.

use serde::Serialize;
use serde_json::Value;

/// The formats `tally audit` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Tally's ledger as JSON lines (`/v1/ledger`, NDJSON or a JSON array).
    TallyLedger,
    /// Tally's ledger export as Parquet (columns named as the JSON fields).
    TallyLedgerParquet,
    /// Envoy JSON access log (Tally's chart format, or any JSON log with `path` and `response_flags`).
    EnvoyJson,
    /// Envoy's default text access-log format.
    EnvoyText,
    /// OTLP JSON traces, as the OpenTelemetry Collector's file exporter writes them.
    OtlpJson,
    /// Amazon Bedrock model invocation logs (CloudWatch Logs / S3 records).
    BedrockInvocationLog,
    /// LiteLLM `SpendLogs` rows as JSON.
    LiteLlmJson,
    /// LiteLLM `SpendLogs` rows as CSV.
    LiteLlmCsv,
    /// Any other JSON (or CSV) application log.
    AppLog,
    /// AWS CUR 2.0 rows as CSV.
    CurCsv,
    /// AWS CUR 2.0 rows as Parquet.
    CurParquet,
}

impl Format {
    pub fn label(self) -> &'static str {
        match self {
            Format::TallyLedger => "Tally ledger (JSON lines)",
            Format::TallyLedgerParquet => "Tally ledger (Parquet)",
            Format::EnvoyJson => "Envoy access log (JSON)",
            Format::EnvoyText => "Envoy access log (default text format)",
            Format::OtlpJson => "OpenTelemetry spans (OTLP JSON)",
            Format::BedrockInvocationLog => "Bedrock model invocation log",
            Format::LiteLlmJson => "LiteLLM SpendLogs (JSON)",
            Format::LiteLlmCsv => "LiteLLM SpendLogs (CSV)",
            Format::AppLog => "application log (JSON)",
            Format::CurCsv => "AWS CUR 2.0 (CSV)",
            Format::CurParquet => "AWS CUR 2.0 (Parquet)",
        }
    }

    /// Billing data: aggregated rows, never one per call.
    pub fn is_billing(self) -> bool {
        matches!(self, Format::CurCsv | Format::CurParquet)
    }
}

/// How the bytes are laid out, before the format is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Parquet,
    Csv,
    Json,
    Text,
}

pub fn layout(bytes: &[u8]) -> Layout {
    if bytes.starts_with(b"PAR1") {
        return Layout::Parquet;
    }
    let first = first_line(bytes);
    let t = first.trim_start();
    if t.starts_with('{') || t.starts_with('[') && !t.starts_with("[20") && !t.starts_with("[19") {
        Layout::Json
    } else if t.starts_with('[') {
        Layout::Text
    } else if t.contains(',') {
        Layout::Csv
    } else {
        Layout::Text
    }
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").to_string()
}

/// The format of a JSON sample from its first record.
pub fn json_format(first: &Value) -> Format {
    let has = |k: &str| first.get(k).is_some();
    if has("resourceSpans") {
        Format::OtlpJson
    } else if first.get("schemaType").and_then(Value::as_str) == Some("ModelInvocationLog")
        || (has("modelId") && has("input") && has("output") && has("requestId"))
    {
        Format::BedrockInvocationLog
    } else if has("chargeId") && has("requestId") {
        Format::TallyLedger
    } else if has("request_id") && has("spend") && (has("call_type") || has("prompt_tokens")) {
        Format::LiteLlmJson
    } else if has("response_flags") || (has("path") && has("upstream_host")) {
        Format::EnvoyJson
    } else {
        Format::AppLog
    }
}

/// The format of a table (CSV or Parquet) from its column names.
pub fn table_format(columns: &[String], parquet: bool) -> Format {
    let has = |k: &str| columns.iter().any(|c| c == k);
    if has("line_item_usage_type") || has("line_item_product_code") {
        if parquet { Format::CurParquet } else { Format::CurCsv }
    } else if has("chargeId") && has("requestId") {
        Format::TallyLedgerParquet
    } else if has("request_id") && has("spend") {
        Format::LiteLlmCsv
    } else {
        Format::AppLog
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tells_layouts_apart() {
        assert_eq!(layout(b"PAR1...."), Layout::Parquet);
        assert_eq!(layout(b"\n{\"a\":1}\n"), Layout::Json);
        assert_eq!(layout(b"[{\"a\":1}]"), Layout::Json);
        assert_eq!(
            layout(b"[2026-05-04T10:00:00.123Z] \"POST /model/x/converse HTTP/1.1\" 200"),
            Layout::Text
        );
        assert_eq!(layout(b"request_id,spend\nx,1\n"), Layout::Csv);
    }

    #[test]
    fn recognises_json_formats_by_their_keys() {
        assert_eq!(json_format(&json!({"resourceSpans": []})), Format::OtlpJson);
        assert_eq!(
            json_format(&json!({"schemaType": "ModelInvocationLog"})),
            Format::BedrockInvocationLog
        );
        assert_eq!(
            json_format(&json!({"requestId": "r", "chargeId": "r/1"})),
            Format::TallyLedger
        );
        assert_eq!(
            json_format(&json!({"request_id": "r", "spend": 0.1, "call_type": "acompletion"})),
            Format::LiteLlmJson
        );
        assert_eq!(
            json_format(&json!({"path": "/model/x/converse", "response_flags": "-"})),
            Format::EnvoyJson
        );
        assert_eq!(json_format(&json!({"msg": "hi"})), Format::AppLog);
    }
}
