//! Readers, one per format: a sample's bytes in, per-call [`Observation`]s out,
//! with what the format itself declares (its token convention, a float cost).

pub mod applog;
pub mod bedrock_log;
pub mod cur;
pub mod envoy;
pub mod ledger;
pub mod litellm;
pub mod otlp;
pub mod tabular;

use std::io::Read;

use serde_json::Value;

use crate::detect::{self, Format, Layout};
use crate::field::Field;
use crate::observation::{Convention, Observation};

/// What a format says about its own fields, whatever the records hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct Profile {
    /// How the format counts input tokens when part of the prompt was cached.
    pub convention: Option<Convention>,
    /// The format stores cost as a binary float (LiteLLM's `spend` is `DOUBLE PRECISION`).
    pub float_cost: bool,
    /// Fields the format omits when zero: once any record carries the key,
    /// records without it count as carrying zero.
    pub zero_when_missing: &'static [Field],
}

/// One parsed sample set.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The file name (or `stdin`).
    pub name: String,
    pub format: Format,
    pub profile: Profile,
    pub observations: Vec<Observation>,
    /// Records that were not calls (other paths, pagination lines, non-Bedrock rows) or did not parse.
    pub skipped: usize,
}

impl Format {
    pub fn profile(self) -> Profile {
        match self {
            Format::TallyLedger | Format::TallyLedgerParquet => Profile {
                convention: Some(Convention::Exclusive),
                ..Profile::default()
            },
            Format::OtlpJson => Profile {
                convention: Some(Convention::Inclusive),
                zero_when_missing: &[Field::CacheReadTokens, Field::CacheWriteTokens],
                ..Profile::default()
            },
            Format::BedrockInvocationLog => Profile {
                convention: Some(Convention::Exclusive),
                zero_when_missing: &[Field::CacheReadTokens, Field::CacheWriteTokens],
                ..Profile::default()
            },
            Format::LiteLlmJson | Format::LiteLlmCsv => Profile {
                convention: Some(Convention::Inclusive),
                float_cost: true,
                zero_when_missing: &[Field::CacheReadTokens, Field::CacheWriteTokens],
            },
            _ => Profile::default(),
        }
    }
}

/// Recognises and parses one sample.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Sample, String> {
    let bytes = gunzip(bytes)?;
    let (format, records, mut skipped) = match detect::layout(&bytes) {
        Layout::Parquet => {
            let t = tabular::parquet_rows(&bytes)?;
            (detect::table_format(&t.columns, true), t.rows, 0)
        }
        Layout::Csv => {
            let t = tabular::csv_rows(&bytes)?;
            (detect::table_format(&t.columns, false), t.rows, 0)
        }
        Layout::Json => {
            let (records, skipped) = json_records(&bytes)?;
            let first = records.first().ok_or("no JSON records")?;
            (detect::json_format(first), records, skipped)
        }
        Layout::Text => {
            let (records, skipped) = envoy::text_records(&String::from_utf8_lossy(&bytes));
            if records.is_empty() {
                return Err("not a format tally audit reads (no JSON, CSV, Parquet or Envoy access-log lines)".into());
            }
            (Format::EnvoyText, records, skipped)
        }
    };
    let observations = observe(format, &records);
    skipped += records.len().saturating_sub(observations.len()) * usize::from(format != Format::OtlpJson);
    Ok(Sample {
        name: name.to_string(),
        format,
        profile: format.profile(),
        observations,
        skipped,
    })
}

fn observe(format: Format, records: &[Value]) -> Vec<Observation> {
    match format {
        Format::TallyLedger | Format::TallyLedgerParquet => ledger::observe(records),
        Format::EnvoyJson | Format::EnvoyText => envoy::observe(records),
        Format::OtlpJson => otlp::observe(records),
        Format::BedrockInvocationLog => bedrock_log::observe(records),
        Format::LiteLlmJson | Format::LiteLlmCsv => litellm::observe(records),
        Format::AppLog => applog::observe(records),
        Format::CurCsv | Format::CurParquet => cur::observe(records),
    }
}

/// `read` applied to every record that has `key` (the format's identifying
/// field), numbered by its position in the sample.
pub fn records_with(records: &[Value], key: &str, read: fn(usize, &Value) -> Observation) -> Vec<Observation> {
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.get(key).is_some())
        .map(|(i, r)| read(i + 1, r))
        .collect()
}

/// A JSON array, one JSON object, or JSON lines. Lines that are not JSON
/// objects, and ledger pagination lines (`{"next": …}`), are skipped.
fn json_records(bytes: &[u8]) -> Result<(Vec<Value>, usize), String> {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return match v {
            Value::Array(items) => Ok((items.into_iter().filter(Value::is_object).collect(), 0)),
            obj @ Value::Object(_) => Ok((vec![obj], 0)),
            _ => Err("JSON that is neither an object nor an array of objects".into()),
        };
    }
    let mut records = vec![];
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() && !is_pagination(&v) => records.push(v),
            Ok(v) if is_pagination(&v) => {}
            _ => skipped += 1,
        }
    }
    Ok((records, skipped))
}

/// The last line of a ledger page: `{"next": "<cursor>"}`.
pub fn is_pagination(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("next"))
}

/// S3 delivers Bedrock invocation logs (and many exports) gzip-compressed.
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let mut out = vec![];
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| format!("bad gzip: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_skip_pagination_and_garbage() {
        let (records, skipped) = json_records(b"{\"a\":1}\nnot json\n{\"next\":\"c1\"}\n{\"b\":2}\n").unwrap();
        assert_eq!((records.len(), skipped), (2, 1));
        let (array, _) = json_records(b"[{\"a\":1},{\"a\":2}]").unwrap();
        assert_eq!(array.len(), 2);
    }

    #[test]
    fn gzip_is_transparent() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        gz.write_all(b"{\"x\":1}\n").unwrap();
        assert_eq!(gunzip(&gz.finish().unwrap()).unwrap(), b"{\"x\":1}\n");
    }
}
