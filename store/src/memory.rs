//! The embedded store: the Redis semantics in one process, for local runs,
//! demos and single-replica installs. Spend is lost when the process exits.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::{Counters, LedgerEntry, ReserveOutcome, ReserveRequest, SettleOutcome, Settlement};
use tally_config::ledger::LedgerRecord;
use tally_config::money::Nanos;

#[derive(Default)]
struct State {
    counters: HashMap<String, Counters>,
    /// charge id → (expiry ms, amount, counter keys)
    reservations: HashMap<String, (i64, Nanos, Vec<String>)>,
    settled: HashMap<String, i64>,
    /// Records with their sequence number (1, 2, …; never reused, so a cursor stays valid).
    ledger: VecDeque<(u64, LedgerRecord)>,
    last_seq: u64,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl State {
    fn release(&mut self, charge_id: &str) {
        if let Some((_, amount, keys)) = self.reservations.remove(charge_id) {
            for k in keys {
                let c = self.counters.entry(k).or_default();
                c.reserved = c.reserved.saturating_sub(amount);
            }
        }
    }

    fn purge_expired(&mut self, now_ms: i64) {
        let expired: Vec<String> = self
            .reservations
            .iter()
            .filter(|(_, (exp, _, _))| *exp <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.release(&id);
        }
        self.settled.retain(|_, exp| *exp > now_ms);
    }

    fn used(&self, key: &str) -> Nanos {
        self.counters
            .get(key)
            .map_or(Nanos::ZERO, |c| c.spent.saturating_add(c.reserved))
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave counters half-written
        // (each update is a single field), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn reserve(&self, r: &ReserveRequest) -> ReserveOutcome {
        let mut s = self.lock();
        s.purge_expired(r.now_ms);
        if s.reservations.contains_key(&r.charge_id) || s.settled.contains_key(&r.charge_id) {
            return ReserveOutcome::Duplicate;
        }
        let mut over = Vec::new();
        for b in &r.budgets {
            let Some(limit) = b.limit else { continue };
            let used = s.used(&b.key);
            if used.saturating_add(r.amount) > limit {
                if b.enforce || r.tentative {
                    if let Some(first) = r.budgets.first().filter(|_| !r.tentative) {
                        s.counters.entry(first.key.clone()).or_default().blocked += 1;
                    }
                    return ReserveOutcome::Refused {
                        label: b.label.clone(),
                        limit,
                        remaining: limit.saturating_sub(used),
                    };
                }
                over.push(b.label.clone());
            }
        }
        let keys: Vec<String> = r.budgets.iter().map(|b| b.key.clone()).collect();
        for k in &keys {
            let c = s.counters.entry(k.clone()).or_default();
            c.reserved = c.reserved.saturating_add(r.amount);
        }
        let expiry = r.now_ms + r.ttl.as_millis() as i64;
        s.reservations.insert(r.charge_id.clone(), (expiry, r.amount, keys));
        let team_used = r.budgets.first().map_or(Nanos::ZERO, |b| s.used(&b.key));
        ReserveOutcome::Reserved { team_used, over }
    }

    pub fn settle(&self, st: &Settlement, ledger_max_len: u64) -> SettleOutcome {
        let mut s = self.lock();
        if s.settled.contains_key(&st.charge_id) {
            return SettleOutcome::AlreadySettled;
        }
        s.release(&st.charge_id);
        for k in &st.counters {
            let c = s.counters.entry(k.clone()).or_default();
            c.spent = c.spent.saturating_add(st.cost);
            if st.count_request {
                c.requests += 1;
            }
        }
        let team_used = st.counters.first().map_or(Nanos::ZERO, |k| s.used(k));
        let mut record = st.record.clone();
        record.team_budget_remaining_nanos = st.team_limit.map(|l| l.saturating_sub(team_used).0);
        s.last_seq += 1;
        let seq = s.last_seq;
        s.ledger.push_back((seq, record));
        while s.ledger.len() as u64 > ledger_max_len.max(1) {
            s.ledger.pop_front();
        }
        s.settled
            .insert(st.charge_id.clone(), now_ms() + crate::SETTLED_TTL.as_millis() as i64);
        SettleOutcome::Settled { team_used }
    }

    pub fn ledger(&self, limit: usize) -> Vec<LedgerRecord> {
        let s = self.lock();
        let skip = s.ledger.len().saturating_sub(limit);
        s.ledger.iter().skip(skip).map(|(_, r)| r.clone()).collect()
    }

    /// Up to `limit` of `team`'s records after sequence number `after`, oldest first.
    pub fn ledger_page(&self, team: &str, after: u64, limit: usize) -> Vec<LedgerEntry> {
        let s = self.lock();
        let start = s.ledger.partition_point(|(seq, _)| *seq <= after);
        s.ledger
            .range(start..)
            .filter(|(_, r)| r.team == team)
            .take(limit)
            .map(|(seq, r)| LedgerEntry {
                id: seq.to_string(),
                json: serde_json::to_string(r).expect("a ledger record serializes"),
            })
            .collect()
    }

    pub fn counters(&self, key: &str) -> Counters {
        self.lock().counters.get(key).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Budget;

    fn request(charge_id: &str, amount: i64, tentative: bool) -> ReserveRequest {
        let budget = |key: &str, limit: i64, enforce: bool| Budget {
            key: key.into(),
            label: key.into(),
            limit: Some(Nanos(limit)),
            enforce,
        };
        ReserveRequest {
            team: "t".into(),
            charge_id: charge_id.into(),
            amount: Nanos(amount),
            budgets: vec![budget("team", 100, true), budget("workflow", 10, false)],
            now_ms: 0,
            ttl: Duration::from_secs(60),
            tentative,
        }
    }

    #[test]
    fn a_tentative_reservation_fits_every_limit_or_holds_and_counts_nothing() {
        let store = MemoryStore::new();
        // Over the Warn budget: a tentative try is refused, holds nothing and counts no refusal.
        assert!(matches!(
            store.reserve(&request("a", 20, true)),
            ReserveOutcome::Refused { .. }
        ));
        assert_eq!(store.counters("team"), Counters::default());
        // The same amount, not tentative, is held and flagged over the Warn budget.
        assert_eq!(
            store.reserve(&request("a", 20, false)),
            ReserveOutcome::Reserved {
                team_used: Nanos(20),
                over: vec!["workflow".into()],
            }
        );
        // Under every limit a tentative reservation is held like any other.
        let s2 = MemoryStore::new();
        assert!(matches!(
            s2.reserve(&request("b", 5, true)),
            ReserveOutcome::Reserved { .. }
        ));
        assert_eq!(s2.counters("team").reserved, Nanos(5));
        // An enforcing refusal that is not tentative is counted.
        assert!(matches!(
            s2.reserve(&request("c", 200, false)),
            ReserveOutcome::Refused { .. }
        ));
        assert_eq!(s2.counters("team").blocked, 1);
    }
}

#[cfg(test)]
mod ledger_tests {
    use super::*;

    fn settlement(team: &str, charge_id: &str) -> Settlement {
        let record = serde_json::json!({
            "requestId": charge_id, "chargeId": charge_id, "time": "2026-12-06T00:00:00Z",
            "operation": "Converse", "modelId": "m", "model": "m", "region": "us-east-1", "team": team,
            "inputTokens": 1, "outputTokens": 1, "cacheReadTokens": 0, "cacheWrite5mTokens": 0,
            "cacheWrite1hTokens": 0, "latencyMs": 1, "status": 200, "outcome": "ok",
            "costNanos": 1, "costUsd": "0.000000001", "priceSource": "test",
        });
        Settlement {
            team: team.into(),
            charge_id: charge_id.into(),
            cost: Nanos(1),
            counters: vec![format!("{team}-counter")],
            count_request: true,
            team_limit: None,
            record: serde_json::from_value(record).expect("a ledger record"),
        }
    }

    fn ids(page: &[LedgerEntry]) -> Vec<&str> {
        page.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn pages_follow_one_team_after_a_cursor() {
        let store = MemoryStore::new();
        for (i, team) in ["a", "b", "a", "a", "b"].iter().enumerate() {
            store.settle(&settlement(team, &format!("c{i}")), 100);
        }
        let first = store.ledger_page("a", 0, 2);
        assert_eq!(ids(&first), ["1", "3"]);
        assert!(first[0].json.contains("\"chargeId\":\"c0\""), "{}", first[0].json);
        assert_eq!(ids(&store.ledger_page("a", 3, 2)), ["4"]);
        assert!(store.ledger_page("a", 4, 2).is_empty());
        assert_eq!(ids(&store.ledger_page("b", 0, 10)), ["2", "5"]);
        // Trimmed records are gone, and the sequence numbers of the rest stay as they were.
        store.settle(&settlement("a", "c5"), 2);
        assert_eq!(ids(&store.ledger_page("a", 0, 10)), ["6"]);
        assert_eq!(ids(&store.ledger_page("b", 0, 10)), ["5"]);
    }
}
