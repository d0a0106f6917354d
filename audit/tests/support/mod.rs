//! What the audit suites share: the fixture paths, the shipped catalog, a
//! compact notation for verdicts, and a Parquet writer that turns the JSON and
//! CSV fixtures into the Parquet exports (Tally's ledger, CUR 2.0) they stand for.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::Value;
use tally_audit::checks::Context;
use tally_audit::field::Field;
use tally_audit::report::{SetReport, Verdict};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The catalog shipped in `examples/catalog`, as `tally audit` uses by default.
pub fn catalog() -> Context {
    tally_audit::input::catalog(&root().join("examples/catalog")).expect("the shipped catalog compiles")
}

/// A set's verdicts in [`Field::ALL`] order: `P`resent, `A`bsent, `M`isscoped, `-` n/a.
pub fn verdicts(set: &SetReport) -> String {
    Field::ALL
        .iter()
        .map(|f| match set.field(*f).verdict {
            Verdict::Present => 'P',
            Verdict::Absent => 'A',
            Verdict::Misscoped => 'M',
            Verdict::NotApplicable => '-',
        })
        .collect()
}

/// A Parquet column: its name and type.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Str,
    I64,
    Bool,
    F64,
    /// INT64 with DECIMAL(18,9): exact USD.
    Usd,
    /// INT64 TIMESTAMP_MILLIS.
    Millis,
    /// MAP<string, string>.
    Map,
}

fn schema(columns: &[(String, Kind)]) -> String {
    let fields: Vec<String> = columns
        .iter()
        .map(|(n, k)| match k {
            Kind::Str => format!("optional binary {n} (UTF8);"),
            Kind::I64 => format!("optional int64 {n};"),
            Kind::Bool => format!("optional boolean {n};"),
            Kind::F64 => format!("optional double {n};"),
            Kind::Usd => format!("optional int64 {n} (DECIMAL(18,9));"),
            Kind::Millis => format!("optional int64 {n} (TIMESTAMP_MILLIS);"),
            Kind::Map => format!(
                "optional group {n} (MAP) {{ repeated group key_value {{ required binary key (UTF8); optional binary value (UTF8); }} }}"
            ),
        })
        .collect();
    format!("message sample {{ {} }}", fields.join(" "))
}

/// Writes `rows` (JSON objects) as one snappy-compressed row group.
pub fn write_parquet(path: &Path, columns: &[(String, Kind)], rows: &[Value]) {
    let schema = Arc::new(parse_message_type(&schema(columns)).expect("schema"));
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let file = std::fs::File::create(path).expect("create parquet");
    let mut writer = SerializedFileWriter::new(file, schema, props).expect("writer");
    let mut group = writer.next_row_group().expect("row group");
    for (name, kind) in columns {
        let cells: Vec<Option<&Value>> = rows.iter().map(|r| r.get(name).filter(|v| !v.is_null())).collect();
        if let Kind::Map = kind {
            write_map(&mut group, &cells);
            continue;
        }
        let defs: Vec<i16> = cells.iter().map(|c| i16::from(c.is_some())).collect();
        let present = cells.iter().flatten();
        let mut col = group.next_column().expect("column").expect("one per spec");
        match kind {
            Kind::Str => {
                let v: Vec<ByteArray> = present.map(|x| ByteArray::from(text(x).as_str())).collect();
                col.typed::<ByteArrayType>().write_batch(&v, Some(&defs), None)
            }
            Kind::I64 => {
                let v: Vec<i64> = present.map(|x| x.as_i64().expect("integer")).collect();
                col.typed::<Int64Type>().write_batch(&v, Some(&defs), None)
            }
            Kind::Usd => {
                let v: Vec<i64> = present
                    .map(|x| tally_config::money::Nanos::parse_usd(&text(x)).expect("usd").0)
                    .collect();
                col.typed::<Int64Type>().write_batch(&v, Some(&defs), None)
            }
            Kind::Millis => {
                let v: Vec<i64> = present
                    .map(|x| text(x).parse::<jiff::Timestamp>().expect("RFC 3339").as_millisecond())
                    .collect();
                col.typed::<Int64Type>().write_batch(&v, Some(&defs), None)
            }
            Kind::F64 => {
                let v: Vec<f64> = present.map(|x| text(x).parse().expect("number")).collect();
                col.typed::<DoubleType>().write_batch(&v, Some(&defs), None)
            }
            Kind::Bool => {
                let v: Vec<bool> = present.map(|x| x.as_bool().expect("bool")).collect();
                col.typed::<BoolType>().write_batch(&v, Some(&defs), None)
            }
            Kind::Map => unreachable!(),
        }
        .expect("write column");
        col.close().expect("close column");
    }
    group.close().expect("close row group");
    writer.close().expect("close file");
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A map column from JSON objects (or their text): its key and value leaf columns.
fn write_map<W: std::io::Write + Send>(
    group: &mut parquet::file::writer::SerializedRowGroupWriter<'_, W>,
    cells: &[Option<&Value>],
) {
    let (mut keys, mut values) = (vec![], vec![]);
    let (mut key_defs, mut value_defs, mut reps) = (vec![], vec![], vec![]);
    for cell in cells {
        let map = cell.map(|c| match c {
            Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
            other => (*other).clone(),
        });
        let entries: Vec<(String, Value)> = map
            .as_ref()
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        if entries.is_empty() {
            let def = if map.is_some() { 1 } else { 0 };
            key_defs.push(def);
            value_defs.push(def);
            reps.push(0);
        }
        for (i, (k, v)) in entries.into_iter().enumerate() {
            keys.push(ByteArray::from(k.as_str()));
            values.push(ByteArray::from(text(&v).as_str()));
            key_defs.push(2);
            value_defs.push(3);
            reps.push(i16::from(i > 0));
        }
    }
    for (data, defs) in [(keys, key_defs), (values, value_defs)] {
        let mut col = group.next_column().expect("column").expect("map leaf");
        col.typed::<ByteArrayType>()
            .write_batch(&data, Some(&defs), Some(&reps))
            .expect("write map");
        col.close().expect("close map leaf");
    }
}
