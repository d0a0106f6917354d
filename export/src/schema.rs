//! The Parquet schema of the exported ledger (documented in `docs/ledger.md`) and turning
//! ledger records into one Parquet file. Pure: bytes in memory, no I/O.
//!
//! Money is exact twice over: `DECIMAL(18,9)` USD (what SQL users sum) built from the
//! record's integer nano-USD, and the nano-USD themselves. Times are UTC microseconds.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use tally_config::tariff::Units;

use crate::entry::Entry;
use crate::{Error, Result};

/// The schema's version, in each file's key-value metadata under [`VERSION_KEY`]. A new
/// nullable column keeps it; renaming, retyping or removing a column bumps it.
pub const SCHEMA_VERSION: &str = "1";
pub const VERSION_KEY: &str = "tally.ledger.schema_version";

/// Precision and scale of the USD columns: nano-USD exactly, up to ±999,999,999.999999999.
const USD_PRECISION: u8 = 18;
const USD_SCALE: i8 = 9;

/// Why `record` cannot be a row (it is then kept verbatim as NDJSON instead), or `None`.
pub fn row_problem(e: &Entry) -> Option<String> {
    let r = &e.record;
    if r.time.parse::<jiff::Timestamp>().is_err() {
        return Some(format!("time {:?} is not an RFC 3339 timestamp", r.time));
    }
    let money = [Some(r.cost_nanos), r.team_budget_remaining_nanos];
    if money.into_iter().flatten().any(|n| n.unsigned_abs() >= 10u64.pow(18)) {
        return Some("an amount does not fit DECIMAL(18,9) USD".into());
    }
    let u = r.units.unwrap_or_default();
    let counts = [
        r.input_tokens,
        r.output_tokens,
        r.cache_read_tokens,
        r.cache_write5m_tokens,
        r.cache_write1h_tokens,
        r.latency_ms,
        u.requests,
        u.images,
        u.seconds,
        u.text_units,
    ];
    if counts.iter().any(|&t| i64::try_from(t).is_err()) {
        return Some("a count does not fit INT64".into());
    }
    None
}

/// The columns of `entries`, which must all pass [`row_problem`].
fn columns(entries: &[Entry]) -> Vec<(Field, ArrayRef)> {
    let s = |name: &str, f: fn(&Entry) -> &str| col(name, DataType::Utf8, false, strings(entries, f));
    let o = |name: &str, f: fn(&Entry) -> Option<&str>| col(name, DataType::Utf8, true, opt_strings(entries, f));
    let n = |name: &str, f: fn(&Entry) -> u64| col(name, DataType::Int64, false, ints(entries, f));
    let u = |name: &str, f: fn(&Units) -> u64| col(name, DataType::Int64, true, units(entries, f));
    let usd = DataType::Decimal128(USD_PRECISION, USD_SCALE);
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    vec![
        s("stream_id", |_| ""),
        s("request_id", |e| &e.record.request_id),
        s("charge_id", |e| &e.record.charge_id),
        col("time", utc, false, times(entries)),
        s("team", |e| &e.record.team),
        o("tenant", |e| e.record.tenant.as_deref()),
        o("workflow", |e| e.record.workflow.as_deref()),
        o("claimed_team", |e| e.record.claimed_team.as_deref()),
        o("principal", |e| e.record.principal.as_deref()),
        o("client", |e| e.record.client.as_deref()),
        s("operation", |e| &e.record.operation),
        s("model_id", |e| &e.record.model_id),
        s("model", |e| &e.record.model),
        s("region", |e| &e.record.region),
        o("service_tier", |e| e.record.service_tier.as_deref()),
        n("input_tokens", |e| e.record.input_tokens),
        n("output_tokens", |e| e.record.output_tokens),
        n("cache_read_tokens", |e| e.record.cache_read_tokens),
        n("cache_write_5m_tokens", |e| e.record.cache_write5m_tokens),
        n("cache_write_1h_tokens", |e| e.record.cache_write1h_tokens),
        u("unit_requests", |u| u.requests),
        u("unit_images", |u| u.images),
        u("unit_video_seconds", |u| u.seconds),
        u("unit_guardrail_text_units", |u| u.text_units),
        n("latency_ms", |e| e.record.latency_ms),
        col("status", DataType::Int32, false, statuses(entries)),
        s("outcome", |e| e.record.outcome.as_str()),
        col(
            "cost_usd",
            usd.clone(),
            false,
            usd_array(entries, |e| Some(e.record.cost_nanos)),
        ),
        col(
            "cost_nanos",
            DataType::Int64,
            false,
            nanos(entries, |e| Some(e.record.cost_nanos)),
        ),
        col("team_budget_remaining_usd", usd, true, usd_array(entries, remaining)),
        col(
            "team_budget_remaining_nanos",
            DataType::Int64,
            true,
            nanos(entries, remaining),
        ),
        s("price_source", |e| &e.record.price_source),
        col("unpriced", DataType::Boolean, false, flags(entries)),
        col("over_budget", list_of_strings(), false, over_budget(entries)),
        o("note", |e| e.record.note.as_deref()),
    ]
}

/// The ledger's Arrow schema (field order and types are the documented contract).
pub fn schema() -> SchemaRef {
    let (fields, _): (Vec<Field>, Vec<ArrayRef>) = columns(&[]).into_iter().unzip();
    Arc::new(Schema::new(fields))
}

/// One Parquet file (Snappy) holding `entries` in order, its schema version in its metadata.
pub fn to_parquet(entries: &[Entry]) -> Result<Bytes> {
    let (fields, mut arrays): (Vec<Field>, Vec<ArrayRef>) = columns(entries).into_iter().unzip();
    // The stream id is the only column not taken from the record.
    arrays[0] = Arc::new(StringArray::from_iter_values(entries.iter().map(|e| e.id.to_string())));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::Encode(e.to_string()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            VERSION_KEY.to_string(),
            SCHEMA_VERSION.to_string(),
        )]))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).map_err(|e| Error::Encode(e.to_string()))?;
    writer.write(&batch).map_err(|e| Error::Encode(e.to_string()))?;
    writer.close().map_err(|e| Error::Encode(e.to_string()))?;
    Ok(Bytes::from(out))
}

fn col(name: &str, data_type: DataType, nullable: bool, array: ArrayRef) -> (Field, ArrayRef) {
    (Field::new(name, data_type, nullable), array)
}

fn remaining(e: &Entry) -> Option<i64> {
    e.record.team_budget_remaining_nanos
}

fn strings(entries: &[Entry], f: fn(&Entry) -> &str) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(entries.iter().map(f)))
}

fn opt_strings(entries: &[Entry], f: fn(&Entry) -> Option<&str>) -> ArrayRef {
    Arc::new(entries.iter().map(f).collect::<StringArray>())
}

fn ints(entries: &[Entry], f: fn(&Entry) -> u64) -> ArrayRef {
    // row_problem has refused any count above i64::MAX.
    Arc::new(Int64Array::from_iter_values(entries.iter().map(|e| f(e) as i64)))
}

/// A count of what the call was billed for besides tokens; null when it was priced by tokens only.
fn units(entries: &[Entry], f: fn(&Units) -> u64) -> ArrayRef {
    // row_problem has refused any count above i64::MAX.
    let counts = entries.iter().map(|e| e.record.units.as_ref().map(|u| f(u) as i64));
    Arc::new(counts.collect::<Int64Array>())
}

fn nanos(entries: &[Entry], f: fn(&Entry) -> Option<i64>) -> ArrayRef {
    Arc::new(entries.iter().map(f).collect::<Int64Array>())
}

fn usd_array(entries: &[Entry], f: fn(&Entry) -> Option<i64>) -> ArrayRef {
    // Scale 9 makes the decimal's unscaled value the nano-USD amount itself.
    let values: Decimal128Array = entries.iter().map(|e| f(e).map(i128::from)).collect();
    Arc::new(
        values
            .with_precision_and_scale(USD_PRECISION, USD_SCALE)
            .expect("18,9 is a valid decimal type"),
    )
}

fn times(entries: &[Entry]) -> ArrayRef {
    let micros = entries.iter().map(|e| {
        e.record
            .time
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_microsecond())
            .unwrap_or_default()
    });
    Arc::new(TimestampMicrosecondArray::from_iter_values(micros).with_timezone("UTC"))
}

fn statuses(entries: &[Entry]) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(
        entries.iter().map(|e| i32::from(e.record.status)),
    ))
}

fn flags(entries: &[Entry]) -> ArrayRef {
    Arc::new(
        entries
            .iter()
            .map(|e| Some(e.record.unpriced))
            .collect::<BooleanArray>(),
    )
}

fn list_of_strings() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn over_budget(entries: &[Entry]) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for e in entries {
        for name in &e.record.over_budget {
            b.values().append_value(name);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

#[cfg(test)]
mod tests;
