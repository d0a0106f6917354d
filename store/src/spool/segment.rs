//! The spool's files: numbered segments (`segment-<seq>.log`, records appended in
//! order), the committed replay offset of a segment (`segment-<seq>.offset`) and the
//! directory fsyncs that make creating, renaming and deleting them durable.
//!
//! Only the newest segment of the running process is ever appended to; replay reads the
//! sealed ones. Nothing here decides what a record means (`frame`) or what to do with it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// A spool I/O failure, naming the file.
pub fn io_error(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Spool(format!("{what} {}: {e}", path.display()))
}

pub fn log_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("segment-{seq:016}.log"))
}

fn offset_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("segment-{seq:016}.offset"))
}

/// Sequence numbers of the segments in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error("list", dir, e))? {
        let name = entry.map_err(|e| io_error("list", dir, e))?.file_name();
        let seq = name
            .to_str()
            .and_then(|n| n.strip_prefix("segment-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        seqs.extend(seq);
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Makes a create, rename or delete in `dir` survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync", dir, e))
}

/// What opening found in one segment from an earlier process.
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    /// Records after the committed offset.
    pub pending: u64,
    /// Bytes the segment takes once repaired.
    pub len: u64,
    /// Bytes of a torn last record cut away.
    pub cut: u64,
}

/// Counts what is left to replay in segment `seq` and cuts away a torn tail: bytes
/// after the last newline are a record whose append never returned, so nobody was
/// told it was kept, and dropping it keeps every record before it.
pub fn recover(dir: &Path, seq: u64) -> Result<Found, StoreError> {
    let path = log_path(dir, seq);
    let offset = read_offset(dir, seq)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("open", &path, e))?;
    let (mut pending, mut end, mut at) = (0u64, 0u64, 0u64);
    let mut reader = BufReader::with_capacity(1 << 16, &file);
    loop {
        let chunk = reader.fill_buf().map_err(|e| io_error("read", &path, e))?;
        if chunk.is_empty() {
            break;
        }
        for (i, b) in chunk.iter().enumerate() {
            if *b == b'\n' {
                end = at + i as u64 + 1;
                pending += u64::from(end > offset);
            }
        }
        let n = chunk.len();
        at += n as u64;
        reader.consume(n);
    }
    if at > end {
        file.set_len(end)
            .and_then(|()| file.sync_data())
            .map_err(|e| io_error("cut the torn tail of", &path, e))?;
    }
    Ok(Found {
        pending,
        len: end,
        cut: at - end,
    })
}

/// Where replay of segment `seq` resumes: 0 until an offset was committed, and 0 for an
/// offset file a power cut left empty or garbled (replaying from the start is safe, only slower).
pub fn read_offset(dir: &Path, seq: u64) -> Result<u64, StoreError> {
    let path = offset_path(dir, seq);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(file = %path.display(), "unreadable spool offset: the segment replays from its start");
            0
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error("read", &path, e)),
    }
}

/// Records that segment `seq` was replayed up to byte `offset`: a new file renamed over
/// the old one, so a reader finds one or the other, whole. Not fsync'd: progress is an
/// optimisation, not a promise: a crash that loses it replays those settlements again,
/// which the store's idempotent settlement ignores, and an fsync per commit would cost
/// more than the store calls it saves.
pub fn commit_offset(dir: &Path, seq: u64, offset: u64) -> Result<(), StoreError> {
    let path = offset_path(dir, seq);
    let tmp = path.with_extension("offset.tmp");
    fs::write(&tmp, offset.to_string()).map_err(|e| io_error("write", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| io_error("rename", &tmp, e))
}

/// Deletes a fully replayed segment and its offset.
pub fn remove(dir: &Path, seq: u64) -> Result<(), StoreError> {
    let path = log_path(dir, seq);
    // The log first: an offset left behind without it is ignored and removed at the next open.
    fs::remove_file(&path).map_err(|e| io_error("delete", &path, e))?;
    match fs::remove_file(offset_path(dir, seq)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("delete", &offset_path(dir, seq), e)),
    }
    sync_dir(dir)
}

/// Offset files and temporaries whose segment is gone (a crash while deleting).
pub fn remove_strays(dir: &Path, live: &[u64]) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(|e| io_error("list", dir, e))? {
        let path = entry.map_err(|e| io_error("list", dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let seq = name
            .strip_prefix("segment-")
            .and_then(|n| n.split('.').next())
            .and_then(|n| n.parse::<u64>().ok());
        let stray = name.ends_with(".tmp") || (name.ends_with(".offset") && seq.is_some_and(|s| !live.contains(&s)));
        if stray {
            fs::remove_file(&path).map_err(|e| io_error("delete", &path, e))?;
        }
    }
    Ok(())
}

/// The complete records of a sealed segment from a byte offset on, one at a time.
pub struct Reader {
    path: PathBuf,
    inner: BufReader<File>,
    /// Where the next record starts.
    at: u64,
}

impl Reader {
    pub fn open(dir: &Path, seq: u64, offset: u64) -> Result<Self, StoreError> {
        let path = log_path(dir, seq);
        let mut file = File::open(&path).map_err(|e| io_error("open", &path, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error("seek", &path, e))?;
        Ok(Reader {
            inner: BufReader::with_capacity(1 << 16, file),
            path,
            at: offset,
        })
    }

    /// The next record (without its newline) and the offset it starts at; `None` at the
    /// end. A last line without a newline is not a record (see [`recover`]).
    pub fn next_line(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let mut line = Vec::new();
        let n = self
            .inner
            .read_until(b'\n', &mut line)
            .map_err(|e| io_error("read", &self.path, e))?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(None);
        }
        let start = self.at;
        self.at += n as u64;
        line.pop();
        Ok(Some((start, line)))
    }

    /// Where the next record starts.
    pub fn position(&self) -> u64 {
        self.at
    }
}
