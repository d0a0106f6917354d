//! Writing a FOCUS dataset: `focus.csv` (decimal strings, ISO 8601 UTC times, empty = null) and
//! `focus.parquet` (`DECIMAL(38,15)`, `TIMESTAMP(MICROS, UTC)` — Parquet has no seconds unit —
//! and the FOCUS version in the file's key-value metadata), in the order of [`super::columns`].
//! Each file is written beside its final name and renamed into place, so a failed run leaves no
//! half file behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::columns::{self, Cell, Column, Type, datetime, decimal};
use super::dataset::Dataset;
use super::{FileFormat, FocusError, FocusVersion};

/// The Parquet key-value metadata key holding the FOCUS version.
pub const VERSION_KEY: &str = "focus.version";
const ROWS_PER_BATCH: usize = 8192;

/// What [`write`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub rows: usize,
}

/// Writes `set` as FOCUS `version` into `dir` (created if missing).
pub fn write(set: &Dataset, version: FocusVersion, format: FileFormat, dir: &Path) -> Result<Written, FocusError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| FocusError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();
    if matches!(format, FileFormat::Csv | FileFormat::Both) {
        let path = dir.join("focus.csv");
        place(&path, &csv_bytes(set, version)?).map_err(io(&path))?;
        files.push(path);
    }
    if matches!(format, FileFormat::Parquet | FileFormat::Both) {
        let path = dir.join("focus.parquet");
        let bytes = parquet_bytes(set, version).map_err(|reason| FocusError::Encode {
            path: path.display().to_string(),
            reason,
        })?;
        place(&path, &bytes).map_err(io(&path))?;
        files.push(path);
    }
    Ok(Written {
        files,
        rows: set.rows.len(),
    })
}

fn place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    fs::write(&partial, bytes)?;
    fs::rename(&partial, path)
}

fn text(cell: Cell<'_>) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Str(s) => s.into_owned(),
        Cell::Dec(v) => decimal(v, 15),
        Cell::Time(t) => datetime(t),
        Cell::Int(v) => v.to_string(),
    }
}

/// The CSV file's bytes.
pub fn csv_bytes(set: &Dataset, version: FocusVersion) -> Result<Vec<u8>, FocusError> {
    let cols: Vec<&Column> = columns::of(version).collect();
    let encode = |e: csv::Error| FocusError::Encode {
        path: "focus.csv".into(),
        reason: e.to_string(),
    };
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(cols.iter().map(|c| c.name)).map_err(encode)?;
    for row in &set.rows {
        out.write_record(cols.iter().map(|c| text((c.value)(row, set))))
            .map_err(encode)?;
    }
    out.into_inner().map_err(|e| FocusError::Encode {
        path: "focus.csv".into(),
        reason: e.to_string(),
    })
}

fn arrow_type(ty: Type) -> DataType {
    match ty {
        Type::String | Type::Json => DataType::Utf8,
        Type::Decimal => DataType::Decimal128(38, 15),
        Type::DateTime => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::Integer => DataType::Int64,
    }
}

/// One column of `rows` as an Arrow array of the column's type.
fn array(col: &Column, set: &Dataset, rows: &[super::FocusRow]) -> Result<ArrayRef, String> {
    let cells = rows.iter().map(|r| (col.value)(r, set));
    Ok(match col.ty {
        Type::String | Type::Json => Arc::new(
            cells
                .map(|c| match c {
                    Cell::Str(s) => Some(s.into_owned()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        Type::Decimal => Arc::new(
            cells
                .map(|c| if let Cell::Dec(v) = c { Some(v) } else { None })
                .collect::<Decimal128Array>()
                .with_precision_and_scale(38, 15)
                .map_err(|e| e.to_string())?,
        ),
        Type::DateTime => Arc::new(
            cells
                .map(|c| {
                    if let Cell::Time(t) = c {
                        Some(t.as_microsecond())
                    } else {
                        None
                    }
                })
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        Type::Integer => Arc::new(
            cells
                .map(|c| if let Cell::Int(v) = c { Some(v) } else { None })
                .collect::<Int64Array>(),
        ),
    })
}

/// The Parquet file's bytes.
pub fn parquet_bytes(set: &Dataset, version: FocusVersion) -> Result<Vec<u8>, String> {
    let cols: Vec<&Column> = columns::of(version).collect();
    let fields: Vec<Field> = cols
        .iter()
        .map(|c| Field::new(c.name, arrow_type(c.ty), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![KeyValue::new(VERSION_KEY.into(), version.to_string())]))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).map_err(|e| e.to_string())?;
    for rows in set.rows.chunks(ROWS_PER_BATCH) {
        let arrays = cols
            .iter()
            .map(|c| array(c, set, rows))
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())?;
        writer.write(&batch).map_err(|e| e.to_string())?;
    }
    writer.close().map_err(|e| e.to_string())?;
    Ok(out)
}
