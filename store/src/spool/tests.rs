use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use tally_config::ledger::{LedgerRecord, Outcome};
use tally_config::money::Nanos;

use super::*;
use crate::SettleOutcome;
use crate::memory::MemoryStore;

pub(crate) fn settlement(id: &str) -> Settlement {
    Settlement {
        team: "t".into(),
        charge_id: id.into(),
        cost: Nanos(5),
        counters: vec!["k".into()],
        count_request: true,
        team_limit: None,
        record: LedgerRecord {
            request_id: id.into(),
            charge_id: id.into(),
            time: "2026-11-26T00:00:00Z".into(),
            operation: "Converse".into(),
            model_id: "m".into(),
            model: "m".into(),
            region: "us-east-1".into(),
            team: "t".into(),
            tenant: None,
            workflow: None,
            claimed_team: None,
            principal: None,
            client: None,
            input_tokens: 1,
            output_tokens: 2,
            cache_read_tokens: 0,
            cache_write5m_tokens: 0,
            cache_write1h_tokens: 0,
            units: None,
            latency_ms: 3,
            status: 200,
            outcome: Outcome::Ok,
            cost_nanos: 5,
            cost_usd: "0.000000005".into(),
            team_budget_remaining_nanos: None,
            price_source: "test".into(),
            unpriced: false,
            over_budget: vec![],
            service_tier: None,
            note: None,
        },
    }
}

type Settled = Pin<Box<dyn Future<Output = Result<(), StoreError>>>>;

/// A store call that records the charge id and answers `answer(id)`.
fn recording<'a>(
    seen: &'a mut Vec<String>,
    answer: impl Fn(&str) -> Result<(), StoreError> + 'a,
) -> impl FnMut(Settlement) -> Settled + 'a {
    move |s| {
        let result = answer(&s.charge_id);
        seen.push(s.charge_id);
        Box::pin(async move { result })
    }
}

fn ok(_: &str) -> Result<(), StoreError> {
    Ok(())
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn filled(dir: &Path, ids: &[&str]) -> Spool {
    let spool = Spool::open(dir, 1 << 20).unwrap();
    for id in ids {
        spool.push(&settlement(id)).unwrap();
    }
    spool
}

#[tokio::test]
async fn survives_restart_and_replays_in_order_stopping_at_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled(dir.path(), &["a", "b", "c"]));
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.depth(), 3);
    let mut seen = vec![];
    let down = |id: &str| match id {
        "b" => Err(StoreError::Timeout { op: "settle" }),
        _ => Ok(()),
    };
    let pass = spool.replay(recording(&mut seen, down)).await.unwrap();
    assert_eq!((pass.settled, pass.quarantined), (1, 0));
    assert!(matches!(pass.deferred, Some(StoreError::Timeout { .. })));
    assert_eq!((seen, spool.depth()), (vec!["a".to_string(), "b".to_string()], 2));
    let mut seen = vec![];
    let pass = spool.replay(recording(&mut seen, ok)).await.unwrap();
    assert_eq!((pass.settled, spool.depth(), spool.bytes()), (2, 0, 0));
    assert_eq!(seen, ["b", "c"]);
    assert!(files(dir.path(), ".log").is_empty(), "a replayed segment is deleted");
}

#[tokio::test]
async fn is_bounded_and_refuses_rather_than_drops() {
    let dir = tempfile::tempdir().unwrap();
    let one = frame::encode(&settlement("a")).unwrap().len() as u64;
    let spool = Spool::open(dir.path(), one * 3 / 2).unwrap();
    spool.push(&settlement("a")).unwrap();
    let full = spool.push(&settlement("b")).unwrap_err();
    assert!(full.to_string().contains("is full"), "{full}");
    assert_eq!(spool.depth(), 1);
    let mut seen = vec![];
    spool.replay(recording(&mut seen, ok)).await.unwrap();
    assert_eq!(seen, ["a"]);
    spool.push(&settlement("b")).unwrap();
    assert_eq!(spool.depth(), 1, "replay frees the space");
}

/// A crash mid-append leaves the last record without its end. On the spool before
/// segments, the next record was appended right after it and the two were lost together.
#[tokio::test]
async fn a_torn_last_record_is_cut_and_the_next_append_survives() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled(dir.path(), &["a", "b"]));
    let newest = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let len = fs::metadata(&newest).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len - 40)
        .unwrap();

    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.depth(), 1, "a is whole, b was never acknowledged");
    spool.push(&settlement("c")).unwrap();
    let mut seen = vec![];
    let pass = spool.replay(recording(&mut seen, ok)).await.unwrap();
    assert_eq!(seen, ["a", "c"]);
    assert_eq!((pass.settled, pass.quarantined, spool.depth()), (2, 0, 0));
}

/// One record the store can never take used to stop every replay pass at it.
#[tokio::test]
async fn a_poison_record_is_quarantined_and_the_rest_replay() {
    let dir = tempfile::tempdir().unwrap();
    let spool = filled(dir.path(), &["a", "b", "c"]);
    let mut seen = vec![];
    let poison = |id: &str| match id {
        "b" => Err(StoreError::Protocol("[\"nope\"]".into())),
        _ => Ok(()),
    };
    let pass = spool.replay(recording(&mut seen, poison)).await.unwrap();
    assert_eq!(seen, ["a", "b", "c"]);
    assert_eq!((pass.settled, pass.quarantined, spool.depth()), (2, 1, 0));
    assert!(pass.deferred.is_none());

    let kept = fs::read_to_string(dir.path().join(quarantine::FILE_NAME)).unwrap();
    let entry: serde_json::Value = serde_json::from_str(kept.trim_end()).unwrap();
    assert!(entry["reason"].as_str().unwrap().contains("nope"), "{entry}");
    assert!(entry["source"].as_str().unwrap().starts_with("segment-"), "{entry}");
    let line = entry["line"].as_str().unwrap();
    assert_eq!(
        frame::decode(line.as_bytes()).unwrap(),
        settlement("b"),
        "kept as a spool line"
    );
    let mut seen = vec![];
    spool.replay(recording(&mut seen, ok)).await.unwrap();
    assert!(seen.is_empty(), "a quarantined record is not replayed again");
}

#[tokio::test]
async fn a_record_damaged_on_disk_is_quarantined_and_the_rest_replay() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled(dir.path(), &["a", "b", "c"]));
    let segment = &files(dir.path(), ".log")[0];
    let mut bytes = fs::read(segment).unwrap();
    let second = bytes.iter().position(|b| *b == b'\n').unwrap() + 30;
    bytes[second] ^= 0x01;
    fs::write(segment, bytes).unwrap();

    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let mut seen = vec![];
    let pass = spool.replay(recording(&mut seen, ok)).await.unwrap();
    assert_eq!(seen, ["a", "c"]);
    assert_eq!((pass.settled, pass.quarantined, spool.depth()), (2, 1, 0));
    let kept = fs::read_to_string(dir.path().join(quarantine::FILE_NAME)).unwrap();
    assert!(kept.contains("checksum mismatch"), "{kept}");
}

/// A pass resumes where the last one committed, across a restart too: what was already
/// settled is not read again (here it is overwritten with garbage, and nobody notices).
#[tokio::test]
async fn replay_resumes_from_the_committed_offset() {
    let dir = tempfile::tempdir().unwrap();
    let spool = filled(dir.path(), &["a", "b", "c"]);
    let mut seen = vec![];
    let down_at_b = |id: &str| match id {
        "b" => Err(StoreError::Timeout { op: "settle" }),
        _ => Ok(()),
    };
    spool.replay(recording(&mut seen, down_at_b)).await.unwrap();
    drop(spool);
    let segment = &files(dir.path(), ".log")[0];
    let mut bytes = fs::read(segment).unwrap();
    let first = bytes.iter().position(|b| *b == b'\n').unwrap();
    bytes[..first].fill(b'x');
    fs::write(segment, bytes).unwrap();

    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.depth(), 2);
    let mut seen = vec![];
    let pass = spool.replay(recording(&mut seen, ok)).await.unwrap();
    assert_eq!(seen, ["b", "c"]);
    assert_eq!((pass.settled, pass.quarantined), (2, 0));
}

/// A power cut can leave an offset file empty (it is not fsync'd): the segment then
/// replays from its start, which the store's idempotent settlement makes safe.
#[tokio::test]
async fn an_unreadable_offset_replays_the_segment_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let spool = filled(dir.path(), &["a", "b"]);
    let mut seen = vec![];
    let down_at_b = |id: &str| match id {
        "b" => Err(StoreError::Timeout { op: "settle" }),
        _ => Ok(()),
    };
    spool.replay(recording(&mut seen, down_at_b)).await.unwrap();
    drop(spool);
    let offset = &files(dir.path(), ".offset")[0];
    fs::write(offset, "").unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.depth(), 2);
    let mut seen = vec![];
    spool.replay(recording(&mut seen, ok)).await.unwrap();
    assert_eq!((seen, spool.depth()), (vec!["a".to_string(), "b".to_string()], 0));
}

/// Appends go on while a pass waits on the store: push never takes the replay's lock.
#[tokio::test]
async fn a_push_does_not_wait_for_a_replay_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(filled(dir.path(), &["a"]));
    let (reached, mut reached_rx) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let pass = tokio::spawn({
        let (spool, release) = (spool.clone(), release.clone());
        async move {
            let settle = |_| {
                let (reached, release) = (reached.clone(), release.clone());
                async move {
                    reached.send(()).unwrap();
                    release.notified().await;
                    Ok(())
                }
            };
            spool.replay(settle).await.unwrap()
        }
    });
    reached_rx.recv().await.unwrap();
    // The pass is parked inside the store call for "a" and cannot finish until released.
    for id in ["b", "c"] {
        spool.push(&settlement(id)).unwrap();
    }
    assert_eq!(spool.depth(), 3);
    release.notify_one();
    let pass = pass.await.unwrap();
    assert_eq!(
        (pass.settled, spool.depth()),
        (1, 2),
        "the next pass takes what came meanwhile"
    );
}

/// A crash after the store settled records but before the spool committed the offset:
/// they replay again, and the store (the real memory store) charges them once.
#[tokio::test]
async fn exactly_once_across_a_crash_between_settle_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let spool = filled(dir.path(), &["a", "b", "c"]);
    let (at_c, at_c_rx) = tokio::sync::oneshot::channel();
    let mut at_c = Some(at_c);
    let settle = |s: Settlement| {
        let hang = s.charge_id == "c";
        if hang {
            at_c.take().unwrap().send(()).unwrap();
        } else {
            store.settle(&s, 100);
        }
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    };
    tokio::select! {
        _ = spool.replay(settle) => panic!("the pass should hang at c"),
        _ = at_c_rx => {}
    }
    drop(spool); // the crash: a and b are settled, no offset was committed

    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.depth(), 3);
    let mut outcomes = vec![];
    let pass = spool
        .replay(|s| {
            outcomes.push(store.settle(&s, 100));
            async { Ok(()) }
        })
        .await
        .unwrap();
    assert_eq!(pass.settled, 3);
    assert!(matches!(
        outcomes[..],
        [
            SettleOutcome::AlreadySettled,
            SettleOutcome::AlreadySettled,
            SettleOutcome::Settled { .. }
        ]
    ));
    assert_eq!(store.counters("k").spent, Nanos(15), "three charges of 5, each once");
    assert_eq!(store.ledger_page("t", 0, 10).len(), 3);
}

#[tokio::test]
async fn full_segments_roll_over_and_are_deleted_once_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap().with_segment_bytes(1500);
    let ids: Vec<String> = (0..10).map(|i| format!("id{i}")).collect();
    for id in &ids {
        spool.push(&settlement(id)).unwrap();
    }
    assert!(files(dir.path(), ".log").len() >= 3, "{:?}", files(dir.path(), ".log"));
    let mut seen = vec![];
    let pass = spool.replay(recording(&mut seen, ok)).await.unwrap();
    assert_eq!(seen, ids);
    assert_eq!((pass.settled, spool.depth(), spool.bytes()), (10, 0, 0));
    assert!(files(dir.path(), ".log").is_empty() && files(dir.path(), ".offset").is_empty());
}

#[tokio::test]
async fn the_spool_file_of_an_earlier_version_is_converted() {
    let dir = tempfile::tempdir().unwrap();
    let mut legacy = Vec::new();
    for id in ["a", "b"] {
        legacy.extend(serde_json::to_vec(&settlement(id)).unwrap());
        legacy.push(b'\n');
    }
    legacy.extend(b"not json\n{\"torn");
    fs::write(dir.path().join("settlements.jsonl"), legacy).unwrap();

    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.depth(), 2);
    assert!(!dir.path().join("settlements.jsonl").exists());
    let kept = fs::read_to_string(dir.path().join(quarantine::FILE_NAME)).unwrap();
    assert!(kept.contains("not json"), "{kept}");
    let mut seen = vec![];
    spool.replay(recording(&mut seen, ok)).await.unwrap();
    assert_eq!(seen, ["a", "b"]);
}
