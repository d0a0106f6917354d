//! The exporter's side of the ledger streams in Redis: the consumer group [`GROUP`], reading what this consumer has pending or not yet seen,
//! acknowledging, and the lag and guard-drop figures the metrics show. Redis replies are
//! decoded here; what to do with the entries is decided elsewhere.

use std::collections::HashMap;

use redis::Value;
use tally_store::redis::Connection;

use crate::entry::{RawEntry, StreamId};
use crate::{Error, Result};

/// The consumer group every ledger stream is read through. The SETTLE script never trims an
/// entry some group has not acknowledged.
pub const GROUP: &str = "tally-export";

/// How far a team's export is behind: entries not yet acknowledged, and the age of the oldest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    pub records: u64,
    /// Milliseconds since the epoch of the oldest unacknowledged entry (its stream id).
    pub oldest_ms: Option<u64>,
}

/// One consumer of the ledger streams.
#[derive(Clone)]
pub struct Consumer {
    conn: Connection,
    name: String,
}

impl Consumer {
    pub fn new(conn: Connection, name: impl Into<String>) -> Self {
        Consumer {
            conn,
            name: name.into(),
        }
    }

    /// Every team with a ledger stream, configured or not ([`crate::discovery`]).
    pub async fn teams(&self) -> Result<Vec<String>> {
        crate::discovery::teams(&self.conn).await
    }

    /// Creates the group on `team`'s stream, from its first entry; an existing group is kept.
    pub async fn ensure_group(&self, team: &str) -> Result<()> {
        let created: redis::RedisResult<String> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(tally_config::keys::ledger(team))
            .arg(GROUP)
            .arg("0")
            .query_async(&mut self.conn.clone())
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Everything delivered to this consumer and not acknowledged, oldest first, read in pages
    /// of `page`: after a crash, exactly the entries of the files not yet acknowledged.
    pub async fn pending(&self, team: &str, page: usize) -> Result<Vec<RawEntry>> {
        let mut out: Vec<RawEntry> = Vec::new();
        loop {
            let after = out.last().map_or("0".to_string(), |e| e.id.to_string());
            let got = self.read(team, page, &after).await?;
            let done = got.len() < page;
            out.extend(got);
            if done {
                return Ok(out);
            }
        }
    }

    /// Up to `count` entries no consumer of the group has seen yet.
    pub async fn read_new(&self, team: &str, count: usize) -> Result<Vec<RawEntry>> {
        self.read(team, count, ">").await
    }

    async fn read(&self, team: &str, count: usize, id: &str) -> Result<Vec<RawEntry>> {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.name)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(tally_config::keys::ledger(team))
            .arg(id)
            .query_async(&mut self.conn.clone())
            .await?;
        parse_read(reply)
    }

    /// Acknowledges `ids` of `team`'s stream: their file is stored.
    pub async fn ack(&self, team: &str, ids: &[StreamId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(tally_config::keys::ledger(team)).arg(GROUP);
        for id in ids {
            cmd.arg(id.to_string());
        }
        let _: u64 = cmd.query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Entries of `team`'s stream not yet acknowledged by the group, and the oldest one's age.
    pub async fn lag(&self, team: &str) -> Result<Lag> {
        let key = tally_config::keys::ledger(team);
        let mut conn = self.conn.clone();
        let groups: Vec<HashMap<String, Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        let Some(g) = groups.iter().find(|g| text(g.get("name")).as_deref() == Some(GROUP)) else {
            return Ok(Lag::default());
        };
        let pending = int(g.get("pending"));
        let unread = int(g.get("lag"));
        let oldest = if pending > 0 {
            let summary: Vec<Value> = redis::cmd("XPENDING")
                .arg(&key)
                .arg(GROUP)
                .query_async(&mut conn)
                .await?;
            text(summary.get(1))
        } else if unread > 0 {
            let after = text(g.get("last-delivered-id")).unwrap_or_else(|| "0-0".into());
            let next: Value = redis::cmd("XRANGE")
                .arg(&key)
                .arg(format!("({after}"))
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn)
                .await?;
            parse_entries(next)?.first().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(Lag {
            records: pending + unread,
            oldest_ms: oldest.and_then(|id| id.parse::<StreamId>().ok()).map(|id| id.ms),
        })
    }

    /// How many of `team`'s entries the SETTLE script's length guard cut before export.
    pub async fn dropped(&self, team: &str) -> Result<u64> {
        let n: Option<u64> = redis::cmd("GET")
            .arg(tally_config::keys::ledger_dropped(team))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n.unwrap_or(0))
    }
}

/// An `XREADGROUP` reply for one stream: nil (nothing), or `[[key, entries]]` (RESP2) or
/// `{key: entries}` (RESP3).
fn parse_read(reply: Value) -> Result<Vec<RawEntry>> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(mut streams) => match streams.pop() {
            Some(Value::Array(mut pair)) if pair.len() == 2 => parse_entries(pair.pop().unwrap_or(Value::Nil)),
            None => Ok(Vec::new()),
            other => Err(Error::Protocol(format!("XREADGROUP stream {other:?}"))),
        },
        Value::Map(mut streams) => match streams.pop() {
            Some((_, entries)) => parse_entries(entries),
            None => Ok(Vec::new()),
        },
        other => Err(Error::Protocol(format!("XREADGROUP reply {other:?}"))),
    }
}

/// Stream entries `[[id, [field, value, …] | nil], …]`; a nil body is an entry trimmed
/// while pending.
fn parse_entries(v: Value) -> Result<Vec<RawEntry>> {
    let Value::Array(items) = v else {
        return match v {
            Value::Nil => Ok(Vec::new()),
            other => Err(Error::Protocol(format!("stream entries {other:?}"))),
        };
    };
    items.into_iter().map(parse_entry).collect()
}

fn parse_entry(v: Value) -> Result<RawEntry> {
    let Value::Array(mut parts) = v else {
        return Err(Error::Protocol(format!("stream entry {v:?}")));
    };
    let body = if parts.len() == 2 { parts.pop() } else { None };
    let id = text(parts.first())
        .ok_or_else(|| Error::Protocol("stream entry without an id".into()))?
        .parse::<StreamId>()
        .map_err(Error::Protocol)?;
    let json = match body {
        Some(Value::Array(fields)) => field(&fields, "record"),
        Some(Value::Map(fields)) => fields
            .iter()
            .find(|(k, _)| text(Some(k)).as_deref() == Some("record"))
            .and_then(|(_, v)| text(Some(v))),
        _ => None,
    };
    Ok(RawEntry { id, json })
}

fn field(flat: &[Value], name: &str) -> Option<String> {
    flat.chunks(2)
        .find(|kv| text(kv.first()).as_deref() == Some(name))
        .and_then(|kv| text(kv.get(1)))
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
        other => text(other).and_then(|s| s.parse().ok()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn read_replies_decode_in_both_protocols_and_keep_trimmed_entries() {
        let entries = Value::Array(vec![
            Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("record"), bulk("{}")])]),
            Value::Array(vec![bulk("1-1"), Value::Nil]),
        ]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("k"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk("k"), entries)]);
        for reply in [resp2, resp3] {
            let got = parse_read(reply).unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].json.as_deref(), Some("{}"));
            assert_eq!((got[1].id.to_string(), got[1].json.clone()), ("1-1".to_string(), None));
        }
        assert!(parse_read(Value::Nil).unwrap().is_empty());
        assert!(parse_read(Value::Int(3)).is_err());
    }
}
