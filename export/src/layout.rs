//! Where exported records go: the object keys, partitioned the way Athena, Spark and DuckDB
//! read Hive-style folders next to a CUR 2.0 export (`ledger/year=YYYY/month=MM/day=DD/`),
//! and one file per team, UTC hour and read batch. Pure.
//!
//! A key is a function of the entries it holds only — the hour, the team and the first and
//! last stream ids — so exporting the same entries again (after a crash, before their
//! acknowledgement) overwrites the same object instead of adding a duplicate.

use std::collections::BTreeMap;

use crate::entry::{Entry, Invalid, StreamId};

/// Folder of the Parquet files, under the destination's prefix.
pub const LEDGER_DIR: &str = "ledger";
/// Folder of records that could not be turned into rows, kept verbatim as NDJSON.
pub const INVALID_DIR: &str = "ledger-invalid";

/// The UTC hour a record belongs to: the hour its request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hour {
    pub year: i16,
    pub month: i8,
    pub day: i8,
    pub hour: i8,
}

impl Hour {
    fn of_timestamp(t: jiff::Timestamp) -> Hour {
        let dt = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
        Hour {
            year: dt.year(),
            month: dt.month(),
            day: dt.day(),
            hour: dt.hour(),
        }
    }
}

/// The hour of the record's `time`; the stream id's (when it was settled) for a record whose
/// time does not parse, which the ext_proc never writes.
pub fn hour_of(entry: &Entry) -> Hour {
    let t = entry
        .record
        .time
        .parse::<jiff::Timestamp>()
        .or_else(|_| jiff::Timestamp::from_millisecond(entry.id.ms as i64))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    Hour::of_timestamp(t)
}

/// One object to write: its key and the records it holds, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub struct FilePlan {
    pub key: String,
    pub entries: Vec<Entry>,
}

/// Splits one read of `team`'s stream into one file per UTC hour.
pub fn plan(prefix: &str, team: &str, entries: Vec<Entry>) -> Vec<FilePlan> {
    let mut by_hour: BTreeMap<Hour, Vec<Entry>> = BTreeMap::new();
    for e in entries {
        by_hour.entry(hour_of(&e)).or_default().push(e);
    }
    by_hour
        .into_iter()
        .map(|(h, entries)| {
            let (first, last) = span(entries.iter().map(|e| e.id));
            let key = format!(
                "{LEDGER_DIR}/year={:04}/month={:02}/day={:02}/{:02}h-{}-{first}-{last}.parquet",
                h.year,
                h.month,
                h.day,
                h.hour,
                safe(team)
            );
            FilePlan {
                key: join(prefix, &key),
                entries,
            }
        })
        .collect()
}

/// The key of the NDJSON object keeping `team`'s records that could not become rows.
pub fn invalid_key(prefix: &str, team: &str, invalid: &[Invalid]) -> String {
    let (first, last) = span(invalid.iter().map(|i| i.id));
    join(prefix, &format!("{INVALID_DIR}/{}-{first}-{last}.ndjson", safe(team)))
}

fn span(ids: impl Iterator<Item = StreamId>) -> (StreamId, StreamId) {
    let zero = StreamId { ms: 0, seq: 0 };
    ids.fold(None, |acc: Option<(StreamId, StreamId)>, id| match acc {
        None => Some((id, id)),
        Some((lo, hi)) => Some((lo.min(id), hi.max(id))),
    })
    .unwrap_or((zero, zero))
}

fn join(prefix: &str, key: &str) -> String {
    match prefix.trim_matches('/') {
        "" => key.to_string(),
        p => format!("{p}/{key}"),
    }
}

/// A team name as one path segment: letters, digits, `.`, `_` kept; anything else as `~XX`
/// hex bytes (and `-` too, so the segment splits unambiguously at its dashes). Injective.
fn safe(team: &str) -> String {
    let mut out = String::with_capacity(team.len());
    for b in team.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_config::ledger::LedgerRecord;

    fn entry(ms: u64, seq: u64, time: &str) -> Entry {
        let mut record: LedgerRecord =
            serde_json::from_str(&crate::entry::tests::record_json("r", time)).expect("record");
        record.request_id = format!("r{ms}-{seq}");
        Entry {
            id: StreamId { ms, seq },
            record,
        }
    }

    #[test]
    fn one_file_per_utc_hour_named_by_its_ids() {
        let entries = vec![
            entry(1_000, 0, "2026-12-06T09:59:59.999Z"),
            entry(1_000, 1, "2026-12-06T10:00:00+01:00"),
            entry(2_000, 0, "2026-12-06T10:30:00Z"),
        ];
        let files = plan("s3-prefix/", "search", entries);
        let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "s3-prefix/ledger/year=2026/month=12/day=06/09h-search-1000-0-1000-1.parquet",
                "s3-prefix/ledger/year=2026/month=12/day=06/10h-search-2000-0-2000-0.parquet",
            ]
        );
        assert_eq!(files[0].entries.len(), 2, "10:00+01:00 is 09:00 UTC");
    }

    #[test]
    fn the_same_entries_always_get_the_same_key() {
        let make = || vec![entry(5, 0, "2026-01-31T23:00:00Z"), entry(5, 1, "2026-01-31T23:10:00Z")];
        assert_eq!(plan("", "t", make()), plan("", "t", make()));
        assert_eq!(
            plan("", "t", make())[0].key,
            "ledger/year=2026/month=01/day=31/23h-t-5-0-5-1.parquet"
        );
    }

    #[test]
    fn a_record_without_a_readable_time_falls_back_to_its_stream_id() {
        let e = entry(1_765_000_000_000, 0, "yesterday");
        assert_eq!(
            hour_of(&e),
            Hour {
                year: 2025,
                month: 12,
                day: 6,
                hour: 5
            }
        );
    }

    #[test]
    fn team_names_become_unambiguous_path_segments() {
        assert_eq!(safe("search"), "search");
        assert_eq!(safe("a-b/c"), "a~2Db~2Fc");
        assert_ne!(safe("a-b"), safe("a~2Db"), "a literal ~ is escaped too");
        assert_eq!(safe("ü"), "~C3~BC");
    }
}
