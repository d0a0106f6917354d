//! The exporter's recovery paths, made to happen on purpose (in process, against a real
//! redis-server and a real directory): a crash between a file's write and its
//! acknowledgement, a write that fails for one file of a batch, records that cannot be rows,
//! and the SETTLE script's trimming (only past the group's acknowledgements; the 2× guard
//! counts what it cuts).

use std::path::Path;
use std::sync::Arc;

use parquet::file::reader::{FileReader, SerializedFileReader};
use redis::aio::MultiplexedConnection;
use tally_config::ledger::LedgerRecord;
use tally_config::money::Nanos;
use tally_export::consumer::Consumer;
use tally_export::destination::Destination;
use tally_export::entry::decode;
use tally_export::exporter::Exporter;
use tally_export::metrics::Metrics;
use tally_export::{layout, schema};
use tally_store::Settlement;
use tally_store::redis::RedisStore;
use tally_tests::fixtures::redis::{RedisCluster, RedisServer};

use crate::support::group;

fn record(i: usize, time: &str) -> LedgerRecord {
    serde_json::from_value(serde_json::json!({
        "requestId": format!("req-{i}"), "chargeId": format!("req-{i}/1"), "time": time,
        "operation": "Converse", "modelId": "m", "model": "m", "region": "us-east-1", "team": "search",
        "inputTokens": i, "outputTokens": 1, "cacheReadTokens": 0, "cacheWrite5mTokens": 0,
        "cacheWrite1hTokens": 0, "latencyMs": 5, "status": 200, "outcome": "ok",
        "costNanos": 1000 + i, "costUsd": "0.000001", "priceSource": "test"
    }))
    .expect("a ledger record")
}

async fn append(redis: &mut MultiplexedConnection, json: &str) {
    let _: String = redis::cmd("XADD")
        .arg("tally:{search}:ledger")
        .arg("*")
        .arg("record")
        .arg(json)
        .query_async(redis)
        .await
        .expect("XADD");
}

/// 12 records: even ones in the 23:00 UTC hour of 6 Dec, odd ones in the first hour of 7 Dec.
async fn twelve_records(redis: &mut MultiplexedConnection) {
    for i in 0..12 {
        let time = if i % 2 == 0 {
            "2026-12-06T23:30:00Z"
        } else {
            "2026-12-07T00:10:00Z"
        };
        append(redis, &serde_json::to_string(&record(i, time)).unwrap()).await;
    }
}

struct Setup {
    redis: RedisServer,
    conn: MultiplexedConnection,
    consumer: Consumer,
    dir: tempfile::TempDir,
    dest: Destination,
}

async fn setup() -> Setup {
    let redis = RedisServer::start(false).await;
    let conn = redis.connection().await;
    let store = RedisStore::connect(&redis.url(), false, None, None)
        .await
        .expect("connect");
    let consumer = Consumer::new(store.connection(), "exporter");
    let dir = tempfile::tempdir().expect("temp dir");
    let dest = Destination::from_url(dir.path().to_str().unwrap()).expect("a directory");
    Setup {
        redis,
        conn,
        consumer,
        dir,
        dest,
    }
}

/// Every file under `dir` (relative paths), sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn rows(dir: &Path, files: &[String]) -> i64 {
    files
        .iter()
        .filter(|f| f.ends_with(".parquet"))
        .map(|f| {
            let file = std::fs::File::open(dir.join(f)).unwrap();
            SerializedFileReader::new(file)
                .unwrap()
                .metadata()
                .file_metadata()
                .num_rows()
        })
        .sum()
}

#[tokio::test]
async fn a_crash_between_write_and_acknowledgement_rewrites_the_same_object() {
    let mut s = setup().await;
    twelve_records(&mut s.conn).await;
    s.consumer.ensure_group("search").await.unwrap();
    // The crashed run: read a batch, stored its first file, died before acknowledging anything.
    let batch = decode(s.consumer.read_new("search", 12).await.unwrap()).valid;
    let planned = layout::plan(s.dest.prefix(), "search", batch);
    assert_eq!(planned.len(), 2, "two UTC hours, two files");
    let first = &planned[0];
    s.dest
        .put(&first.key, schema::to_parquet(&first.entries).unwrap())
        .await
        .unwrap();
    assert_eq!(
        group(&mut s.conn, "search").await,
        Some((12, 0)),
        "all 12 delivered, none acknowledged"
    );

    let mut exporter = Exporter::new(s.consumer.clone(), s.dest.clone(), Arc::new(Metrics::default()), 12);
    let cycle = exporter.cycle().await.unwrap();
    assert_eq!((cycle.records, cycle.files, cycle.failed), (12, 2, 0));
    let written = files(s.dir.path());
    let keys: Vec<&str> = planned.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(written, keys, "the replay wrote the planned keys again, no other");
    assert_eq!(rows(s.dir.path(), &written), 12);
    assert_eq!(group(&mut s.conn, "search").await, Some((0, 0)));
    drop(s.redis);
}

#[tokio::test]
async fn a_failed_file_is_retried_alone_and_unreadable_records_are_kept_verbatim() {
    let mut s = setup().await;
    twelve_records(&mut s.conn).await;
    append(&mut s.conn, "{\"requestId\": \"torn").await;
    // 7 Dec's folder cannot be created while a file sits where it goes.
    let blocked = s.dir.path().join("ledger/year=2026/month=12/day=07");
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, "in the way").unwrap();

    let metrics = Arc::new(Metrics::default());
    let mut exporter = Exporter::new(s.consumer.clone(), s.dest.clone(), metrics.clone(), 100);
    let first = exporter.cycle().await.unwrap();
    assert_eq!(
        (first.records, first.failed),
        (6, 1),
        "6 Dec's file stored, 7 Dec's refused"
    );
    assert_eq!(
        group(&mut s.conn, "search").await,
        Some((7, 0)),
        "7 Dec's 6 and the torn one pending"
    );
    assert_eq!(metrics.failures.get(), 1);

    std::fs::remove_file(&blocked).unwrap();
    let second = exporter.cycle().await.unwrap();
    assert_eq!((second.records, second.failed), (6, 0));
    let written = files(s.dir.path());
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(written[0].starts_with("ledger-invalid/search-"), "{written:?}");
    assert!(written[1].starts_with("ledger/year=2026/month=12/day=06/23h-search-"));
    assert!(written[2].starts_with("ledger/year=2026/month=12/day=07/00h-search-"));
    assert_eq!(rows(s.dir.path(), &written), 12);
    let kept = std::fs::read_to_string(s.dir.path().join(&written[0])).unwrap();
    let line: serde_json::Value = serde_json::from_str(kept.trim()).unwrap();
    assert_eq!(line["record"], "{\"requestId\": \"torn");
    assert!(line["reason"].as_str().unwrap().contains("EOF"), "{line}");
    assert_eq!((metrics.invalid.get(), metrics.records.get()), (1, 12));
    assert_eq!(group(&mut s.conn, "search").await, Some((0, 0)));
}

fn settlement(i: usize) -> Settlement {
    settlement_of("search", i)
}

fn settlement_of(team: &str, i: usize) -> Settlement {
    let mut record = record(i, "2026-12-06T10:00:00Z");
    record.team = team.to_string();
    Settlement {
        team: team.into(),
        charge_id: format!("req-{i}/1"),
        cost: Nanos(1000),
        counters: vec![format!("tally:{{{team}}}:c:2026-12:team")],
        count_request: true,
        team_limit: None,
        record,
    }
}

#[tokio::test]
async fn settling_trims_only_acknowledged_entries_and_the_guard_counts_what_it_cuts() {
    let mut s = setup().await;
    let store = RedisStore::connect(&s.redis.url(), false, None, None).await.unwrap();
    store.settle(&settlement(0), 5).await.unwrap();
    s.consumer.ensure_group("search").await.unwrap();
    let len = |c: &mut MultiplexedConnection| {
        let mut c = c.clone();
        async move {
            redis::cmd("XLEN")
                .arg("tally:{search}:ledger")
                .query_async::<u64>(&mut c)
                .await
                .unwrap()
        }
    };
    for i in 1..9 {
        store.settle(&settlement(i), 5).await.unwrap();
    }
    assert_eq!(
        len(&mut s.conn).await,
        9,
        "nothing acknowledged: nothing trimmed past the cap of 5"
    );
    let mut exporter = Exporter::new(s.consumer.clone(), s.dest.clone(), Arc::new(Metrics::default()), 100);
    assert_eq!(exporter.cycle().await.unwrap().records, 9);
    store.settle(&settlement(9), 5).await.unwrap();
    assert_eq!(
        len(&mut s.conn).await,
        5,
        "acknowledged entries beyond the newest 5 trimmed"
    );
    for i in 10..20 {
        store.settle(&settlement(i), 5).await.unwrap();
    }
    assert_eq!(len(&mut s.conn).await, 10, "the guard holds the stream at 2 × 5");
    let dropped: u64 = redis::cmd("GET")
        .arg(tally_config::keys::ledger_dropped("search"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert_eq!(dropped, 1, "one unexported entry cut by the guard, and counted");
    let metrics = Arc::new(Metrics::default());
    let mut exporter = Exporter::new(s.consumer.clone(), s.dest.clone(), metrics.clone(), 100);
    assert_eq!(
        exporter.cycle().await.unwrap().records,
        10,
        "19 of the 20 exported: the one cut is missing, counted"
    );
    assert_eq!(metrics.dropped.get(), 1, "the metric shows the cut");
}

#[tokio::test]
async fn every_primary_of_a_redis_cluster_is_searched_for_streams() {
    let cluster = RedisCluster::start().await;
    let other = cluster
        .team_on_another_node("search", &["ads", "billing", "chat", "docs", "eval", "fraud"])
        .await;
    let store = RedisStore::connect(&cluster.url(), true, None, None)
        .await
        .expect("cluster");
    for (i, team) in ["search", other, "search"].into_iter().enumerate() {
        store.settle(&settlement_of(team, i), 100).await.expect("settle");
    }
    let consumer = Consumer::new(store.connection(), "exporter");
    let mut expected = vec![other.to_string(), "search".to_string()];
    expected.sort();
    assert_eq!(
        consumer.teams().await.unwrap(),
        expected,
        "both primaries' streams found"
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::from_url(dir.path().to_str().unwrap()).unwrap();
    let mut exporter = Exporter::new(consumer, dest, Arc::new(Metrics::default()), 100);
    let cycle = exporter.cycle().await.unwrap();
    assert_eq!((cycle.teams, cycle.records, cycle.files, cycle.failed), (2, 3, 2, 0));
}
