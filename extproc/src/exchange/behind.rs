//! Write-behind settlement (`--settle-behind-ms N`, issue #19). A finished call's settlement
//! is queued instead of awaited: the response goes back without waiting on Redis, and one
//! task sends what the queue holds in pipelined batches — at most `N` ms after a call
//! finished, sooner once [`MAX_BATCH`] are waiting. Each settlement is still the per-call
//! SETTLE script (applied whole, once per charge id); one that fails goes to the spool as an
//! inline one would. Until its batch is applied, the call's worst case stays held in Redis
//! (its reservation or lease), so budgets stay strict; the live counters lag by at most the
//! window plus one round trip. At shutdown the queue is flushed after the last exchange and
//! before the spool's last replay. What a SIGKILL loses: the queued settlements, at most `N`
//! ms of finished calls — beside the calls in flight, which it loses inline too.
//!
//! `x-tally-budget-remaining-usd` cannot read the settlement's own answer: it is estimated
//! from the last counters this replica saw for the budget (a batch's answers), see
//! [`WriteBehind::estimate`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tally_config::money::Nanos;
use tally_store::{Batched, Settlement};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::lease::{self, Held};
use super::shared::Shared;

/// The most settlements one batch sends. Batches go one at a time, so this also bounds how
/// fast a store that only times out (200 ms a batch) drains the queue into the spool: ~5,000
/// settlements a second, above what one ext_proc admits.
pub const MAX_BATCH: usize = 1024;
/// Counters remembered for the remaining-budget estimate before the memory starts over.
const MAX_SEEN: usize = 100_000;

/// A finished call waiting to be settled; `holder` if it was admitted against leases.
struct Queued {
    settlement: Box<Settlement>,
    holder: Option<String>,
}

/// What a batch's answer said of one counter: spent + reserved (less this replica's idle
/// leases), and when.
#[derive(Debug, Clone, Copy)]
struct Seen {
    used: Nanos,
    at: Instant,
}

/// The queue and its sender task.
pub struct WriteBehind {
    window: Duration,
    /// `None` once closed for shutdown.
    tx: Mutex<Option<mpsc::UnboundedSender<Queued>>>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Queued>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    seen: Mutex<HashMap<String, Seen>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single statement: a panic elsewhere leaves them whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WriteBehind {
    pub fn new(window: Duration) -> WriteBehind {
        let (tx, rx) = mpsc::unbounded_channel();
        WriteBehind {
            window,
            tx: Mutex::new(Some(tx)),
            rx: Mutex::new(Some(rx)),
            task: Mutex::new(None),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Queues `q`; gives it back if the queue is closed (the caller settles it inline).
    fn enqueue(&self, shared: &Shared, q: Queued) -> Result<(), Queued> {
        let tx = lock(&self.tx);
        let Some(tx) = tx.as_ref() else { return Err(q) };
        shared.metrics.settle_queue_depth.inc();
        tx.send(q).map_err(|e| {
            shared.metrics.settle_queue_depth.dec();
            e.0
        })
    }

    /// Each of `counters`' spent + reserved once it is applied, estimated from the last
    /// answer this replica saw for it: that answer plus this call's `cost`, less its worst case
    /// when the answer came after the call started (it then counted the call's hold). Between
    /// answers other replicas' calls are not seen; `None` until every counter was seen once.
    pub fn estimate(
        &self,
        counters: &[String],
        cost: Nanos,
        started: Instant,
        worst_case: Nanos,
    ) -> Option<Vec<Nanos>> {
        let seen = lock(&self.seen);
        counters
            .iter()
            .map(|k| {
                let seen = seen.get(k)?;
                let held = if seen.at >= started { worst_case } else { Nanos::ZERO };
                Some(seen.used.saturating_sub(held).saturating_add(cost))
            })
            .collect()
    }

    fn saw(&self, counters: &[String], used: &[Nanos]) {
        let mut seen = lock(&self.seen);
        if seen.len() >= MAX_SEEN {
            seen.clear();
        }
        let at = Instant::now();
        for (k, &u) in counters.iter().zip(used) {
            seen.insert(k.clone(), Seen { used: u, at });
        }
    }
}

/// Each of `s`'s counters' used after it: settled now and the store's answer, or with
/// write-behind on, estimated ([`WriteBehind::estimate`]) — the caller queues `s` with
/// [`queue_or_settle`] once the response is built.
pub async fn settle_or_estimate(
    shared: &Arc<Shared>,
    hold: &mut Held,
    s: &Settlement,
    started: Instant,
    worst_case: Nanos,
) -> Option<Vec<Nanos>> {
    match shared.write_behind.as_ref() {
        Some(wb) => wb.estimate(&s.counters, s.cost, started, worst_case),
        None => lease::settle(shared, std::mem::take(hold), s).await,
    }
}

/// Queues `s` for write-behind settlement, or settles it now when that is off (or its queue
/// is closed). A leased call leaves this replica's lease book at once ([`lease::leave_book`]).
pub async fn queue_or_settle(shared: &Arc<Shared>, held: Held, s: Settlement) {
    let q = Queued {
        holder: lease::leave_book(held, s.cost),
        settlement: Box::new(s),
    };
    let unqueued = match shared.write_behind.as_ref() {
        Some(wb) => wb.enqueue(shared, q),
        None => Err(q),
    };
    if let Err(Queued { settlement, holder }) = unqueued {
        match holder {
            Some(h) => shared.settle_leased_or_spool(&settlement, &h).await,
            None => shared.settle_or_spool(&settlement).await,
        };
    }
}

/// Starts the sender task of `shared`'s queue, if write-behind is on.
pub fn start(shared: &Arc<Shared>) {
    let Some(wb) = shared.write_behind.as_ref() else { return };
    let Some(rx) = lock(&wb.rx).take() else { return };
    *lock(&wb.task) = Some(tokio::spawn(send_batches(shared.clone(), rx)));
}

/// Closes the queue and waits until everything in it was sent (at shutdown, after the last
/// exchange finished).
pub async fn flush(shared: &Shared) {
    let Some(wb) = shared.write_behind.as_ref() else { return };
    lock(&wb.tx).take();
    let task = lock(&wb.task).take();
    if let Some(task) = task
        && let Err(e) = task.await
    {
        tracing::error!(error = %e, "the write-behind settlement task failed");
    }
}

async fn send_batches(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let window = shared.write_behind.as_ref().map_or(Duration::ZERO, |wb| wb.window);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let due = tokio::time::Instant::now() + window;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(due, rx.recv()).await {
                Ok(Some(q)) => batch.push(q),
                // Closed: send what is here, then the loop ends.
                Ok(None) | Err(_) => break,
            }
        }
        send(&shared, &batch).await;
        shared.metrics.settle_queue_depth.dec_by(batch.len() as i64);
        shared.metrics.settle_batches.inc();
        batch.clear();
    }
}

/// One batch to the store; each answer updates the remaining-budget estimates, each failure
/// goes to the spool.
async fn send(shared: &Shared, batch: &[Queued]) {
    let items: Vec<Batched<'_>> = batch
        .iter()
        .map(|q| Batched::new(&q.settlement, q.holder.as_deref()))
        .collect();
    let answers = shared.store.settle_batch(&items, shared.opts.ledger_max_len).await;
    for (q, answer) in batch.iter().zip(answers) {
        if let Some(mut used) = shared.settled_or_spool(&q.settlement, answer) {
            if q.holder.is_some() {
                lease::without_idle(shared, &q.settlement.counters, &mut used);
            }
            if let Some(wb) = shared.write_behind.as_ref() {
                wb.saw(&q.settlement.counters, &used);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_adds_the_cost_and_takes_out_a_hold_the_answer_counted() {
        let wb = WriteBehind::new(Duration::from_millis(5));
        let counters = ["team".to_string(), "wf".to_string()];
        let estimate = |started| wb.estimate(&counters, Nanos(30), started, Nanos(100));
        let before = Instant::now();
        assert_eq!(estimate(before), None, "nothing seen yet");
        wb.saw(&counters[..1], &[Nanos(1_000)]);
        assert_eq!(estimate(before), None, "a counter never seen");
        wb.saw(&counters, &[Nanos(1_000), Nanos(400)]);
        // Seen after the call started: the answer held its worst case (100), which the cost (30) replaces.
        assert_eq!(estimate(before), Some(vec![Nanos(930), Nanos(330)]));
        // Seen before the call started: the answer did not count it.
        let after = Instant::now() + Duration::from_secs(1);
        assert_eq!(estimate(after), Some(vec![Nanos(1_030), Nanos(430)]));
    }
}
