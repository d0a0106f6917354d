//! The spool file of earlier versions (`settlements.jsonl`: plain JSON lines, no
//! checksum), turned into one segment at open so an upgrade loses none of it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::segment::{self, io_error};
use super::{frame, quarantine};
use crate::{Settlement, StoreError};

const FILE_NAME: &str = "settlements.jsonl";

/// Rewrites the legacy file, if any, as segment `seq`; `true` if there was one. A crash
/// before the legacy file is deleted converts it again at the next open: its records
/// then replay twice, which the store's idempotent settlement ignores.
pub fn migrate(dir: &Path, seq: u64) -> Result<bool, StoreError> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error("read", &path, e)),
    };
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let mut at = 0u64;
    // A last line without its newline is a torn append, never acknowledged: left out.
    for line in bytes.split_inclusive(|b| *b == b'\n').filter(|l| l.ends_with(b"\n")) {
        let body = &line[..line.len() - 1];
        match serde_json::from_slice::<Settlement>(body) {
            Ok(s) => out.extend(frame::encode(&s)?),
            Err(e) => quarantine::append(dir, FILE_NAME, at, &format!("not a settlement: {e}"), body)?,
        }
        at += line.len() as u64;
    }
    let target = segment::log_path(dir, seq);
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&target)
        .and_then(|mut f| {
            f.write_all(&out)?;
            f.sync_data()
        })
        .map_err(|e| io_error("write", &target, e))?;
    segment::sync_dir(dir)?;
    fs::remove_file(&path).map_err(|e| io_error("delete", &path, e))?;
    segment::sync_dir(dir)?;
    tracing::info!(from = %path.display(), to = %target.display(), "converted the spool of an earlier version");
    Ok(true)
}
