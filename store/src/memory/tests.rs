//! The memory store's own tests: reservations, expiry and refresh, the bounds on
//! what it remembers, and its ledger pages.

use super::*;

fn ledger_settlement(team: &str, charge_id: &str) -> Settlement {
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

mod reserve {
    use std::time::Duration;

    use super::super::*;
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

mod ledger {
    use super::super::*;
    use super::ledger_settlement as settlement;

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

mod bounds {
    use std::time::Duration;

    use super::super::*;
    use crate::{Budget, SETTLED_TTL};

    const HOUR_MS: i64 = 3_600_000;

    fn hold(charge_id: &str, amount: i64, now_ms: i64, ttl_ms: u64) -> ReserveRequest {
        ReserveRequest {
            team: "t".into(),
            charge_id: charge_id.into(),
            amount: Nanos(amount),
            budgets: vec![Budget {
                key: "team".into(),
                label: "team".into(),
                limit: Some(Nanos(100)),
                enforce: true,
            }],
            now_ms,
            ttl: Duration::from_millis(ttl_ms),
            tentative: false,
        }
    }

    fn settlement(charge_id: &str) -> Settlement {
        let mut s = super::ledger_settlement("t", charge_id);
        s.counters = vec!["team".into()];
        s
    }

    #[test]
    fn reservations_expire_in_order_and_only_the_due_ones() {
        let store = MemoryStore::new();
        for (id, at) in [("a", 0), ("b", 10), ("c", 20)] {
            assert!(matches!(
                store.reserve(&hold(id, 10, at, 100)),
                ReserveOutcome::Reserved { .. }
            ));
        }
        // At 105 only "a" (due at 100) is released; "b" and "c" still hold 20.
        assert!(matches!(
            store.reserve(&hold("d", 1, 105, 100)),
            ReserveOutcome::Reserved { .. }
        ));
        assert_eq!(store.counters("team").reserved, Nanos(21));
        assert_eq!(store.sizes().0, 3);
        // A settled hold leaves nothing due later: at 1000 everything is gone.
        store.settle(&settlement("b"), 10);
        assert!(matches!(
            store.reserve(&hold("e", 1, 1000, 100)),
            ReserveOutcome::Reserved { .. }
        ));
        assert_eq!(store.counters("team").reserved, Nanos(1));
    }

    #[test]
    fn a_refreshed_hold_outlives_its_first_expiry_and_a_gone_one_is_not_revived() {
        let store = MemoryStore::new();
        assert!(matches!(
            store.reserve(&hold("live", 90, 0, 100)),
            ReserveOutcome::Reserved { .. }
        ));
        assert!(store.refresh("live", 60, 160));
        // Past the first expiry (100) the hold still counts: 90 + 20 > 100 is refused.
        assert!(matches!(
            store.reserve(&hold("other", 20, 130, 100)),
            ReserveOutcome::Refused { .. }
        ));
        // An earlier expiry never shortens it.
        assert!(store.refresh("live", 140, 120));
        assert!(matches!(
            store.reserve(&hold("other2", 20, 150, 100)),
            ReserveOutcome::Refused { .. }
        ));
        // Past the refreshed expiry it is released, and refreshing it holds nothing anew.
        assert!(!store.refresh("live", 170, 270));
        assert_eq!(store.counters("team").reserved, Nanos(0));
        assert_eq!(store.sizes().0, 0);
        // Nor does refreshing a settled hold.
        assert!(matches!(
            store.reserve(&hold("done", 5, 200, 100)),
            ReserveOutcome::Reserved { .. }
        ));
        store.settle(&settlement("done"), 10);
        assert!(!store.refresh("done", 210, 400));
        assert_eq!(store.counters("team").reserved, Nanos(0));
    }

    #[test]
    fn settled_ids_are_forgotten_after_the_settled_ttl() {
        let store = MemoryStore::new();
        let t0 = 1_000 * HOUR_MS;
        store.settle_at(&settlement("x"), 10, t0);
        assert_eq!(
            store.settle_at(&settlement("x"), 10, t0 + 1),
            SettleOutcome::AlreadySettled
        );
        let later = t0 + SETTLED_TTL.as_millis() as i64 + 1;
        assert!(matches!(
            store.reserve(&hold("y", 1, later, 100)),
            ReserveOutcome::Reserved { .. }
        ));
        assert_eq!(store.sizes().1, 0, "the settled id outlived SETTLED_TTL");
    }

    #[test]
    fn at_most_settled_max_ids_are_remembered() {
        let store = MemoryStore::new();
        let now = 1_000 * HOUR_MS;
        for i in 0..SETTLED_MAX + 10 {
            store.settle_at(&settlement(&format!("c{i}")), 1, now);
        }
        assert_eq!(store.sizes().1, SETTLED_MAX);
        // The newest are still remembered; the oldest were let go.
        let newest = format!("c{}", SETTLED_MAX + 9);
        assert_eq!(
            store.settle_at(&settlement(&newest), 1, now),
            SettleOutcome::AlreadySettled
        );
        assert!(matches!(
            store.settle_at(&settlement("c0"), 1, now),
            SettleOutcome::Settled { .. }
        ));
    }
}
