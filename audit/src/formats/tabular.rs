//! Tables as JSON rows: CSV (every cell a string) and Parquet (typed cells,
//! read with parquet's row API: no arrow needed for a sample's few thousand rows).

use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field as Cell, Row};
use serde_json::{Map, Value};

/// A table: its column names and its rows keyed by them.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Value>,
}

pub fn csv_rows(bytes: &[u8]) -> Result<Table, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| format!("not CSV: {e}"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = vec![];
    for record in reader.records() {
        let record = record.map_err(|e| format!("bad CSV row: {e}"))?;
        let row: Map<String, Value> = columns
            .iter()
            .zip(record.iter())
            .map(|(c, v)| (c.clone(), Value::String(v.to_string())))
            .collect();
        rows.push(Value::Object(row));
    }
    Ok(Table { columns, rows })
}

pub fn parquet_rows(bytes: &[u8]) -> Result<Table, String> {
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(bytes)).map_err(|e| format!("not Parquet: {e}"))?;
    let columns = reader
        .metadata()
        .file_metadata()
        .schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let mut rows = vec![];
    for row in reader.get_row_iter(None).map_err(|e| e.to_string())? {
        rows.push(row_json(&row.map_err(|e| e.to_string())?));
    }
    Ok(Table { columns, rows })
}

fn row_json(row: &Row) -> Value {
    Value::Object(
        row.get_column_iter()
            .map(|(name, cell)| (name.clone(), cell_json(cell)))
            .collect(),
    )
}

/// A Parquet cell as JSON. Decimals stay decimal strings (exact); timestamps
/// become RFC 3339 in UTC; maps become objects.
fn cell_json(cell: &Cell) -> Value {
    let number = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    match cell {
        Cell::Null => Value::Null,
        Cell::Bool(b) => Value::Bool(*b),
        Cell::Byte(n) => Value::from(*n),
        Cell::Short(n) => Value::from(*n),
        Cell::Int(n) => Value::from(*n),
        Cell::Long(n) => Value::from(*n),
        Cell::UByte(n) => Value::from(*n),
        Cell::UShort(n) => Value::from(*n),
        Cell::UInt(n) => Value::from(*n),
        Cell::ULong(n) => Value::from(*n),
        Cell::Float16(f) => number(f64::from(*f)),
        Cell::Float(f) => number(f64::from(*f)),
        Cell::Double(f) => number(*f),
        Cell::Decimal(d) => Value::String(decimal_string(d)),
        Cell::Str(s) => Value::String(s.clone()),
        Cell::Bytes(b) => Value::String(String::from_utf8_lossy(b.data()).into_owned()),
        Cell::TimestampMillis(ms) => timestamp(i128::from(*ms) * 1_000_000),
        Cell::TimestampMicros(us) => timestamp(i128::from(*us) * 1_000),
        Cell::Group(row) => row_json(row),
        Cell::ListInternal(list) => Value::Array(list.elements().iter().map(cell_json).collect()),
        Cell::MapInternal(map) => Value::Object(
            map.entries()
                .iter()
                .map(|(k, v)| (crate::lookup::text(&cell_json(k)), cell_json(v)))
                .collect(),
        ),
        other => Value::String(other.to_string()),
    }
}

fn timestamp(nanos: i128) -> Value {
    jiff::Timestamp::from_nanosecond(nanos)
        .map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null)
}

/// An unscaled big-endian two's-complement integer and a scale, as a decimal string.
fn decimal_string(d: &parquet::data_type::Decimal) -> String {
    let data = d.data();
    let negative = data.first().is_some_and(|b| b & 0x80 != 0);
    let mut unscaled: i128 = if negative { -1 } else { 0 };
    for b in data {
        unscaled = (unscaled << 8) | i128::from(*b);
    }
    let scale = d.scale().max(0) as usize;
    let digits = unscaled.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use parquet::data_type::Decimal;

    use super::*;

    #[test]
    fn decimals_keep_every_digit() {
        let d = |v: i64, scale: i32| Decimal::from_i64(v, 18, scale);
        assert_eq!(decimal_string(&d(123_456_789, 9)), "0.123456789");
        assert_eq!(decimal_string(&d(12_500_000_000, 9)), "12.500000000");
        assert_eq!(decimal_string(&d(-5, 2)), "-0.05");
        assert_eq!(decimal_string(&d(42, 0)), "42");
    }

    #[test]
    fn csv_cells_are_strings_keyed_by_header() {
        let t = csv_rows(b"a,b\n1,x\n2,\n").unwrap();
        assert_eq!(t.columns, vec!["a", "b"]);
        assert_eq!(t.rows[1]["a"], "2");
        assert_eq!(t.rows[1]["b"], "");
    }
}
