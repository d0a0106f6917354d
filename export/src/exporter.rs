//! One export cycle: for every team's stream, first whatever this consumer has pending (a
//! crash left it unacknowledged), else the next batch nobody has read; split it into files by
//! hour ([`layout::plan`]), store each file, then acknowledge exactly its entries. A stream
//! that fails is counted and retried next cycle; the others go on.
//!
//! Why a replay cannot duplicate: new entries are read only when nothing is pending, so the
//! pending entries are always what is left of one read, and splitting them by hour again gives
//! the files not yet acknowledged, under the same keys.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::Result;
use crate::consumer::Consumer;
use crate::destination::Destination;
use crate::entry::{Invalid, RawEntry, StreamId, decode};
use crate::layout;
use crate::metrics::Metrics;
use crate::schema;

/// Most reads of one stream in one cycle; the next cycle (after `--interval`) continues.
const READS_PER_CYCLE: usize = 50;

/// What one cycle exported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    pub teams: usize,
    pub records: u64,
    pub files: u64,
    /// Streams whose export failed this cycle (retried next cycle).
    pub failed: usize,
    /// Some stream had more than one cycle's reads: the next cycle starts without a pause.
    pub behind: bool,
}

pub struct Exporter {
    consumer: Consumer,
    dest: Destination,
    metrics: Arc<Metrics>,
    batch: usize,
    /// Streams known to have the group, so `XGROUP CREATE` is sent once per stream.
    grouped: HashSet<String>,
}

impl Exporter {
    /// `batch`: entries read at a time, the most one file can hold.
    pub fn new(consumer: Consumer, dest: Destination, metrics: Arc<Metrics>, batch: usize) -> Self {
        Exporter {
            consumer,
            dest,
            metrics,
            batch: batch.max(1),
            grouped: HashSet::new(),
        }
    }

    /// Exports every stream until it is caught up (or fails), then updates the lag metrics.
    pub async fn cycle(&mut self) -> Result<Cycle> {
        let teams = self.consumer.teams().await.inspect_err(|_| {
            self.metrics.failures.inc();
        })?;
        let mut cycle = Cycle {
            teams: teams.len(),
            ..Cycle::default()
        };
        for team in &teams {
            match self.drain(team, &mut cycle).await {
                Ok(()) => {}
                Err(error) => {
                    self.metrics.failures.inc();
                    cycle.failed += 1;
                    tracing::warn!(%team, %error, "ledger export failed; retrying next cycle");
                }
            }
        }
        self.observe(&teams).await;
        self.metrics.cycles.inc();
        Ok(cycle)
    }

    /// Exports `team`'s stream until a read comes back short, or [`READS_PER_CYCLE`] reads
    /// (one busy team must not hold up the others' exports).
    async fn drain(&mut self, team: &str, cycle: &mut Cycle) -> Result<()> {
        if !self.grouped.contains(team) {
            self.consumer.ensure_group(team).await?;
            self.grouped.insert(team.to_string());
        }
        for _ in 0..READS_PER_CYCLE {
            let mut raw = self.consumer.pending(team, self.batch).await?;
            let replay = !raw.is_empty();
            if !replay {
                raw = self.consumer.read_new(team, self.batch).await?;
            }
            let full = raw.len() >= self.batch;
            if raw.is_empty() {
                return Ok(());
            }
            if replay {
                tracing::info!(%team, entries = raw.len(), "re-exporting entries left unacknowledged");
            }
            self.export(team, raw, cycle).await?;
            if !full && !replay {
                return Ok(());
            }
        }
        cycle.behind = true;
        Ok(())
    }

    /// Stores and acknowledges one read: its Parquet files, its invalid records, its
    /// vanished entries.
    async fn export(&self, team: &str, raw: Vec<RawEntry>, cycle: &mut Cycle) -> Result<()> {
        let decoded = decode(raw);
        let mut invalid = decoded.invalid;
        let (rows, unfit): (Vec<_>, Vec<_>) = decoded
            .valid
            .into_iter()
            .partition(|e| schema::row_problem(e).is_none());
        invalid.extend(unfit.into_iter().map(|e| Invalid {
            reason: schema::row_problem(&e).unwrap_or_default(),
            json: serde_json::to_string(&e.record).unwrap_or_default(),
            id: e.id,
        }));
        for file in layout::plan(self.dest.prefix(), team, rows) {
            let bytes = schema::to_parquet(&file.entries)?;
            self.store(&file.key, bytes).await?;
            let ids: Vec<StreamId> = file.entries.iter().map(|e| e.id).collect();
            self.consumer.ack(team, &ids).await?;
            self.metrics.records.inc_by(ids.len() as u64);
            cycle.records += ids.len() as u64;
            cycle.files += 1;
        }
        if !invalid.is_empty() {
            let key = layout::invalid_key(self.dest.prefix(), team, &invalid);
            tracing::warn!(%team, records = invalid.len(), %key, "ledger records that cannot be rows kept verbatim");
            self.store(&key, ndjson(&invalid)).await?;
            let ids: Vec<StreamId> = invalid.iter().map(|i| i.id).collect();
            self.consumer.ack(team, &ids).await?;
            self.metrics.invalid.inc_by(ids.len() as u64);
            cycle.files += 1;
        }
        if !decoded.vanished.is_empty() {
            // The length guard cut them while pending and counted them in `:dropped`.
            tracing::error!(%team, entries = decoded.vanished.len(), "pending ledger entries were trimmed before export");
            self.consumer.ack(team, &decoded.vanished).await?;
        }
        Ok(())
    }

    async fn store(&self, key: &str, bytes: Bytes) -> Result<()> {
        let len = bytes.len() as u64;
        self.dest.put(key, bytes).await?;
        self.metrics.files.inc();
        self.metrics.bytes.inc_by(len);
        tracing::debug!(%key, bytes = len, "stored");
        Ok(())
    }

    /// Lag and guard drops over every stream; a stream that cannot be read is skipped.
    async fn observe(&self, teams: &[String]) {
        let (mut records, mut oldest, mut dropped) = (0u64, None::<u64>, 0u64);
        for team in teams {
            if let Ok(lag) = self.consumer.lag(team).await {
                records += lag.records;
                oldest = match (oldest, lag.oldest_ms) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            dropped += self.consumer.dropped(team).await.unwrap_or(0);
        }
        let now_ms = jiff::Timestamp::now().as_millisecond().max(0) as u64;
        let age = oldest.map_or(0.0, |ms| now_ms.saturating_sub(ms) as f64 / 1000.0);
        self.metrics.lag_records.set(records);
        self.metrics.lag_seconds.set(age);
        self.metrics.dropped.set(dropped);
    }
}

/// Runs cycles `interval` apart until `shutdown` resolves (between cycles: a cycle in flight
/// completes, and anything it did not acknowledge is re-exported by the next run).
pub async fn run(mut exporter: Exporter, interval: Duration, shutdown: impl Future<Output = ()>) -> Result<()> {
    tokio::pin!(shutdown);
    loop {
        let pause = match exporter.cycle().await {
            Ok(c) => {
                if c.records > 0 {
                    tracing::info!(teams = c.teams, records = c.records, files = c.files, "exported");
                }
                if c.behind { Duration::ZERO } else { interval }
            }
            Err(error) => {
                tracing::warn!(%error, "ledger export cycle failed");
                interval
            }
        };
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One JSON object per line: the stream id, why it is not a row, and the record as stored.
fn ndjson(invalid: &[Invalid]) -> Bytes {
    let mut out = String::new();
    for i in invalid {
        let line = serde_json::json!({ "streamId": i.id.to_string(), "reason": i.reason, "record": i.json });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Bytes::from(out)
}
