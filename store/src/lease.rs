//! Budget leases, decided: what one ext_proc replica holds on each budget counter, how
//! calls are admitted against it in memory, and how large a lease should be. Pure — the
//! Redis script is `redis::lease`, the refills and returns are the ext_proc's I/O.
//!
//! A lease is a reservation in Redis like a call's (in the team's `resv`/`resv:data`,
//! under the id [`lease_id`], with an expiry its holder keeps moving), held on one counter.
//! Redis's `reserved` therefore covers every lease, and a replica admits a call only if the
//! worst cases in flight on each counter fit in what it holds there: the sum over replicas
//! never passes a limit, so there is no overspend across replicas by construction.
//!
//! The invariant this book keeps: **what Redis holds for a lease is never less than
//! [`Book`] believes it holds** (`granted`). Grants add the same amount to both; a
//! settlement takes its cost from the book at once and from Redis when the settlement
//! lands (later if it was spooled); a return (a negative `want`) is taken from the book
//! when it is asked for, before Redis gives anything back, so no claim can be admitted
//! against headroom on its way out; a lease found gone (it expired) resets the book to
//! what was granted anew. Any drift is towards holding more in Redis than the book uses,
//! never less.

use std::collections::HashMap;
use std::time::Duration;

use tally_config::money::Nanos;

#[cfg(test)]
mod tests;

/// The reservation id of `holder`'s lease on the counter `key`.
pub fn lease_id(holder: &str, key: &str) -> String {
    format!("lease|{holder}|{key}")
}

/// One counter of a [`LeaseRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseAsk {
    /// The counter (`tally:{team}:c:<period>:<scope>`).
    pub key: String,
    /// Its enforcing limit (`None`: unlimited).
    pub limit: Option<Nanos>,
    /// What must be granted or the whole request is refused (a call's shortfall).
    pub need: Nanos,
    /// What to add to the lease if the limit allows (at least `need`); negative: return up
    /// to that much of it; zero: only move its expiry.
    pub want: Nanos,
}

/// Grow, shrink or keep alive a holder's leases on some counters of one team, atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    pub team: String,
    pub holder: String,
    /// The team counter, whose `blocked` a refusal bumps.
    pub team_counter: String,
    pub asks: Vec<LeaseAsk>,
    pub now_ms: i64,
    /// How long the leases live unless their holder asks again.
    pub ttl: Duration,
    /// A refusal of a tentative request (a bound from the headers alone) is not counted.
    pub tentative: bool,
}

/// What one counter's lease became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// Added to the lease (negative: returned).
    pub delta: Nanos,
    /// The counter's spent + reserved after it (every replica's leases included).
    pub used: Nanos,
    /// There was no lease before this request: one this holder had has expired.
    pub fresh: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Each ask's result, in order.
    Granted(Vec<Granted>),
    /// The `need` of ask `index` does not fit under its limit; nothing changed.
    Refused { index: usize, remaining: Nanos },
}

/// How large leases are. The lease's idle headroom aims at a slice of what remains of the
/// budget (`1/divisor` of it: with k slices per replica, `divisor` = k × replicas), capped
/// at `cap_calls` recent worst cases; below `floor_calls` worst cases it aims at nothing, so
/// near the limit a replica leases each call's shortfall only — today's per-call reservation
/// — and returns the rest, stranding no headroom another replica needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    pub divisor: i64,
    pub cap_calls: i64,
    pub floor_calls: i64,
}

impl Default for Sizing {
    fn default() -> Self {
        Sizing {
            divisor: 16,
            cap_calls: 64,
            floor_calls: 2,
        }
    }
}

impl Sizing {
    /// The idle headroom to aim at on a counter with `limit`, `used` (spent + reserved as last
    /// seen, `held` of it this replica's lease), and `typical` a recent call's worst case.
    pub fn target(&self, limit: Option<Nanos>, used: Nanos, held: Nanos, typical: Nanos) -> Nanos {
        let cap = typical.0.saturating_mul(self.cap_calls);
        let slice = match limit {
            None => cap,
            Some(l) => (l.0.saturating_sub(used.0).saturating_add(held.0).max(0) / self.divisor.max(1)).min(cap),
        };
        if slice < typical.0.saturating_mul(self.floor_calls) {
            Nanos::ZERO
        } else {
            Nanos(slice)
        }
    }
}

/// A counter a call charges under an enforcing limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub key: String,
    pub limit: Nanos,
}

/// What [`Book::claim`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Every lease had room: admitted without asking Redis.
    Admitted,
    /// Claimed on credit: these asks (one per counter, in order) must be granted, then
    /// [`Book::granted`] — or, refused or failed, [`Book::withdraw`].
    Short(Vec<LeaseAsk>),
}

/// One counter's lease, as this replica sees it.
#[derive(Debug, Clone, Default)]
struct Slot {
    team: String,
    team_counter: String,
    limit: Nanos,
    /// What Redis holds for it, at least (see the module's invariant).
    granted: Nanos,
    /// Worst cases of the calls admitted against it and not yet settled.
    inflight: Nanos,
    /// The counter's spent + reserved as last seen.
    used: Nanos,
    /// A recent call's worst case: the largest, decaying by an eighth per call.
    typical: Nanos,
    /// A refill is on its way; no second one is started.
    refilling: bool,
    /// Replies applied so far: an upkeep reply saying the lease is gone resets the book only
    /// if no other reply came between its request and it (replies arrive in any order).
    epoch: u64,
    /// The epoch when the last upkeep request was made.
    upkeep_epoch: u64,
    /// The upkeep round of the last claim: a lease no call used for [`STALE_ROUNDS`] (its
    /// team went quiet, or its period ended) returns its idle headroom.
    claimed_round: u64,
}

/// Upkeep rounds without a call after which a lease gives back its idle headroom.
pub const STALE_ROUNDS: u64 = 3;

impl Slot {
    fn idle(&self) -> Nanos {
        Nanos(self.granted.0 - self.inflight.0)
    }

    fn target(&self, sizing: &Sizing) -> Nanos {
        sizing.target(Some(self.limit), self.used, self.granted, self.typical)
    }

    /// The upkeep ask: refill below half the target, return above twice it (all of the idle
    /// headroom when `stale`), else keep alive.
    fn upkeep(&self, key: &str, sizing: &Sizing, stale: bool) -> LeaseAsk {
        let (idle, target) = (self.idle(), self.target(sizing));
        let want = if stale {
            -idle.0.max(0)
        } else if idle.0 < target.0 / 2 {
            target.0 - idle.0
        } else if idle.0 > target.0.saturating_mul(2) || (target.is_zero() && idle.0 > 0) {
            -(idle.0 - target.0)
        } else {
            0
        };
        LeaseAsk {
            key: key.to_string(),
            limit: Some(self.limit),
            need: Nanos::ZERO,
            want: Nanos(want),
        }
    }
}

/// Every lease this replica holds, and the calls admitted against them.
#[derive(Debug, Default)]
pub struct Book {
    slots: HashMap<String, Slot>,
    sizing: Sizing,
    /// Upkeep rounds so far.
    round: u64,
}

impl Book {
    pub fn new(sizing: Sizing) -> Book {
        Book {
            slots: HashMap::new(),
            sizing,
            round: 0,
        }
    }

    /// Claims `amount` on every counter of `charges` (all of `team`). Room on every lease:
    /// admitted. Otherwise the amount is claimed on credit (so concurrent claims ask only for
    /// their own shortfall) and the asks that would cover it are returned.
    pub fn claim(&mut self, team: &str, team_counter: &str, charges: &[Leased], amount: Nanos) -> Claim {
        let sizing = self.sizing;
        let mut short = false;
        let mut asks = Vec::with_capacity(charges.len());
        for c in charges {
            let slot = self.slots.entry(c.key.clone()).or_insert_with(|| Slot {
                team: team.to_string(),
                team_counter: team_counter.to_string(),
                ..Slot::default()
            });
            slot.limit = c.limit;
            slot.claimed_round = self.round;
            slot.typical = Nanos(amount.0.max(slot.typical.0 - slot.typical.0 / 8));
            let need = Nanos((amount.0 - slot.idle().0.max(0)).max(0));
            short |= need.0 > 0;
            asks.push(LeaseAsk {
                key: c.key.clone(),
                limit: Some(c.limit),
                need,
                want: Nanos(need.0.saturating_add(slot.target(&sizing).0)),
            });
        }
        for c in charges {
            let slot = self.slots.get_mut(&c.key).expect("claimed above");
            slot.inflight = slot.inflight.saturating_add(amount);
        }
        if short { Claim::Short(asks) } else { Claim::Admitted }
    }

    /// Applies what Redis granted for `asks` (from a claim or a refill).
    pub fn granted(&mut self, asks: &[LeaseAsk], grants: &[Granted]) {
        self.apply(asks, grants, false);
    }

    /// Applies the reply to [`Book::upkeep`]'s asks. A lease it found gone expired in Redis
    /// (its holder was cut off for a TTL): the book drops what it believed held — unless
    /// another reply was applied meanwhile, which may be the grant that created it anew.
    pub fn upkept(&mut self, asks: &[LeaseAsk], grants: &[Granted]) {
        self.apply(asks, grants, true);
    }

    fn apply(&mut self, asks: &[LeaseAsk], grants: &[Granted], upkeep: bool) {
        for (ask, g) in asks.iter().zip(grants) {
            let Some(slot) = self.slots.get_mut(&ask.key) else {
                continue;
            };
            if upkeep && g.fresh && slot.epoch == slot.upkeep_epoch {
                slot.granted = Nanos::ZERO;
            }
            // A return was taken from the book when it was asked for ([`Book::debit`]);
            // Redis giving back less than asked only leaves it holding more.
            let delta = if ask.want.0 < 0 { 0 } else { g.delta.0 };
            slot.granted = Nanos(slot.granted.0.saturating_add(delta).max(0));
            slot.used = g.used;
            slot.epoch += 1;
        }
    }

    /// Undoes a claim whose shortfall was refused (or could not be asked for).
    pub fn withdraw(&mut self, charges: &[Leased], amount: Nanos) {
        self.release(charges.iter().map(|c| c.key.as_str()), amount);
    }

    /// A call admitted for `amount` settled for `cost`: its worst case leaves the in-flight
    /// sum and its cost leaves the lease (Redis moves it from `reserved` to `spent`).
    pub fn settle<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>, amount: Nanos, cost: Nanos) {
        for key in keys {
            if let Some(slot) = self.slots.get_mut(key) {
                slot.inflight = Nanos((slot.inflight.0 - amount.0).max(0));
                slot.granted = Nanos((slot.granted.0 - cost.0.max(0)).max(0));
            }
        }
    }

    /// A claim ends without a settlement reaching the lease: only its worst case is freed.
    pub fn release<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>, amount: Nanos) {
        for key in keys {
            if let Some(slot) = self.slots.get_mut(key) {
                slot.inflight = Nanos((slot.inflight.0 - amount.0).max(0));
            }
        }
    }

    /// Refills for the leases of `charges` whose idle headroom fell below half their target,
    /// if none is on its way; marks them refilling until [`Book::refilled`].
    pub fn refill(&mut self, charges: &[Leased]) -> Option<LeaseRequestParts> {
        let sizing = self.sizing;
        let mut asks = Vec::new();
        let mut team = None;
        for c in charges {
            let Some(slot) = self.slots.get_mut(&c.key) else {
                continue;
            };
            let target = slot.target(&sizing);
            if slot.refilling || target.is_zero() || slot.idle().0 >= target.0 / 2 {
                continue;
            }
            slot.refilling = true;
            team.get_or_insert_with(|| (slot.team.clone(), slot.team_counter.clone()));
            asks.push(LeaseAsk {
                key: c.key.clone(),
                limit: Some(slot.limit),
                need: Nanos::ZERO,
                want: Nanos(target.0 - slot.idle().0),
            });
        }
        let (team, team_counter) = team?;
        Some(LeaseRequestParts {
            team,
            team_counter,
            asks,
        })
    }

    /// A refill of `asks` finished (granted or not): another may start.
    pub fn refilled(&mut self, asks: &[LeaseAsk]) {
        for a in asks {
            if let Some(slot) = self.slots.get_mut(&a.key) {
                slot.refilling = false;
            }
        }
    }

    /// The periodic asks, one request per team: each lease refilled, shrunk towards its
    /// target or kept alive. Leases holding nothing with nothing in flight are forgotten.
    pub fn upkeep(&mut self) -> Vec<LeaseRequestParts> {
        self.slots
            .retain(|_, s| s.granted.0 > 0 || s.inflight.0 > 0 || s.refilling);
        self.round += 1;
        for slot in self.slots.values_mut() {
            slot.upkeep_epoch = slot.epoch;
        }
        let (sizing, round) = (self.sizing, self.round);
        let parts = self.by_team(|key, slot| slot.upkeep(key, &sizing, round - slot.claimed_round > STALE_ROUNDS));
        self.debit(&parts);
        parts
    }

    /// After a settlement on `keys`: the idle headroom of those leases whose target is
    /// nothing (their budget is near its limit, so each call leases only its own worst
    /// case) goes back now rather than at the next upkeep — there, another replica's call
    /// may need it. `None` when there is nothing to give back.
    pub fn give_back<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>) -> Option<LeaseRequestParts> {
        let sizing = self.sizing;
        let mut parts: Option<LeaseRequestParts> = None;
        for key in keys {
            let Some(slot) = self.slots.get(key) else { continue };
            let idle = slot.idle();
            if idle.0 <= 0 || !slot.target(&sizing).is_zero() {
                continue;
            }
            parts
                .get_or_insert_with(|| LeaseRequestParts {
                    team: slot.team.clone(),
                    team_counter: slot.team_counter.clone(),
                    asks: vec![],
                })
                .asks
                .push(LeaseAsk {
                    key: key.to_string(),
                    limit: Some(slot.limit),
                    need: Nanos::ZERO,
                    want: Nanos(-idle.0),
                });
        }
        if let Some(p) = &parts {
            self.debit(std::slice::from_ref(p));
        }
        parts
    }

    /// Takes every return among `parts` (negative `want`) from the book now.
    fn debit(&mut self, parts: &[LeaseRequestParts]) {
        for ask in parts.iter().flat_map(|p| &p.asks).filter(|a| a.want.0 < 0) {
            if let Some(slot) = self.slots.get_mut(&ask.key) {
                slot.granted = Nanos(slot.granted.0.saturating_add(ask.want.0).max(0));
            }
        }
    }

    /// Everything held, to return (at shutdown, with nothing in flight). Each ask returns all
    /// Redis holds for the lease, which may be more than the book believes.
    pub fn return_all(&mut self) -> Vec<LeaseRequestParts> {
        let all = self.by_team(|key, slot| LeaseAsk {
            key: key.to_string(),
            limit: Some(slot.limit),
            need: Nanos::ZERO,
            want: Nanos(-(i64::MAX / 4)),
        });
        self.slots.clear();
        all
    }

    /// The idle headroom of `key`'s lease (granted, less what is in flight).
    pub fn idle(&self, key: &str) -> Nanos {
        self.slots.get(key).map_or(Nanos::ZERO, |s| s.idle().max(Nanos::ZERO))
    }

    fn by_team(&self, ask: impl Fn(&str, &Slot) -> LeaseAsk) -> Vec<LeaseRequestParts> {
        let mut teams: HashMap<&str, LeaseRequestParts> = HashMap::new();
        for (key, slot) in &self.slots {
            teams
                .entry(slot.team.as_str())
                .or_insert_with(|| LeaseRequestParts {
                    team: slot.team.clone(),
                    team_counter: slot.team_counter.clone(),
                    asks: vec![],
                })
                .asks
                .push(ask(key, slot));
        }
        teams.into_values().collect()
    }
}

/// A [`LeaseRequest`] but for the holder, time and TTL, which the caller adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequestParts {
    pub team: String,
    pub team_counter: String,
    pub asks: Vec<LeaseAsk>,
}

impl LeaseRequestParts {
    pub fn request(self, holder: &str, now_ms: i64, ttl: Duration, tentative: bool) -> LeaseRequest {
        LeaseRequest {
            team: self.team,
            holder: holder.to_string(),
            team_counter: self.team_counter,
            asks: self.asks,
            now_ms,
            ttl,
            tentative,
        }
    }
}
