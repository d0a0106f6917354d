//! The disk spool: settlements that could not reach the store wait here, in
//! an append-only JSON-lines file, until it is back.
//!
//! Replay settles each one through the store, whose settlement is idempotent per
//! charge id, and then rewrites the file with what is left; a crash between the
//! two replays some settlements twice, which the store ignores. So a completed
//! charge is charged exactly once. The spool is bounded in bytes: beyond it new
//! settlements are refused (and counted), never silently dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{Settlement, StoreError};

const FILE_NAME: &str = "settlements.jsonl";

pub struct Spool {
    path: PathBuf,
    max_bytes: u64,
    /// Serialises appends and replays; holds the number of queued settlements.
    depth: Mutex<u64>,
}

impl Spool {
    /// Opens (creating the directory) and counts what an earlier process left.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::Spool(format!("create {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let depth = read_all(&path)?.len() as u64;
        Ok(Spool {
            path,
            max_bytes,
            depth: Mutex::new(depth),
        })
    }

    pub fn depth(&self) -> u64 {
        *self.depth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one settlement durably (fsync) before returning.
    pub fn push(&self, s: &Settlement) -> Result<(), StoreError> {
        let mut depth = self.depth.lock().unwrap_or_else(|e| e.into_inner());
        let mut line = serde_json::to_vec(s).map_err(|e| StoreError::Spool(e.to_string()))?;
        line.push(b'\n');
        let size = fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if size + line.len() as u64 > self.max_bytes {
            return Err(StoreError::Spool(format!(
                "spool {} is full ({size} bytes)",
                self.path.display()
            )));
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| StoreError::Spool(format!("open {}: {e}", self.path.display())))?;
        f.write_all(&line)
            .and_then(|_| f.sync_data())
            .map_err(|e| StoreError::Spool(format!("write {}: {e}", self.path.display())))?;
        *depth += 1;
        Ok(())
    }

    /// Settles everything queued with `settle`, stopping at the first failure;
    /// what was not settled stays queued. Returns how many were settled.
    pub async fn replay<F, Fut>(&self, mut settle: F) -> Result<u64, StoreError>
    where
        F: FnMut(Settlement) -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>>,
    {
        // Appends are blocked meanwhile only for the rewrite, not the network calls:
        // take a snapshot, settle it, then drop exactly that many lines from the front.
        let pending = {
            let _guard = self.depth.lock().unwrap_or_else(|e| e.into_inner());
            read_all(&self.path)?
        };
        let mut done = 0usize;
        for s in pending {
            if settle(s).await.is_err() {
                break;
            }
            done += 1;
        }
        if done > 0 {
            let mut depth = self.depth.lock().unwrap_or_else(|e| e.into_inner());
            let all = read_all(&self.path)?;
            let rest = &all[done.min(all.len())..];
            let tmp = self.path.with_extension("tmp");
            {
                let mut f = File::create(&tmp).map_err(|e| StoreError::Spool(e.to_string()))?;
                for s in rest {
                    let mut line = serde_json::to_vec(s).map_err(|e| StoreError::Spool(e.to_string()))?;
                    line.push(b'\n');
                    f.write_all(&line).map_err(|e| StoreError::Spool(e.to_string()))?;
                }
                f.sync_data().map_err(|e| StoreError::Spool(e.to_string()))?;
            }
            fs::rename(&tmp, &self.path).map_err(|e| StoreError::Spool(e.to_string()))?;
            *depth = rest.len() as u64;
        }
        Ok(done as u64)
    }
}

/// Every settlement in the file; a torn last line (crash mid-write) is skipped.
fn read_all(path: &Path) -> Result<Vec<Settlement>, StoreError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(StoreError::Spool(format!("read {}: {e}", path.display()))),
    };
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|e| StoreError::Spool(e.to_string()))?;
        match serde_json::from_str(&line) {
            Ok(s) => out.push(s),
            Err(e) => tracing::warn!(error = %e, "skipping an unreadable spool line"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_config::ledger::{LedgerRecord, Outcome};
    use tally_config::money::Nanos;

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

    #[tokio::test]
    async fn survives_restart_and_replays_in_order_stopping_at_failure() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for id in ["a", "b", "c"] {
            spool.push(&settlement(id)).unwrap();
        }
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.depth(), 3);
        let mut seen = vec![];
        let n = spool
            .replay(|s| {
                seen.push(s.charge_id.clone());
                let fail = s.charge_id == "b";
                async move {
                    if fail {
                        Err(StoreError::Spool("down".into()))
                    } else {
                        Ok(())
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!((n, seen), (1, vec!["a".to_string(), "b".to_string()]));
        assert_eq!(spool.depth(), 2);
        let n = spool.replay(|_| async { Ok(()) }).await.unwrap();
        assert_eq!((n, spool.depth()), (2, 0));
    }

    #[test]
    fn is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 600).unwrap();
        spool.push(&settlement("a")).unwrap();
        assert!(matches!(spool.push(&settlement("b")), Err(StoreError::Spool(_))));
        assert_eq!(spool.depth(), 1);
    }
}
