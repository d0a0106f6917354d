//! Budget leases at run time (`--budget-leases on`, issue #19): admission against this
//! replica's leases in memory, the store asked only for a call's shortfall; refills off the
//! request path; the periodic upkeep that keeps leases alive and sized; their return at
//! shutdown. The arithmetic is [`tally_store::lease`]'s; this module only carries its asks to
//! the store and the answers back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use tally_config::money::Nanos;
use tally_store::lease::{Book, Claim, LeaseAsk, LeaseOutcome, LeaseRequestParts, Leased, Sizing};
use tally_store::{ReserveOutcome, ReserveRequest, Settlement, StoreError};
use tokio::sync::watch;

use crate::policy::Plan;

use super::call::Call;
use super::hold::Hold;
use super::shared::Shared;

/// Tells apart the holders of services run in one process (tests run several).
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// This replica's leases.
pub struct Leases {
    /// Unique per process: its lease ids in Redis are `lease|<holder>|<counter>`.
    holder: String,
    /// How long a lease outlives its holder's last word (a SIGKILLed replica's headroom comes
    /// back after this).
    ttl: Duration,
    book: Mutex<Book>,
}

/// A call admitted against leases, until it settles.
pub struct Ticket {
    shared: Arc<Shared>,
    keys: Vec<String>,
    amount: Nanos,
    settled: bool,
}

impl Leases {
    pub fn new(ttl: Duration) -> Leases {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "tally-extproc".into());
        Leases {
            holder: format!(
                "{host}-{}-{}-{}",
                std::process::id(),
                Timestamp::now().as_millisecond(),
                SEQUENCE.fetch_add(1, Ordering::Relaxed)
            ),
            ttl,
            book: Mutex::new(Book::new(Sizing::default())),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // The book's updates are single statements over plain numbers: a panic elsewhere
        // leaves it consistent.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `parts`; applies a grant to the book as [`Book::upkept`] if `upkeep`, else as
    /// [`Book::granted`].
    async fn send(
        &self,
        shared: &Shared,
        parts: &LeaseRequestParts,
        tentative: bool,
        upkeep: bool,
    ) -> Result<LeaseOutcome, StoreError> {
        let now = Timestamp::now().as_millisecond();
        let request = parts.clone().request(&self.holder, now, self.ttl, tentative);
        let outcome = shared.store.lease(&request).await;
        if let Ok(LeaseOutcome::Granted(grants)) = &outcome {
            let mut book = self.book();
            if upkeep {
                book.upkept(&parts.asks, grants);
            } else {
                book.granted(&parts.asks, grants);
            }
        }
        outcome
    }
}

/// The counters of `plan` a lease must cover; `None` when the plan has a `Warn` budget
/// (over-limit calls pass and are flagged: the per-call reservation decides that).
fn leased(plan: &Plan) -> Option<Vec<Leased>> {
    let mut out = Vec::new();
    for b in &plan.budgets {
        match (b.limit, b.enforce) {
            (Some(limit), true) => out.push(Leased {
                key: b.key.clone(),
                limit,
            }),
            (Some(_), false) => return None,
            (None, _) => {}
        }
    }
    Some(out)
}

/// What holds a call's worst case until it settles: a per-call reservation (its refresh
/// task) or a claim on this replica's leases. Dropping it stops the refreshes or frees the claim.
#[derive(Default)]
pub enum Held {
    #[default]
    Nothing,
    Reservation(Hold),
    Lease(Ticket),
}

/// Reserves `r` against this replica's leases when they apply to the call's plan, else per
/// call; what holds it goes to `held`.
pub async fn reserve(
    shared: &Arc<Shared>,
    call: Option<&Call>,
    r: &ReserveRequest,
    held: &mut Held,
) -> Result<ReserveOutcome, StoreError> {
    if let Some(plan) = call.and_then(|c| c.plan.as_ref())
        && let Some((outcome, ticket)) = admit(shared, plan, r).await
    {
        *held = ticket.map_or(Held::Nothing, Held::Lease);
        return outcome;
    }
    let outcome = shared.store.reserve(r).await;
    *held = Hold::after(&outcome, shared, r).map_or(Held::Nothing, Held::Reservation);
    outcome
}

/// Settles `s`, against the leases the call claimed if it did; each counter's used after it,
/// as [`Shared::settle_or_spool`] gives them.
pub async fn settle(shared: &Shared, held: Held, s: &Settlement) -> Option<Vec<Nanos>> {
    let Held::Lease(ticket) = held else {
        // A reservation's refresh stops before it is settled.
        drop(held);
        return shared.settle_or_spool(s).await;
    };
    let mut used = shared.settle_leased_or_spool(s, ticket.holder()).await;
    let owner = ticket.shared.clone();
    let keys = ticket.settled(s.cost);
    if let Some(used) = used.as_mut() {
        without_idle(&owner, &s.counters, used);
    }
    give_back(&owner, &keys);
    used
}

/// A call settled for `cost` leaves this replica's lease book ahead of its settlement reaching
/// Redis (write-behind): its cost leaves the lease in Redis when the settlement is applied, and
/// a return of idle headroom meanwhile is computed without it, so Redis never holds less than
/// the book. Returns the lease holder to settle against, `None` for a call that held a per-call
/// reservation (whose refresh stops) or nothing.
pub fn leave_book(held: Held, cost: Nanos) -> Option<String> {
    let Held::Lease(ticket) = held else { return None };
    let holder = ticket.holder().to_string();
    let owner = ticket.shared.clone();
    let keys = ticket.settled(cost);
    give_back(&owner, &keys);
    Some(holder)
}

/// `used` (a settlement's counters' spent + reserved, `counters` order) less this replica's
/// idle lease headroom, which without leases would not be held: so
/// `x-tally-budget-remaining-usd` reads as it would without leases.
pub fn without_idle(shared: &Shared, counters: &[String], used: &mut [Nanos]) {
    let Some(leases) = shared.leases.as_ref() else { return };
    let book = leases.book();
    for (u, key) in used.iter_mut().zip(counters) {
        *u = u.saturating_sub(book.idle(key));
    }
}

/// Returns, in the background, the headroom a settlement left idle on leases whose budget
/// is near its limit (see [`Book::give_back`]).
fn give_back(shared: &Arc<Shared>, keys: &[String]) {
    let Some(leases) = shared.leases.as_ref() else { return };
    let Some(parts) = leases.book().give_back(keys.iter().map(String::as_str)) else {
        return;
    };
    in_background(
        shared,
        parts,
        "returning idle lease headroom failed; upkeep returns it",
        |_, _| {},
    );
}

/// Sends `parts` off the request path; `done` updates the book once it is answered or failed.
fn in_background(
    shared: &Arc<Shared>,
    parts: LeaseRequestParts,
    failed: &'static str,
    done: fn(&mut Book, &[LeaseAsk]),
) {
    let shared = shared.clone();
    tokio::spawn(async move {
        let Some(leases) = shared.leases.as_ref() else { return };
        if let Err(e) = leases.send(&shared, &parts, false, false).await {
            tracing::debug!(error = %e, team = %parts.team, "{failed}");
        }
        done(&mut leases.book(), &parts.asks);
    });
}

/// Admits `r` against this replica's leases: `None` when leases are off or the plan is not
/// leased (the caller reserves per call). The answer reads as a reservation's would.
async fn admit(
    shared: &Arc<Shared>,
    plan: &Plan,
    r: &ReserveRequest,
) -> Option<(Result<ReserveOutcome, StoreError>, Option<Ticket>)> {
    let leases = shared.leases.as_ref()?;
    let charges = leased(plan)?;
    let held = Ok(ReserveOutcome::Reserved {
        team_used: Nanos::ZERO,
        over: vec![],
    });
    if charges.is_empty() {
        return Some((held, None));
    }
    let team_counter = plan.budgets.first().map(|b| b.key.clone()).unwrap_or_default();
    let claim = leases.book().claim(&r.team, &team_counter, &charges, r.amount);
    if let Claim::Short(asks) = claim {
        let parts = LeaseRequestParts {
            team: r.team.clone(),
            team_counter,
            asks,
        };
        match leases.send(shared, &parts, r.tentative, false).await {
            Ok(LeaseOutcome::Granted(_)) => {}
            Ok(LeaseOutcome::Refused { index, remaining }) => {
                leases.book().withdraw(&charges, r.amount);
                return Some((Ok(refused(plan, leases, &charges[index], remaining)), None));
            }
            Err(e) => {
                leases.book().withdraw(&charges, r.amount);
                return Some((Err(e), None));
            }
        }
    }
    refill(shared, &charges);
    let ticket = Ticket {
        shared: shared.clone(),
        keys: charges.into_iter().map(|c| c.key).collect(),
        amount: r.amount,
        settled: false,
    };
    Some((held, Some(ticket)))
}

/// The refusal as a per-call reservation would have given it: what remains counts this
/// replica's own idle lease (it would not hold it without leases).
fn refused(plan: &Plan, leases: &Leases, charge: &Leased, remaining: Nanos) -> ReserveOutcome {
    let label = plan
        .budgets
        .iter()
        .find(|b| b.key == charge.key)
        .map(|b| b.label.clone())
        .unwrap_or_default();
    ReserveOutcome::Refused {
        label,
        limit: charge.limit,
        remaining: remaining.saturating_add(leases.book().idle(&charge.key)),
    }
}

/// Tops up the leases of `charges` running low, in the background.
fn refill(shared: &Arc<Shared>, charges: &[Leased]) {
    let Some(leases) = shared.leases.as_ref() else { return };
    let Some(parts) = leases.book().refill(charges) else {
        return;
    };
    in_background(
        shared,
        parts,
        "lease refill failed; the next call asks again",
        Book::refilled,
    );
}

impl Ticket {
    /// The call settled for `cost` against the leases. Returns the leases' keys.
    pub fn settled(mut self, cost: Nanos) -> Vec<String> {
        self.settled = true;
        let keys = std::mem::take(&mut self.keys);
        if let Some(leases) = self.shared.leases.as_ref() {
            leases.book().settle(keys.iter().map(String::as_str), self.amount, cost);
        }
        keys
    }

    /// The holder whose leases the settlement takes the cost from.
    pub fn holder(&self) -> &str {
        self.shared.leases.as_ref().map_or("", |l| l.holder())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(leases) = self.shared.leases.as_ref() {
            leases.book().release(self.keys.iter().map(String::as_str), self.amount);
        }
    }
}

/// Keeps the leases alive and sized, every third of their TTL, until `stop`.
pub async fn upkeep(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let Some(leases) = shared.leases.as_ref() else { return };
    let every = (leases.ttl / 3).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let rounds = leases.book().upkeep();
        for parts in rounds {
            if let Err(e) = leases.send(&shared, &parts, false, true).await {
                tracing::warn!(error = %e, team = %parts.team, "keeping budget leases alive failed; retried next round");
            }
        }
    }
}

/// Returns every lease (at shutdown, once no call is in flight).
pub async fn return_all(shared: &Shared) {
    let Some(leases) = shared.leases.as_ref() else { return };
    let all = leases.book().return_all();
    for parts in all {
        match leases.send(shared, &parts, false, true).await {
            Ok(_) => tracing::info!(team = %parts.team, "budget leases returned"),
            Err(e) => tracing::warn!(error = %e, team = %parts.team, "returning budget leases failed; they expire"),
        }
    }
}
