//! CUR 2.0 files decoded into [`Record`]s: the columns reconciliation reads, as text, from
//! CSV (plain or gzip'd) or Parquet. Nothing is interpreted here beyond turning Parquet's
//! types into the text a CSV export would carry (DOUBLE → its shortest decimal, see
//! [`super::amount::double_text`]; timestamps → RFC 3339 UTC).

use std::io::Read;

use jiff::Timestamp;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use super::CurError;
use super::amount::double_text;
use super::source::{Format, Object};

/// The columns of one line the reconciliation reads (absent columns stay empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub usage_start: String,
    pub usage_type: String,
    pub operation: String,
    pub usage_amount: String,
    pub unblended_cost: String,
    pub net_unblended_cost: String,
    pub region_code: String,
    pub resource_id: String,
    pub line_item_type: String,
    pub product_code: String,
    pub product_name: String,
    pub billing_entity: String,
    pub pricing_unit: String,
    pub description: String,
}

impl Record {
    /// The field a column fills; `None` for columns not read.
    fn slot(&mut self, column: &str) -> Option<&mut String> {
        Some(match column {
            "line_item_usage_start_date" => &mut self.usage_start,
            "line_item_usage_type" => &mut self.usage_type,
            "line_item_operation" => &mut self.operation,
            "line_item_usage_amount" => &mut self.usage_amount,
            "line_item_unblended_cost" => &mut self.unblended_cost,
            "line_item_net_unblended_cost" => &mut self.net_unblended_cost,
            "product_region_code" => &mut self.region_code,
            "line_item_resource_id" => &mut self.resource_id,
            "line_item_line_item_type" => &mut self.line_item_type,
            "line_item_product_code" => &mut self.product_code,
            "product_product_name" | "product_name" => &mut self.product_name,
            "bill_billing_entity" => &mut self.billing_entity,
            "pricing_unit" => &mut self.pricing_unit,
            "line_item_line_item_description" => &mut self.description,
            _ => return None,
        })
    }
}

/// Columns without which a file is not a CUR 2.0 export reconciliation can read.
pub const REQUIRED: [&str; 5] = [
    "line_item_usage_start_date",
    "line_item_usage_type",
    "line_item_usage_amount",
    "line_item_unblended_cost",
    "line_item_line_item_type",
];

fn check_columns<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Result<(), String> {
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !names.clone().any(|n| n == *r))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!("not a CUR 2.0 export: no column {}", missing.join(", ")))
}

/// Every record of one file, in file order.
pub fn decode(object: &Object) -> Result<Vec<Record>, CurError> {
    let bad = |reason: String| CurError::File {
        file: object.name.clone(),
        reason,
    };
    match Format::of(&object.name) {
        Some(Format::Parquet) => parquet_records(object).map_err(bad),
        Some(Format::CsvGzip) => {
            let mut text = vec![];
            flate2::read::MultiGzDecoder::new(&object.bytes[..])
                .read_to_end(&mut text)
                .map_err(|e| bad(format!("not gzip: {e}")))?;
            csv_records(&text).map_err(bad)
        }
        // A file named without an extension (given explicitly): by its first bytes.
        Some(Format::Csv) | None if object.bytes.starts_with(b"PAR1") => parquet_records(object).map_err(bad),
        Some(Format::Csv) | None => csv_records(&object.bytes).map_err(bad),
    }
}

fn csv_records(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("no CSV header: {e}"))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    check_columns(headers.iter().map(String::as_str))?;
    let mut out = vec![];
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("CSV row {}: {e}", i + 2))?;
        let mut record = Record::default();
        for (column, value) in headers.iter().zip(row.iter()) {
            if let Some(slot) = record.slot(column) {
                *slot = value.trim().to_string();
            }
        }
        out.push(record);
    }
    Ok(out)
}

fn parquet_records(object: &Object) -> Result<Vec<Record>, String> {
    let reader = SerializedFileReader::new(object.bytes.clone()).map_err(|e| format!("not Parquet: {e}"))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    check_columns(schema.root_schema().get_fields().iter().map(|f| f.name()))?;
    let rows = reader.get_row_iter(None).map_err(|e| e.to_string())?;
    let mut out = vec![];
    for row in rows {
        let row = row.map_err(|e| e.to_string())?;
        let mut record = Record::default();
        for (column, field) in row.get_column_iter() {
            if column == "product" {
                // CUR 2.0 keeps most product attributes in one map column.
                if let Field::MapInternal(map) = field {
                    for (k, v) in map.entries() {
                        if let Some(slot) = record.slot(&format!("product_{}", key_text(k))) {
                            *slot = text(v)?;
                        }
                    }
                }
            } else if let Some(slot) = record.slot(column) {
                *slot = text(field)?;
            }
        }
        out.push(record);
    }
    Ok(out)
}

/// A Parquet value as the text a CSV export would hold.
fn text(field: &Field) -> Result<String, String> {
    let micros = |m: i64| {
        Timestamp::from_microsecond(m)
            .map(|t| t.to_string())
            .map_err(|e| format!("timestamp out of range: {e}"))
    };
    Ok(match field {
        Field::Null => String::new(),
        Field::Str(s) => s.clone(),
        Field::Double(d) => double_text(*d),
        Field::Float(f) => double_text(f64::from(*f)),
        Field::TimestampMillis(ms) => micros(ms.saturating_mul(1000))?,
        Field::TimestampMicros(us) => micros(*us)?,
        // Integers, decimals, dates: their own exact text.
        other => other.to_string(),
    })
}

/// A map key's text (`product_name`, not `"product_name"` with quotes).
fn key_text(key: &Field) -> String {
    match key {
        Field::Str(s) => s.clone(),
        other => other.to_string(),
    }
}
