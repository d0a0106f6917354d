//! SETTLE on the wire: one call's settlement, or many in one pipeline (write-behind
//! settlement, issue #19). A pipeline is the same per-call scripts back to back — each
//! settlement still applied whole or not at all and once per charge id — sent in one write
//! and answered in one read, so Redis and the ext_proc wake once per batch instead of once
//! per call.

use std::collections::BTreeMap;

use redis::{Cmd, ErrorKind, RedisResult, Script, ServerErrorKind};

use super::lease::SETTLE_LEASED;
use super::{Connection, RedisStore, parse_nanos, protocol, settlement_minute};
use crate::{Batched, Result, SettleOutcome, Settlement, StoreError};
use tally_config::keys;

impl RedisStore {
    pub async fn settle(&self, s: &Settlement, ledger_max_len: u64) -> Result<SettleOutcome> {
        self.settle_one(&Batched::new(s, None), ledger_max_len).await
    }

    /// SETTLE for a call admitted against `holder`'s leases: the same record, counters and
    /// idempotence, the cost taken out of the leases instead of a reservation.
    pub async fn settle_leased(&self, s: &Settlement, ledger_max_len: u64, holder: &str) -> Result<SettleOutcome> {
        self.settle_one(&Batched::new(s, Some(holder)), ledger_max_len).await
    }

    /// One settlement alone: a pipeline of one, so it shares the batch's NOSCRIPT handling.
    async fn settle_one(&self, b: &Batched<'_>, ledger_max_len: u64) -> Result<SettleOutcome> {
        let mut replies = self.pipeline(std::slice::from_ref(b), &[0], ledger_max_len).await;
        replies
            .pop()
            .unwrap_or_else(|| Err(StoreError::Protocol("no reply for a settlement".into())))
    }

    /// Settles every item of `batch`, one result per item in order. One pipeline on a single
    /// node; on a cluster one per team (a team's keys share one slot), sent concurrently. A
    /// lost connection fails every item of its pipeline: some may have been applied, which a
    /// replay from the spool then finds settled.
    pub async fn settle_batch(&self, batch: &[Batched<'_>], ledger_max_len: u64) -> Vec<Result<SettleOutcome>> {
        let groups: Vec<Vec<usize>> = match &self.conn {
            Connection::Single(_) => vec![(0..batch.len()).collect()],
            Connection::Cluster(_) => {
                let mut by_team: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                for (i, b) in batch.iter().enumerate() {
                    by_team.entry(b.settlement.team.as_str()).or_default().push(i);
                }
                by_team.into_values().collect()
            }
        };
        let sent = groups.iter().map(|g| self.pipeline(batch, g, ledger_max_len));
        let answered = futures::future::join_all(sent).await;
        let mut out: Vec<Option<Result<SettleOutcome>>> = batch.iter().map(|_| None).collect();
        for (group, replies) in groups.iter().zip(answered) {
            for (&i, reply) in group.iter().zip(replies) {
                out[i] = Some(reply);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Protocol("no reply for a batched settlement".into()))))
            .collect()
    }

    /// The items `which` of `batch` in one pipeline. A Redis that lost its scripts (a restart,
    /// `SCRIPT FLUSH`) answers NOSCRIPT: they are loaded and the items resent, which is safe —
    /// a NOSCRIPT item did not run.
    async fn pipeline(
        &self,
        batch: &[Batched<'_>],
        which: &[usize],
        ledger_max_len: u64,
    ) -> Vec<Result<SettleOutcome>> {
        let mut replies = self.send(batch, which, ledger_max_len).await;
        // Positions in `which` (and `replies`) of the items that met NOSCRIPT.
        let lost: Vec<usize> = (0..replies.len())
            .filter(|&p| matches!(&replies[p], Err(StoreError::Redis(e)) if is_noscript(e)))
            .collect();
        if lost.is_empty() {
            return replies;
        }
        for script in [&self.settle, &*SETTLE_LEASED] {
            if let Err(e) = script.load_async(&mut self.conn.clone()).await {
                return which.iter().map(|_| Err(StoreError::Redis(e.clone()))).collect();
            }
        }
        let again: Vec<usize> = lost.iter().map(|&p| which[p]).collect();
        let resent = self.send(batch, &again, ledger_max_len).await;
        for (p, reply) in lost.into_iter().zip(resent) {
            replies[p] = reply;
        }
        replies
    }

    async fn send(&self, batch: &[Batched<'_>], which: &[usize], ledger_max_len: u64) -> Vec<Result<SettleOutcome>> {
        let mut pipe = redis::pipe();
        let mut built = Vec::with_capacity(which.len());
        for &i in which {
            match self.settle_cmd(&batch[i], ledger_max_len) {
                Ok(cmd) => {
                    pipe.add_command(cmd);
                    built.push(Ok(()));
                }
                Err(e) => built.push(Err(e)),
            }
        }
        pipe.ignore_errors();
        let answered: RedisResult<Vec<RedisResult<Vec<String>>>> = pipe.query_async(&mut self.conn.clone()).await;
        let mut answered = match answered {
            Ok(a) => a.into_iter(),
            Err(e) => return which.iter().map(|_| Err(StoreError::Redis(e.clone()))).collect(),
        };
        built
            .into_iter()
            .map(|b| {
                b?;
                let reply = answered
                    .next()
                    .ok_or_else(|| StoreError::Protocol("pipeline reply too short".into()))?;
                settle_reply(reply?)
            })
            .collect()
    }

    fn settle_script(&self, b: &Batched<'_>) -> &Script {
        if b.lease_holder.is_some() {
            &SETTLE_LEASED
        } else {
            &self.settle
        }
    }

    /// SETTLE for `b` as one `EVALSHA` (ARGV 10: the lease holder, for the leased variant).
    fn settle_cmd(&self, b: &Batched<'_>, ledger_max_len: u64) -> Result<Cmd> {
        let s = b.settlement;
        let record = serde_json::to_string(&s.record).map_err(|e| StoreError::Protocol(e.to_string()))?;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.settle_script(b).get_hash())
            .arg(4 + s.counters.len())
            .arg(keys::reservations(&s.team))
            .arg(keys::reservation_data(&s.team))
            .arg(keys::settled(&s.team, settlement_minute(s)))
            .arg(keys::ledger(&s.team))
            .arg(&s.counters)
            .arg(&s.charge_id)
            .arg(s.cost.0)
            .arg(if s.count_request { "1" } else { "0" })
            .arg(self.settled_ttl.as_secs().max(1))
            .arg(ledger_max_len)
            .arg(record)
            .arg(s.team_limit.map_or(-1, |l| l.0))
            .arg(s.model_spend_field().unwrap_or_default())
            .arg(if s.is_denial() { "1" } else { "0" });
        if let Some(holder) = b.lease_holder {
            cmd.arg(holder);
        }
        Ok(cmd)
    }
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

/// `ok` and each counter's spent + reserved after it, or `dup`.
fn settle_reply(reply: Vec<String>) -> Result<SettleOutcome> {
    match reply.first().map(String::as_str) {
        Some("ok") => Ok(SettleOutcome::Settled {
            used: reply[1..].iter().map(|v| parse_nanos(Some(v))).collect::<Result<_>>()?,
        }),
        Some("dup") => Ok(SettleOutcome::AlreadySettled),
        _ => Err(protocol(&reply)),
    }
}
