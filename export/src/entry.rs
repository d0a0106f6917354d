//! One ledger stream entry as the exporter sees it: its Redis stream id and its record,
//! decoded. Pure: sorting out what Redis handed over (valid records, records that do not
//! parse, entries trimmed while pending) happens here, without Redis.

use std::fmt;
use std::str::FromStr;

use tally_config::ledger::LedgerRecord;

/// A Redis stream id (`<ms>-<seq>`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl FromStr for StreamId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a stream id (<ms>-<seq>)");
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(StreamId {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An entry as read from the stream: its `record` field, or `None` when Redis no longer has
/// the entry's content (the length guard trimmed it while it was pending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub id: StreamId,
    pub json: Option<String>,
}

/// A ledger record and where it sits in its team's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: StreamId,
    pub record: LedgerRecord,
}

/// A stream entry whose record cannot be exported as a row: kept verbatim, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub id: StreamId,
    pub json: String,
    pub reason: String,
}

/// What one read of a team's stream holds, sorted out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub valid: Vec<Entry>,
    pub invalid: Vec<Invalid>,
    /// Pending entries whose content Redis no longer has: acknowledged and counted as lost.
    pub vanished: Vec<StreamId>,
}

/// Sorts raw entries into rows, records that do not parse, and vanished entries, keeping
/// stream order within each.
pub fn decode(raw: Vec<RawEntry>) -> Decoded {
    let mut out = Decoded::default();
    for RawEntry { id, json } in raw {
        let Some(json) = json else {
            out.vanished.push(id);
            continue;
        };
        match serde_json::from_str::<LedgerRecord>(&json) {
            Ok(record) => out.valid.push(Entry { id, record }),
            Err(e) => out.invalid.push(Invalid {
                id,
                json,
                reason: e.to_string(),
            }),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record_json(request_id: &str, time: &str) -> String {
        serde_json::json!({
            "requestId": request_id, "chargeId": format!("{request_id}/1"), "time": time,
            "operation": "Converse", "modelId": "m", "model": "m", "region": "us-east-1",
            "team": "search", "inputTokens": 1, "outputTokens": 2, "cacheReadTokens": 0,
            "cacheWrite5mTokens": 0, "cacheWrite1hTokens": 0, "latencyMs": 3, "status": 200,
            "outcome": "ok", "costNanos": 1500, "costUsd": "0.0000015", "priceSource": "catalog/x"
        })
        .to_string()
    }

    #[test]
    fn stream_ids_parse_print_and_order_like_redis() {
        let a: StreamId = "1765000000000-2".parse().unwrap();
        assert_eq!(a.to_string(), "1765000000000-2");
        let b: StreamId = "1765000000000-10".parse().unwrap();
        assert!(a < b, "sequence numbers compare as numbers, not text");
        for bad in ["", "1", "1-", "-1", "a-1", "1-2-3"] {
            assert!(bad.parse::<StreamId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn decoding_keeps_every_entry_somewhere() {
        let id = |s: u64| StreamId { ms: 1, seq: s };
        let decoded = decode(vec![
            RawEntry {
                id: id(0),
                json: Some(record_json("r0", "2026-12-06T09:00:00Z")),
            },
            RawEntry {
                id: id(1),
                json: Some("{not json".into()),
            },
            RawEntry { id: id(2), json: None },
        ]);
        assert_eq!(decoded.valid.len(), 1);
        assert_eq!(decoded.valid[0].record.request_id, "r0");
        assert_eq!(decoded.invalid.len(), 1);
        assert_eq!(decoded.invalid[0].json, "{not json");
        assert!(!decoded.invalid[0].reason.is_empty());
        assert_eq!(decoded.vanished, vec![id(2)]);
    }
}
