use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::entry::StreamId;

fn entry(seq: u64, cost_nanos: i64, remaining: Option<i64>) -> Entry {
    let json = crate::entry::tests::record_json(&format!("req-{seq}"), "2026-12-06T09:15:00.123456789Z");
    let mut record: tally_config::ledger::LedgerRecord = serde_json::from_str(&json).expect("record");
    record.cost_nanos = cost_nanos;
    record.team_budget_remaining_nanos = remaining;
    record.over_budget = vec!["team \"search\"".into()];
    record.workflow = seq.is_multiple_of(2).then(|| "rag".to_string());
    record.units = (seq == 1).then_some(tally_config::tariff::Units {
        requests: 1,
        images: 3,
        seconds: 0,
        text_units: 7,
    });
    Entry {
        id: StreamId {
            ms: 1_765_000_000_000,
            seq,
        },
        record,
    }
}

fn read(bytes: Bytes) -> (RecordBatch, Option<String>) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("a Parquet file");
    let version = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == VERSION_KEY).and_then(|k| k.value.clone()));
    let mut reader = builder.build().expect("reader");
    (reader.next().expect("one batch").expect("decodes"), version)
}

#[test]
fn records_round_trip_with_exact_money_and_utc_micros() {
    let entries = vec![entry(0, 1_500, Some(-7)), entry(1, 999_999_999_999_999_999, None)];
    let (batch, version) = read(to_parquet(&entries).expect("encodes"));
    assert_eq!(version.as_deref(), Some(SCHEMA_VERSION));
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(batch.schema().fields().len(), schema().fields().len());
    let ids = batch.column_by_name("stream_id").unwrap().as_string::<i32>();
    assert_eq!(ids.value(1), "1765000000000-1");
    let usd = batch
        .column_by_name("cost_usd")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    assert_eq!(usd.value_as_string(0), "0.000001500");
    assert_eq!(usd.value_as_string(1), "999999999.999999999");
    let nanos = batch.column_by_name("cost_nanos").unwrap().as_primitive::<Int64Type>();
    assert_eq!(nanos.value(1), 999_999_999_999_999_999);
    let left = batch
        .column_by_name("team_budget_remaining_usd")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    assert_eq!(left.value_as_string(0), "-0.000000007");
    assert!(left.is_null(1));
    let time = batch
        .column_by_name("time")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(time.value(0), 1_796_548_500_123_456);
    let workflow = batch.column_by_name("workflow").unwrap().as_string::<i32>();
    assert_eq!((workflow.value(0), workflow.is_null(1)), ("rag", true));
    let images = batch.column_by_name("unit_images").unwrap().as_primitive::<Int64Type>();
    assert_eq!(
        (images.is_null(0), images.value(1)),
        (true, 3),
        "units only when billed"
    );
    let text = batch
        .column_by_name("unit_guardrail_text_units")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(text.value(1), 7);
    let over = batch.column_by_name("over_budget").unwrap().as_list::<i32>();
    assert_eq!(over.value(0).as_string::<i32>().value(0), "team \"search\"");
}

#[test]
fn the_same_records_encode_to_the_same_bytes() {
    let entries = vec![entry(0, 1, None), entry(1, 2, Some(3))];
    assert_eq!(to_parquet(&entries).unwrap(), to_parquet(&entries).unwrap());
}

#[test]
fn rows_that_cannot_be_represented_are_named() {
    assert_eq!(row_problem(&entry(0, 1, None)), None);
    let too_big = entry(0, 1_000_000_000_000_000_000, None);
    assert!(row_problem(&too_big).unwrap().contains("DECIMAL(18,9)"));
    let mut no_time = entry(0, 1, None);
    no_time.record.time = "soon".into();
    assert!(row_problem(&no_time).unwrap().contains("RFC 3339"));
    let mut huge = entry(0, 1, None);
    huge.record.output_tokens = u64::MAX;
    assert!(row_problem(&huge).unwrap().contains("INT64"));
}
