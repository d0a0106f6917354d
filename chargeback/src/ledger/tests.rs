//! The reader against files written by the exporter's own writer (`tally_export::schema`),
//! laid out under the exporter's own keys (`tally_export::layout`).

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use tally_config::ledger::LedgerRecord;
use tally_export::entry::{Entry, StreamId};

use super::*;

fn record(n: u64, team: &str, time: &str) -> LedgerRecord {
    let json = serde_json::json!({
        "requestId": format!("req-{n}"), "chargeId": format!("req-{n}/1"), "time": time,
        "operation": "Converse", "modelId": "us.anthropic.claude-x", "model": "anthropic.claude-x",
        "region": "us-east-1", "team": team, "tenant": if n.is_multiple_of(2) { Some("acme") } else { None },
        "inputTokens": n, "outputTokens": 2 * n, "cacheReadTokens": 3, "cacheWrite5mTokens": 4,
        "cacheWrite1hTokens": 5, "latencyMs": 7, "status": 200, "outcome": "ok",
        "costNanos": 1_000 + n as i64, "costUsd": "0", "priceSource": "catalog/x",
        "units": if n == 3 { Some(serde_json::json!({"requests": 1, "images": 2, "seconds": 0, "textUnits": 0})) } else { None },
    });
    serde_json::from_value(json).expect("a ledger record")
}

/// Writes `records` of `team` the way the exporter does (one file per UTC hour) under `dir`.
fn export(dir: &std::path::Path, team: &str, records: Vec<LedgerRecord>) {
    let entries = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| Entry {
            id: StreamId {
                ms: 1_000 + i as u64,
                seq: 0,
            },
            record,
        })
        .collect();
    for file in tally_export::layout::plan("", team, entries) {
        let bytes = tally_export::schema::to_parquet(&file.entries).expect("parquet");
        put(dir, &file.key, &bytes);
    }
}

fn put(dir: &std::path::Path, key: &str, bytes: &[u8]) {
    let path = dir.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

async fn collect(ledger: &Ledger, from: &str, to: &str) -> (Vec<String>, ScanStats) {
    let mut seen = vec![];
    let stats = ledger
        .scan(ts(from), ts(to), &mut |r| {
            seen.push(format!("{} {} {}", r.team, r.request_id, r.time))
        })
        .await
        .expect("scan");
    (seen, stats)
}

#[test]
fn the_version_key_is_the_exporters() {
    assert_eq!(VERSION_KEY, tally_export::schema::VERSION_KEY);
    assert!(KNOWN_VERSIONS.contains(&tally_export::schema::SCHEMA_VERSION));
}

#[tokio::test]
async fn every_field_reads_back_as_the_exporter_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    export(
        dir.path(),
        "search",
        vec![record(2, "search", "2026-11-05T10:00:00.123456Z")],
    );
    export(dir.path(), "ads", vec![record(3, "ads", "2026-11-05T11:00:00Z")]);
    let ledger = Ledger::open(dir.path().to_str().unwrap()).unwrap();
    let mut rows = vec![];
    ledger
        .scan(ts("2026-11-05T00:00:00Z"), ts("2026-11-06T00:00:00Z"), &mut |r| {
            rows.push((
                r.time,
                r.stream_id.to_string(),
                r.team.to_string(),
                r.tenant.map(str::to_string),
                r.workflow.is_none(),
                (r.input_tokens, r.output_tokens, r.cache_read_tokens),
                (r.cache_write_5m_tokens, r.cache_write_1h_tokens),
                r.units,
                (r.status, r.outcome.to_string(), r.cost_nanos, r.unpriced),
                (r.model.to_string(), r.model_id.to_string(), r.price_source.to_string()),
            ))
        })
        .await
        .unwrap();
    rows.sort_by_key(|r| r.0);
    assert_eq!(rows.len(), 2);
    let search = &rows[0];
    assert_eq!(search.0, ts("2026-11-05T10:00:00.123456Z"), "microseconds kept");
    assert_eq!((search.1.as_str(), search.2.as_str()), ("1000-0", "search"));
    assert_eq!(search.3.as_deref(), Some("acme"));
    assert!(search.4, "no workflow");
    assert_eq!((search.5, search.6), ((2, 4, 3), (4, 5)));
    assert_eq!(search.7, Units::default(), "null units read as zero");
    assert_eq!(search.8, (200, "ok".into(), 1_002, false));
    assert_eq!(search.9.0, "anthropic.claude-x");
    let ads = &rows[1];
    assert_eq!(ads.3, None);
    assert_eq!((ads.7.requests, ads.7.images), (1, 2));
}

#[tokio::test]
async fn a_scan_reads_only_the_days_of_its_range_and_keeps_the_range_half_open() {
    let dir = tempfile::tempdir().unwrap();
    let times = [
        "2026-10-31T22:59:59.999999Z",
        "2026-10-31T23:00:00Z",
        "2026-11-15T12:00:00Z",
        "2026-11-30T22:59:59Z",
        "2026-11-30T23:00:00Z",
        "2026-12-02T00:00:00Z",
    ];
    let records = times
        .iter()
        .enumerate()
        .map(|(i, t)| record(i as u64, "search", t))
        .collect();
    export(dir.path(), "search", records);
    let ledger = Ledger::open(&format!("file://{}", dir.path().display())).unwrap();
    // A Berlin November: [2026-10-31T23:00Z, 2026-11-30T23:00Z).
    let (rows, stats) = collect(&ledger, "2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter().all(|r| !r.contains("req-0 ") && !r.contains("req-4 ")),
        "{rows:?}"
    );
    assert_eq!(stats.rows, 3);
    // Oct 31 (two hours, two files), Nov 15, Nov 30 (two hours); never Dec 2.
    assert_eq!(stats.files, 5, "{stats:?}");
    assert!(stats.bytes > 0);
    let (none, stats) = collect(&ledger, "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z").await;
    assert!(none.is_empty());
    assert_eq!(stats, ScanStats::default(), "an absent day folder holds nothing");
}

#[tokio::test]
async fn an_unknown_schema_version_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(VERSION_KEY.into(), "2".to_string())]))
        .build();
    let schema = tally_export::schema::schema();
    let mut bytes = vec![];
    let mut w = ArrowWriter::try_new(&mut bytes, schema.clone(), Some(props)).unwrap();
    w.write(&RecordBatch::new_empty(schema)).unwrap();
    w.close().unwrap();
    put(
        dir.path(),
        "ledger/year=2026/month=11/day=05/10h-x-1-0-1-0.parquet",
        &bytes,
    );
    let ledger = Ledger::open(dir.path().to_str().unwrap()).unwrap();
    let e = ledger
        .scan(ts("2026-11-05T00:00:00Z"), ts("2026-11-06T00:00:00Z"), &mut |_| {})
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("10h-x-1-0-1-0.parquet") && text.contains("\"2\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_file_missing_a_column_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("cost_nanos", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![5]))]).unwrap();
    let mut bytes = vec![];
    let mut w = ArrowWriter::try_new(&mut bytes, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    put(dir.path(), "ledger/year=2026/month=11/day=05/compacted.parquet", &bytes);
    let ledger = Ledger::open(dir.path().to_str().unwrap()).unwrap();
    let e = ledger
        .scan(ts("2026-11-05T00:00:00Z"), ts("2026-11-06T00:00:00Z"), &mut |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("compacted.parquet") && e.contains("no \"time\" column"),
        "{e}"
    );
}

#[test]
fn urls_name_what_is_wrong() {
    let e = Ledger::open("/no/such/dir").unwrap_err().to_string();
    assert!(e.contains("--ledger") && e.contains("not a directory"), "{e}");
    let e = Ledger::open("ftp://host/x").unwrap_err().to_string();
    assert!(e.contains("--ledger"), "{e}");
    let s3 = Ledger::open("s3://bucket/tally/prod/").unwrap();
    assert_eq!(s3.key("ledger/year=2026"), "tally/prod/ledger/year=2026");
}

#[test]
fn day_folders_are_the_utc_days_touched() {
    let f = day_folders(ts("2026-10-31T23:00:00Z"), ts("2026-11-02T00:00:00Z"));
    assert_eq!(
        f,
        ["ledger/year=2026/month=10/day=31", "ledger/year=2026/month=11/day=01"]
    );
    assert!(day_folders(ts("2026-11-02T00:00:00Z"), ts("2026-11-02T00:00:00Z")).is_empty());
}

#[tokio::test]
async fn a_scan_without_ids_reads_the_same_rows_with_empty_ids() {
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), "search", vec![record(2, "search", "2026-11-05T10:00:00Z")]);
    let ledger = Ledger::open(dir.path().to_str().unwrap()).unwrap();
    let (from, to) = (ts("2026-11-05T00:00:00Z"), ts("2026-11-06T00:00:00Z"));
    let mut all = vec![];
    ledger
        .scan(from, to, &mut |r| all.push(format!("{r:?}")))
        .await
        .unwrap();
    let mut bare = vec![];
    let stats = ledger
        .scan_projected(from, to, Projection::WithoutIds, &mut |r| {
            assert_eq!((r.stream_id, r.request_id, r.charge_id), ("", "", ""));
            bare.push(format!("{r:?}"));
        })
        .await
        .unwrap();
    assert_eq!(stats.rows, 1);
    let without = |s: &str| {
        s.replace("\"1000-0\"", "\"\"")
            .replace("\"req-2\"", "\"\"")
            .replace("\"req-2/1\"", "\"\"")
    };
    assert_eq!(bare, all.iter().map(|s| without(s)).collect::<Vec<_>>());
}
