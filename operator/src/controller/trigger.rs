//! When the leader reconciles: watch events reduced to [`Signal`]s, and the [`Trigger`] that
//! turns them and the `--status-interval` tick into passes. Clock and streams only; what a pass
//! does is elsewhere, so the timing is unit-tested with tokio's paused clock.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};
use kube::Resource;
use kube::runtime::watcher;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// How long after a change the pass runs: the further changes of a burst (`kubectl apply` of
/// several objects) join the same pass.
const SETTLE: Duration = Duration::from_millis(100);

/// A watch event reduced to what matters for triggering: which stream, and whether it changed
/// something the reconcilers look at.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Signal {
    /// The stream with this index has listed every object once.
    Synced(usize),
    Changed,
    Quiet,
}

/// Turns a reflected watch stream into trigger signals. Status-only updates (same generation as
/// last seen) are quiet, so the operator's own status patches do not trigger another pass.
pub(super) fn signals<K>(
    index: usize,
    stream: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> BoxStream<'static, Signal>
where
    K: Resource + Send + 'static,
{
    let mut seen: HashMap<String, Option<i64>> = HashMap::new();
    stream
        .map_ok(move |event| match event {
            watcher::Event::Init => Signal::Quiet,
            watcher::Event::InitApply(o) => {
                seen.insert(o.meta().uid.clone().unwrap_or_default(), o.meta().generation);
                Signal::Quiet
            }
            watcher::Event::InitDone => Signal::Synced(index),
            watcher::Event::Apply(o) => {
                let uid = o.meta().uid.clone().unwrap_or_default();
                match seen.insert(uid, o.meta().generation) {
                    Some(g) if g == o.meta().generation => Signal::Quiet,
                    _ => Signal::Changed,
                }
            }
            watcher::Event::Delete(o) => {
                seen.remove(&o.meta().uid.clone().unwrap_or_default());
                Signal::Changed
            }
        })
        .filter_map(|r| async move {
            match r {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::warn!(%error, "watch failed; retrying with backoff");
                    None
                }
            }
        })
        .boxed()
}

/// Decides when a pass is due: [`SETTLE`] after the first change since the last pass, and on
/// every tick of the interval, but only once every stream has listed its objects (a pass over
/// a half-listed cluster would unpublish the teams not listed yet).
pub(super) struct Trigger {
    signals: SelectAll<BoxStream<'static, Signal>>,
    streams: usize,
    synced: BTreeSet<usize>,
    next_pass: Option<Instant>,
    tick: Interval,
}

impl Trigger {
    /// `streams[i]` must send `Synced(i)`; the first tick is due at once.
    pub fn new(streams: Vec<BoxStream<'static, Signal>>, interval: Duration) -> Self {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Trigger {
            streams: streams.len(),
            signals: futures::stream::select_all(streams),
            synced: BTreeSet::new(),
            next_pass: None,
            tick,
        }
    }

    /// Waits until a pass is due; `false` once every stream has ended.
    pub async fn due(&mut self) -> bool {
        loop {
            let due = self.next_pass;
            tokio::select! {
                signal = self.signals.next() => match signal {
                    None => return false,
                    Some(Signal::Synced(i)) => { self.synced.insert(i); self.change(); }
                    Some(Signal::Changed) => self.change(),
                    Some(Signal::Quiet) => {}
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(far)), if due.is_some() => {
                    if self.all_synced() {
                        self.next_pass = None;
                        return true;
                    }
                    self.next_pass = Some(Instant::now() + SETTLE);
                }
                // The config pass runs too: it retries a failed write and repairs a
                // hand-edited ConfigMap, at the cost of one GET when nothing changed.
                _ = self.tick.tick() => if self.all_synced() { return true },
            }
        }
    }

    /// Waits for the next change (and schedules its pass as [`Trigger::due`] would); `false`
    /// once every stream has ended. Lets a long status pass give way to a config change.
    pub async fn changed(&mut self) -> bool {
        loop {
            match self.signals.next().await {
                None => return false,
                Some(Signal::Synced(i)) => {
                    self.synced.insert(i);
                    self.change();
                    return true;
                }
                Some(Signal::Changed) => {
                    self.change();
                    return true;
                }
                Some(Signal::Quiet) => {}
            }
        }
    }

    /// A change schedules a pass unless one is already scheduled (which then covers it).
    fn change(&mut self) {
        self.next_pass.get_or_insert_with(|| Instant::now() + SETTLE);
    }

    fn all_synced(&self) -> bool {
        self.synced.len() == self.streams
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc::{self, UnboundedSender};
    use k8s_openapi::api::core::v1::ConfigMap;

    #[tokio::test]
    async fn only_spec_changes_and_deletes_trigger_a_pass() {
        let object = |uid: &str, generation: i64| {
            let mut cm = ConfigMap::default();
            cm.metadata.uid = Some(uid.into());
            cm.metadata.generation = Some(generation);
            cm
        };
        let events = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(object("a", 1))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(object("a", 1))), // status-only update (ours)
            Ok(watcher::Event::Apply(object("a", 2))), // spec edit
            Ok(watcher::Event::Apply(object("b", 1))), // new object
            Ok(watcher::Event::Delete(object("a", 2))),
        ];
        let signals: Vec<Signal> = signals(7, futures::stream::iter(events)).collect().await;
        use Signal::*;
        assert_eq!(signals, [Quiet, Quiet, Synced(7), Quiet, Changed, Changed, Changed]);
    }

    const INTERVAL: Duration = Duration::from_secs(10);

    fn trigger_over(streams: usize) -> (Trigger, Vec<UnboundedSender<Signal>>) {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..streams).map(|_| mpsc::unbounded()).unzip();
        let trigger = Trigger::new(receivers.into_iter().map(StreamExt::boxed).collect(), INTERVAL);
        (trigger, senders)
    }

    /// Whether a pass comes within `within`.
    async fn passes_within(trigger: &mut Trigger, within: Duration) -> bool {
        tokio::time::timeout(within, trigger.due()).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_runs_until_every_stream_has_listed() {
        let start = Instant::now();
        let (mut trigger, senders) = trigger_over(2);
        senders[0].unbounded_send(Signal::Synced(0)).unwrap();
        senders[0].unbounded_send(Signal::Changed).unwrap();
        assert!(
            !passes_within(&mut trigger, INTERVAL * 2 + SETTLE / 2).await,
            "neither changes nor ticks run a pass over a half-listed cluster"
        );
        senders[1].unbounded_send(Signal::Synced(1)).unwrap();
        let listed = Instant::now();
        assert!(trigger.due().await);
        assert!(listed.elapsed() <= SETTLE, "the pending pass runs once listed");
        assert!(Instant::now() < start + INTERVAL * 3, "before the next tick");
    }

    /// A trigger over one stream, started at `start` and past its initial listing: the next
    /// pass waits for a change or the tick at `start + INTERVAL`.
    async fn listed_trigger() -> (Trigger, UnboundedSender<Signal>, Instant) {
        let start = Instant::now();
        let (mut trigger, mut senders) = trigger_over(1);
        senders[0].unbounded_send(Signal::Synced(0)).unwrap();
        // The immediate first tick and the listing may make one pass or two (select! order).
        while Instant::now() < start + SETTLE {
            assert!(trigger.due().await);
        }
        assert_eq!(start.elapsed(), SETTLE);
        (trigger, senders.remove(0), start)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_makes_one_pass_after_the_first() {
        let (mut trigger, sender, _) = listed_trigger().await;
        let first = Instant::now();
        sender.unbounded_send(Signal::Changed).unwrap();
        assert!(!passes_within(&mut trigger, SETTLE / 2).await);
        sender.unbounded_send(Signal::Changed).unwrap();
        assert!(trigger.due().await);
        assert_eq!(first.elapsed(), SETTLE, "a later change does not postpone the pass");
        assert!(!passes_within(&mut trigger, SETTLE * 5).await, "one pass for the burst");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_seen_during_a_status_pass_still_gets_its_pass() {
        let (mut trigger, sender, _) = listed_trigger().await;
        sender.unbounded_send(Signal::Quiet).unwrap();
        sender.unbounded_send(Signal::Changed).unwrap();
        let seen = Instant::now();
        assert!(trigger.changed().await, "the change, past the quiet signal");
        assert!(trigger.due().await);
        assert_eq!(seen.elapsed(), SETTLE, "its pass comes as if due() had seen it");
        drop(sender);
        assert!(!trigger.changed().await, "no streams, no changes");
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_signals_wait_for_the_tick_and_ended_streams_stop() {
        let (mut trigger, sender, start) = listed_trigger().await;
        sender.unbounded_send(Signal::Quiet).unwrap();
        assert!(trigger.due().await);
        assert_eq!(start.elapsed(), INTERVAL, "a status-only update waits for the tick");
        assert!(trigger.due().await);
        assert_eq!(start.elapsed(), INTERVAL * 2);
        drop(sender);
        assert!(!trigger.due().await, "no streams, no passes");
    }
}
