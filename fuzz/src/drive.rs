//! Runs a [`Script`] against a fresh world and checks, as Envoy would see it:
//!
//! - a call released upstream while its team's Block budget applies (a priced
//!   inference call) holds a reservation — the team's `reserved` counter rose
//!   during one of its own request phases — or was refused;
//! - once every exchange has ended, each team's (and the Block team's workflow
//!   and tenant) counters hold exactly what its ledger records say: `spent` is
//!   the sum of their costs, `requests` their number (refusals aside), and
//!   nothing is left reserved;
//! - every record's `costUsd` is its `costNanos`; nothing panics.
//!
//! Envoy is modelled as the chart configures it (`request_body_mode: NONE`,
//! `allow_mode_override: true`): a request goes upstream at the first reply to a
//! request phase that neither refuses it nor asks for its body BUFFERED. A
//! response phase sent while the body is still awaited is what an Envoy that
//! ignores mode overrides does; the exchange then settles without a reservation
//! by design, so that call is exempt from the reservation check (not the
//! accounting checks). So is a fail-open stream failure, charged its worst
//! case without a reservation by design.

use std::cell::RefCell;
use std::sync::Arc;

use tally_config::keys::Scope;
use tally_config::ledger::{LedgerRecord, Outcome};
use tally_config::money::Nanos;
use tally_extproc::exchange::facts::CallFacts;
use tally_extproc::exchange::{BodyMode, Exchange, FailMode, Options, Reply, RequestBody, Shared};

use crate::script::{Action, MAX_STEPS, RequestHead, ResponseBodySpec, SLOTS, Script};
use crate::world::{self, BLOCK_TEAM};

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime"),
    );
}

/// Where the request is, as Envoy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Envoy {
    /// Headers sent, no answer that releases the request yet.
    Held,
    /// Asked for the body BUFFERED: the request waits for it.
    AwaitingBody,
    Upstream,
    Refused,
}

struct Slot {
    ex: Exchange,
    head: RequestHead,
    envoy: Envoy,
    /// A priced inference call of the Block team: it must hold a reservation upstream.
    must_reserve: bool,
    reserved: bool,
    exempt: bool,
    /// Event-stream bytes cut off the last response body, sent with the next.
    carry: Vec<u8>,
}

pub fn run(script: &Script) {
    RUNTIME.with(|rt| rt.borrow().block_on(run_script(script)));
}

async fn run_script(script: &Script) {
    let opts = Options {
        fail_mode: if script.fail_closed {
            FailMode::Closed
        } else {
            FailMode::Open
        },
        request_body: if script.when_needed {
            RequestBody::WhenNeeded
        } else {
            RequestBody::Always
        },
        ..Options::default()
    };
    let micros = |n: u16| Nanos(i64::from(n) * 1_000);
    let config = world::config(micros(script.block_limit_micros), micros(script.warn_limit_micros));
    let shared = world::shared(config, opts);
    let mut slots: [Option<Slot>; SLOTS] = Default::default();
    for step in script.steps.iter().take(MAX_STEPS) {
        let slot = &mut slots[usize::from(step.slot) % SLOTS];
        if let Action::RequestHeaders(head) = &step.action {
            end(slot).await;
            *slot = Some(new_slot(&shared, head));
        }
        step_slot(&shared, slot, &step.action).await;
    }
    for slot in &mut slots {
        end(slot).await;
    }
    check_accounts(&shared);
}

fn new_slot(shared: &Arc<Shared>, head: &RequestHead) -> Slot {
    let policy = shared.policy.load();
    let facts = CallFacts::from_headers(&head.headers(), &shared.opts, &policy, vec![]);
    let must_reserve = facts.is_some_and(|f| {
        f.who.team == BLOCK_TEAM && f.operation.is_inference() && policy.price(&f.model_id, &f.region).is_some()
    });
    Slot {
        ex: Exchange::new(shared.clone()),
        head: head.clone(),
        envoy: Envoy::Held,
        must_reserve,
        reserved: false,
        exempt: false,
        carry: vec![],
    }
}

/// Envoy's stream ends: the exchange settles what it owes.
async fn end(slot: &mut Option<Slot>) {
    if let Some(mut s) = slot.take() {
        s.ex.abandon().await;
    }
}

fn block_reserved(shared: &Shared) -> Nanos {
    world::counters(shared, BLOCK_TEAM, &Scope::Team).reserved
}

async fn step_slot(shared: &Shared, slot: &mut Option<Slot>, action: &Action) {
    let Some(s) = slot.as_mut() else { return };
    let before = block_reserved(shared);
    let released = match action {
        Action::RequestHeaders(head) => {
            let reply = s.ex.request_headers(&head.headers(), head.end_of_stream, vec![]).await;
            Some((reply, !head.end_of_stream))
        }
        Action::RequestBody { body, end_of_stream } => {
            let reply = s.ex.request_body(&body.bytes(), *end_of_stream).await;
            (s.envoy == Envoy::AwaitingBody).then_some((reply, false))
        }
        Action::RequestTrailers => {
            let reply = s.ex.request_trailers().await;
            (s.envoy == Envoy::AwaitingBody).then_some((reply, false))
        }
        Action::Abandon | Action::StreamFailed => {
            if matches!(action, Action::StreamFailed) {
                s.exempt |= s.ex.stream_failed("fuzz: unreadable message").await.is_none();
            }
            return end(slot).await;
        }
        response => {
            respond(s, response).await;
            None
        }
    };
    s.reserved |= block_reserved(shared) > before;
    if let Some((reply, body_follows)) = released {
        s.envoy = next(&reply, body_follows);
        assert!(
            s.envoy != Envoy::Upstream || !s.must_reserve || s.reserved || s.exempt,
            "a priced call of the Block team went upstream without a reservation\nrequest: {:?}\nreply: {reply:?}",
            s.head
        );
    }
}

/// Where a request phase's reply leaves the request.
fn next(reply: &Reply, body_follows: bool) -> Envoy {
    match reply {
        Reply::Respond { .. } => Envoy::Refused,
        Reply::Continue { mode: Some(m), .. } if body_follows && m.request_body == BodyMode::Buffered => {
            Envoy::AwaitingBody
        }
        Reply::Continue { .. } => Envoy::Upstream,
    }
}

/// A response phase; Envoy sends none after refusing the request itself.
async fn respond(s: &mut Slot, action: &Action) {
    match s.envoy {
        Envoy::Refused => return,
        Envoy::Held | Envoy::AwaitingBody => s.exempt = true,
        Envoy::Upstream => {}
    }
    match action {
        Action::ResponseHeaders(head) => {
            s.ex.response_headers(&head.headers(), head.end_of_stream).await;
        }
        Action::ResponseBody { body, end_of_stream } => {
            let mut bytes = std::mem::take(&mut s.carry);
            match body {
                ResponseBodySpec::Json(u) => bytes.extend_from_slice(u.render().as_bytes()),
                ResponseBodySpec::Raw(b) => bytes.extend_from_slice(b),
                ResponseBodySpec::Frames {
                    frames,
                    corruption,
                    cut,
                } => {
                    bytes.extend(crate::frames::stream(&frames[..frames.len().min(8)], *corruption));
                    if let Some(c) = cut.filter(|_| !end_of_stream) {
                        s.carry = bytes.split_off(usize::from(c) % (bytes.len() + 1));
                    }
                }
            }
            s.ex.response_body(&bytes, *end_of_stream).await;
        }
        _ => unreachable!("only response phases come here"),
    }
}

/// Counters equal the ledger once every exchange has ended.
fn check_accounts(shared: &Shared) {
    let records = world::ledger(shared);
    for r in &records {
        assert!(r.cost_nanos >= 0, "negative charge: {r:?}");
        assert_eq!(Nanos::parse_usd(&r.cost_usd).ok(), Some(Nanos(r.cost_nanos)), "{r:?}");
    }
    let scopes = [
        (BLOCK_TEAM, Scope::Team),
        (world::WARN_TEAM, Scope::Team),
        (world::FREE_TEAM, Scope::Team),
        (world::UNKNOWN_TEAM, Scope::Team),
        (BLOCK_TEAM, Scope::Workflow(world::LIMITED_WORKFLOW.into())),
        (BLOCK_TEAM, Scope::Tenant(world::LIMITED_TENANT.into())),
    ];
    for (team, scope) in scopes {
        let mine: Vec<&LedgerRecord> = records
            .iter()
            .filter(|r| r.team == team && in_scope(r, &scope))
            .collect();
        let spent = mine
            .iter()
            .fold(Nanos::ZERO, |a, r| a.saturating_add(Nanos(r.cost_nanos)));
        let counted = mine
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Blocked | Outcome::Denied))
            .count() as u64;
        let c = world::counters(shared, team, &scope);
        let what = format!("{team} {scope:?}");
        assert_eq!(c.spent, spent, "{what}: spent is not the ledger's sum\n{mine:#?}");
        assert_eq!(
            c.requests, counted,
            "{what}: requests are not the ledger's count\n{mine:#?}"
        );
        assert_eq!(
            c.reserved,
            Nanos::ZERO,
            "{what}: still reserved after every exchange ended"
        );
    }
}

fn in_scope(r: &LedgerRecord, scope: &Scope) -> bool {
    match scope {
        Scope::Team => true,
        Scope::Workflow(w) => r.workflow.as_deref() == Some(w),
        Scope::Tenant(t) => r.tenant.as_deref() == Some(t),
    }
}
