//! Where records that can never be settled go (`quarantine.jsonl` in the spool
//! directory), so the records behind them replay on. Kept, never replayed: each line
//! is a JSON object with where the record was (`source`, `offset`), why it was set
//! aside (`reason`) and the spool line itself (`line`), for an operator to inspect and,
//! once the cause is fixed, put back (`jq -r .line quarantine.jsonl` is a segment).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::segment::io_error;
use crate::StoreError;

pub const FILE_NAME: &str = "quarantine.jsonl";

/// Appends one record durably and logs it, once, with its position.
pub fn append(dir: &Path, source: &str, offset: u64, reason: &str, line: &[u8]) -> Result<(), StoreError> {
    let path = dir.join(FILE_NAME);
    let entry = serde_json::json!({
        "source": source,
        "offset": offset,
        "reason": reason,
        "line": String::from_utf8_lossy(line),
    });
    let mut bytes = serde_json::to_vec(&entry).map_err(|e| StoreError::Spool(e.to_string()))?;
    bytes.push(b'\n');
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_error("open", &path, e))?;
    // A crash mid-append leaves a line without its newline: end it first, so this
    // entry does not run into it.
    let len = f.metadata().map_err(|e| io_error("stat", &path, e))?.len();
    if len > 0 {
        let mut last = [0u8];
        f.seek(SeekFrom::Start(len - 1))
            .and_then(|_| f.read_exact(&mut last))
            .map_err(|e| io_error("read", &path, e))?;
        if last[0] != b'\n' {
            bytes.insert(0, b'\n');
        }
    }
    f.write_all(&bytes)
        .and_then(|()| f.sync_data())
        .map_err(|e| io_error("write", &path, e))?;
    tracing::error!(
        source,
        offset,
        reason,
        quarantine = %path.display(),
        "a spooled settlement cannot be settled: quarantined, the rest of the spool replays on"
    );
    Ok(())
}
