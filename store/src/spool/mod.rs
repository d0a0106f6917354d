//! The disk spool: settlements that could not reach the store wait here until it is
//! back — a write-ahead log of checksummed records in numbered segment files.
//!
//! - **push** appends one record ([`frame`]) to the active segment and fsyncs it before
//!   returning; it never waits on a replay's store round trips (replay has its own lock).
//! - **replay** seals the active segment (new records go to a fresh one), settles the
//!   sealed segments' records in order from each one's committed offset, records
//!   progress every [`COMMIT_EVERY`] records and deletes a segment once it is through.
//!   An outage stops the pass and keeps the rest; a record the store refuses for what it
//!   is, or that fails its checksum, goes to the [`quarantine`] and the pass goes on.
//! - **open** cuts a torn last record (a crash mid-append: never acknowledged) and never
//!   appends to an earlier process's segment, so a new record cannot run into a torn one.
//!
//! The store's settlement is idempotent per charge id, so a crash between settling and
//! committing the offset replays a few settlements twice, which the store ignores: a
//! completed charge is charged exactly once. The spool is bounded in bytes: beyond it
//! new settlements are refused (the caller counts and logs them), never dropped silently.

pub mod frame;
mod legacy;
mod poison;
pub mod quarantine;
mod segment;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

pub use poison::rejects_record;
use segment::io_error;

use crate::{Settlement, StoreError};

/// Records settled between two offset commits: what a crash of the process may replay
/// twice (a power cut, which may lose an offset, up to the whole segment). A commit writes
/// and renames a small file (about 2 ms on an overlay filesystem): one every 64 records
/// made a pass 9× slower than without; one every 512 costs about what reading them does.
pub const COMMIT_EVERY: u64 = 512;

/// What one replay pass did.
#[derive(Debug, Default)]
pub struct Replayed {
    pub settled: u64,
    pub quarantined: u64,
    /// The outage that ended the pass early; its record and those after it stay queued.
    pub deferred: Option<StoreError>,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// A segment this large is sealed, so replay can start on it and free it.
    segment_bytes: u64,
    writer: Mutex<Writer>,
    /// Serialises replay passes; push never takes it.
    cursor: tokio::sync::Mutex<Cursor>,
    /// Records not yet settled or quarantined.
    depth: AtomicU64,
    /// Bytes of every segment on disk (what the bound applies to).
    bytes: AtomicU64,
}

/// The append side: the active segment and the sealed ones waiting for replay.
struct Writer {
    seq: u64,
    /// Opened (created) on its first record.
    file: Option<File>,
    len: u64,
    /// Oldest first, with the bytes each one counts for in [`Spool::bytes`].
    sealed: VecDeque<(u64, u64)>,
}

/// The segment replay is in and its committed offset.
#[derive(Default)]
struct Cursor {
    seq: Option<u64>,
    offset: u64,
}

fn lock(m: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Spool {
    /// Opens (creating the directory), repairs and counts what an earlier process left.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let mut seqs = segment::list(dir)?;
        if legacy::migrate(dir, seqs.last().map_or(0, |s| s + 1))? {
            seqs = segment::list(dir)?;
        }
        segment::remove_strays(dir, &seqs)?;
        let (mut depth, mut bytes, mut sealed) = (0, 0, VecDeque::new());
        for &seq in &seqs {
            let found = segment::recover(dir, seq)?;
            if found.cut > 0 {
                tracing::warn!(
                    segment = %segment::log_path(dir, seq).display(),
                    bytes = found.cut,
                    "cut a torn record from a spool segment: its append never completed, so it was never acknowledged"
                );
            }
            depth += found.pending;
            bytes += found.len;
            sealed.push_back((seq, found.len));
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 16).clamp(64 << 10, 16 << 20),
            writer: Mutex::new(Writer {
                seq: seqs.last().map_or(0, |s| s + 1),
                file: None,
                len: 0,
                sealed,
            }),
            cursor: tokio::sync::Mutex::new(Cursor::default()),
            depth: AtomicU64::new(depth),
            bytes: AtomicU64::new(bytes),
        })
    }

    /// Seals segments at `n` bytes instead of the default 1/16 of the bound.
    #[cfg(test)]
    pub(crate) fn with_segment_bytes(mut self, n: u64) -> Self {
        self.segment_bytes = n;
        self
    }

    /// Settlements waiting: pushed and not yet settled or quarantined.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::SeqCst)
    }

    /// Bytes the spool takes on disk, the quarantine aside.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// Appends one settlement durably (fsync) before returning; refuses it when the
    /// spool would grow beyond its bound.
    pub fn push(&self, s: &Settlement) -> Result<(), StoreError> {
        let line = frame::encode(s)?;
        let mut w = lock(&self.writer);
        let used = self.bytes.load(Ordering::SeqCst);
        if used + line.len() as u64 > self.max_bytes {
            return Err(StoreError::Spool(format!(
                "spool {} is full ({used} of {} bytes)",
                self.dir.display(),
                self.max_bytes
            )));
        }
        w.append(&self.dir, &line)?;
        self.bytes.fetch_add(line.len() as u64, Ordering::SeqCst);
        self.depth.fetch_add(1, Ordering::SeqCst);
        if w.len >= self.segment_bytes {
            w.seal();
        }
        Ok(())
    }

    /// One pass: settles everything queued with `settle`, in order, up to the first
    /// outage. Errors only when the spool's own files fail.
    pub async fn replay<F, Fut>(&self, mut settle: F) -> Result<Replayed, StoreError>
    where
        F: FnMut(Settlement) -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>>,
    {
        let mut cursor = self.cursor.lock().await;
        let mut out = Replayed::default();
        let mut sealed_active = false;
        loop {
            let front = lock(&self.writer).sealed.front().copied();
            let Some((seq, len)) = front else {
                // Once the sealed segments are through, the records pushed meanwhile.
                if sealed_active || !lock(&self.writer).seal() {
                    break;
                }
                sealed_active = true;
                continue;
            };
            if !self.replay_segment(&mut cursor, seq, &mut settle, &mut out).await? {
                break;
            }
            segment::remove(&self.dir, seq)?;
            lock(&self.writer).sealed.pop_front();
            self.bytes.fetch_sub(len, Ordering::SeqCst);
            *cursor = Cursor::default();
        }
        Ok(out)
    }

    /// Replays segment `seq` from its committed offset: `true` when all of it was
    /// settled or quarantined, `false` when an outage stopped it.
    async fn replay_segment<F, Fut>(
        &self,
        cursor: &mut Cursor,
        seq: u64,
        settle: &mut F,
        out: &mut Replayed,
    ) -> Result<bool, StoreError>
    where
        F: FnMut(Settlement) -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>>,
    {
        if cursor.seq != Some(seq) {
            *cursor = Cursor {
                seq: Some(seq),
                offset: segment::read_offset(&self.dir, seq)?,
            };
        }
        let mut reader = segment::Reader::open(&self.dir, seq, cursor.offset)?;
        let mut uncommitted = 0;
        while let Some((start, line)) = reader.next_line()? {
            let refused = match frame::decode(&line) {
                Err(why) => Some(why),
                Ok(s) => match settle(s).await {
                    Ok(()) => None,
                    Err(e) if rejects_record(&e) => Some(format!("the store refused it: {e}")),
                    Err(e) => {
                        self.commit(cursor, start, &mut uncommitted, true)?;
                        out.deferred = Some(e);
                        return Ok(false);
                    }
                },
            };
            uncommitted += 1;
            if let Some(why) = refused {
                let source = segment::log_path(&self.dir, seq);
                let name = source.file_name().unwrap_or_default().to_string_lossy();
                quarantine::append(&self.dir, &name, start, &why, &line)?;
                out.quarantined += 1;
                // Right away: a quarantined record is logged and kept once, not again after a crash.
                self.commit(cursor, reader.position(), &mut uncommitted, true)?;
            } else {
                out.settled += 1;
                if uncommitted >= COMMIT_EVERY {
                    self.commit(cursor, reader.position(), &mut uncommitted, true)?;
                }
            }
        }
        // The segment is deleted next: no offset to keep for it.
        self.commit(cursor, reader.position(), &mut uncommitted, false)?;
        Ok(true)
    }

    /// Marks the segment replayed up to `offset` (on disk unless it is about to be
    /// deleted) and only then counts the `uncommitted` records as gone: a pass
    /// cancelled before this replays them again, and the depth stays right.
    fn commit(&self, cursor: &mut Cursor, offset: u64, uncommitted: &mut u64, to_disk: bool) -> Result<(), StoreError> {
        if offset > cursor.offset {
            if to_disk {
                let seq = cursor.seq.unwrap_or_default();
                segment::commit_offset(&self.dir, seq, offset)?;
            }
            cursor.offset = offset;
        }
        self.depth.fetch_sub(*uncommitted, Ordering::SeqCst);
        *uncommitted = 0;
        Ok(())
    }
}

impl Writer {
    /// Appends and fsyncs one record to the active segment, creating it if needed.
    fn append(&mut self, dir: &Path, line: &[u8]) -> Result<(), StoreError> {
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let path = segment::log_path(dir, self.seq);
                let f = OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| io_error("create", &path, e))?;
                segment::sync_dir(dir)?;
                self.file.insert(f)
            }
        };
        if let Err(e) = file.write_all(line).and_then(|()| file.sync_data()) {
            // Part of the record may be on disk. Cut it off if we can, and append to this
            // segment no more either way: replay ignores a last line without its newline.
            let _ = file.set_len(self.len);
            let path = segment::log_path(dir, self.seq);
            self.seal();
            return Err(io_error("append to", &path, e));
        }
        self.len += line.len() as u64;
        Ok(())
    }

    /// Hands the active segment to replay, if it holds anything; `true` if it did.
    fn seal(&mut self) -> bool {
        if self.file.take().is_none() {
            return false;
        }
        self.sealed.push_back((self.seq, self.len));
        self.seq += 1;
        self.len = 0;
        true
    }
}
