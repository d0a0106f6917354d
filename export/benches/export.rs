//! Criterion benchmarks of the exporter's own work per record, on one core: decoding stream
//! entries (the JSON the SETTLE script stored), splitting them into hourly files and encoding
//! Parquet. The baseline in the same run is the JSON decode alone, so the Parquet cost reads as
//! a ratio on a noisy machine.
//!
//! Run: `cargo bench -p tally-export --bench export` (see docs/benchmarks.md). Measurements,
//! not tests: nothing here asserts a time.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tally_export::entry::{RawEntry, StreamId, decode};
use tally_export::{layout, schema};

/// A batch as `--batch 2000` reads it: realistic records (attribution, five token classes,
/// budget remaining, an over-budget list on some), spread over two UTC hours.
fn batch(n: u64) -> Vec<RawEntry> {
    (0..n)
        .map(|i| {
            let minute = 30 + (i * 60 / n);
            let json = serde_json::json!({
                "requestId": format!("8f14e45f-ceea-467a-9af0-{i:012}"), "chargeId": format!("8f14e45f-{i}/1"),
                "time": format!("2026-12-06T{:02}:{:02}:{:02}.{:03}Z", 9 + minute / 60, minute % 60, i % 60, i % 1000),
                "operation": "Converse", "modelId": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                "model": "anthropic.claude-haiku-4-5-20251001-v1:0", "region": "us-east-1",
                "team": "search", "tenant": "acme", "workflow": "rag", "client": "search-api",
                "inputTokens": 1200 + i, "outputTokens": 300, "cacheReadTokens": 4000,
                "cacheWrite5mTokens": 500, "cacheWrite1hTokens": 0, "latencyMs": 412, "status": 200,
                "outcome": "ok", "costNanos": 2_712_250 + i as i64, "costUsd": "0.00271225",
                "teamBudgetRemainingNanos": 99_000_000_000i64 - i as i64,
                "priceSource": "ModelPricing/bedrock-on-demand",
                "overBudget": if i % 10 == 0 { vec!["workflow \"search/rag\""] } else { vec![] },
            });
            RawEntry {
                id: StreamId {
                    ms: 1_796_548_500_000 + i,
                    seq: 0,
                },
                json: Some(json.to_string()),
            }
        })
        .collect()
}

fn export(c: &mut Criterion) {
    const N: u64 = 2000;
    let raw = batch(N);
    let rows = decode(raw.clone()).valid;
    let mut g = c.benchmark_group("ledger_export_2000_records");
    g.throughput(Throughput::Elements(N));
    g.bench_function("baseline: decode JSON records", |b| {
        b.iter(|| decode(black_box(raw.clone())))
    });
    g.bench_function("encode Parquet (Snappy)", |b| {
        b.iter(|| schema::to_parquet(black_box(&rows)).unwrap())
    });
    g.bench_function("whole batch: decode, split by hour, encode", |b| {
        b.iter(|| {
            let files = layout::plan("tally/prod", "search", decode(black_box(raw.clone())).valid);
            files
                .iter()
                .map(|f| schema::to_parquet(&f.entries).unwrap().len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, export);
criterion_main!(benches);
