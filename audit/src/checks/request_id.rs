//! A request id must name one call: the same on every retry of it, and on no
//! other call. Per-attempt ids make retries look like new calls (double
//! counting); a shared id merges unrelated calls.

use std::collections::BTreeMap;

use crate::field::Field;
use crate::fix::Fix;
use crate::observation::Observation;
use crate::report::Finding;

use super::clock;

/// How soon after a failed attempt another attempt with the same payload counts as its retry.
const RETRY_WINDOW_SECONDS: i64 = 60;

pub fn check(obs: &[Observation]) -> Vec<Finding> {
    [per_attempt(obs), shared(obs)].into_iter().flatten().collect()
}

fn id(o: &Observation) -> Option<String> {
    o.text(Field::RequestId)
}

fn seconds(o: &Observation) -> Option<i64> {
    o.call
        .time
        .as_deref()
        .and_then(clock::parse)
        .map(|s| s.at.as_millisecond() / 1000)
}

/// Attempts of one call (same retry key) that carry different ids.
fn per_attempt(obs: &[Observation]) -> Option<Finding> {
    let mut groups: BTreeMap<&str, Vec<&Observation>> = BTreeMap::new();
    for o in obs.iter().filter(|o| id(o).is_some()) {
        if let Some(k) = &o.call.retry_key {
            groups.entry(k.value.as_str()).or_default().push(o);
        }
    }
    let mut retried = 0;
    let mut example = None;
    for attempts in groups.values_mut().filter(|g| g.len() > 1) {
        attempts.sort_by_key(|o| (seconds(o), o.record));
        let pair = attempts
            .windows(2)
            .find(|w| is_retry(w[0], w[1]) && id(w[0]) != id(w[1]));
        if let Some(w) = pair {
            retried += 1;
            example.get_or_insert_with(|| describe_retry(w[0], w[1]));
        }
    }
    let example = example?;
    Some(Finding {
        fix: Fix::StableRequestId,
        text: format!("changes across retries: {retried} retried call(s) got a new id per attempt, e.g. {example}"),
    })
}

fn is_retry(first: &Observation, next: &Observation) -> bool {
    let certain = first.call.retry_key.as_ref().is_some_and(|k| k.certain);
    let soon = match (seconds(first), seconds(next)) {
        (Some(a), Some(b)) => (0..=RETRY_WINDOW_SECONDS).contains(&(b - a)),
        _ => false,
    };
    certain || (first.call.succeeded == Some(false) && soon)
}

fn describe_retry(a: &Observation, b: &Observation) -> String {
    let gap = match (seconds(a), seconds(b)) {
        (Some(x), Some(y)) => format!(", {} s later", y - x),
        _ => String::new(),
    };
    let why = a
        .call
        .failure
        .as_deref()
        .map(|f| format!("first attempt failed: {f}"))
        .unwrap_or_else(|| "same invocation".into());
    format!(
        "{} → {} (records {} and {}, same payload{gap}; {why})",
        id(a).unwrap_or_default(),
        id(b).unwrap_or_default(),
        a.record,
        b.record
    )
}

/// What tells two successful calls apart when they share an id.
fn signature(o: &Observation) -> (Option<String>, Option<String>, Option<u64>, Option<u64>) {
    (
        o.call.retry_key.as_ref().map(|k| k.value.clone()),
        o.text(Field::ModelId),
        o.count(Field::InputTokens),
        o.count(Field::OutputTokens),
    )
}

/// One id on several successful calls that are not the same call: only one
/// attempt of a call can succeed, so these are unrelated calls.
fn shared(obs: &[Observation]) -> Option<Finding> {
    let mut by_id: BTreeMap<String, Vec<&Observation>> = BTreeMap::new();
    for o in obs.iter().filter(|o| o.call.succeeded != Some(false)) {
        if let Some(i) = id(o) {
            by_id.entry(i).or_default().push(o);
        }
    }
    let mut shared = 0;
    let mut example = None;
    for (i, calls) in &by_id {
        let first = signature(calls[0]);
        if let Some(other) = calls.iter().find(|o| signature(o) != first) {
            shared += 1;
            example.get_or_insert_with(|| {
                let model = |o: &Observation| o.text(Field::ModelId).unwrap_or_else(|| "?".into());
                format!(
                    "{i} on {} calls (records {} and {}: {} and {})",
                    calls.len(),
                    calls[0].record,
                    other.record,
                    model(calls[0]),
                    model(other)
                )
            });
        }
    }
    let example = example?;
    Some(Finding {
        fix: Fix::UniqueRequestId,
        text: format!(
            "shared by unrelated calls: {shared} id(s) each name several different successful calls, e.g. {example}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::observation::{Found, RetryKey};

    fn call(record: usize, id: &str, key: &str, certain: bool, ok: bool, time: &str, model: &str) -> Observation {
        let mut o = Observation::new(record);
        o.set(Field::RequestId, Some(Found::new("request_id", json!(id))));
        o.set(Field::ModelId, Some(Found::new("model", json!(model))));
        o.call.retry_key = Some(RetryKey {
            value: key.into(),
            certain,
        });
        o.call.succeeded = Some(ok);
        o.call.failure = (!ok).then(|| "429".into());
        o.call.time = Some(time.into());
        o
    }

    #[test]
    fn a_failed_attempt_retried_soon_under_a_new_id_is_per_attempt() {
        let obs = [
            call(1, "a", "p", false, false, "2026-05-04T10:00:00Z", "m"),
            call(2, "b", "p", false, true, "2026-05-04T10:00:02Z", "m"),
        ];
        let f = check(&obs);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].fix, Fix::StableRequestId);
        assert!(f[0].text.contains("a → b"), "{}", f[0].text);
    }

    #[test]
    fn the_same_payload_again_later_or_after_success_is_a_new_call() {
        let obs = [
            call(1, "a", "p", false, true, "2026-05-04T10:00:00Z", "m"),
            call(2, "b", "p", false, true, "2026-05-04T10:00:02Z", "m"),
            call(3, "c", "q", false, false, "2026-05-04T10:00:00Z", "m"),
            call(4, "d", "q", false, true, "2026-05-04T10:05:00Z", "m"),
        ];
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn an_sdk_invocation_id_groups_attempts_for_certain() {
        let obs = [
            call(1, "x-1", "inv", true, true, "2026-05-04T10:00:00Z", "m"),
            call(2, "x-2", "inv", true, true, "2026-05-04T11:00:00Z", "m"),
        ];
        assert_eq!(check(&obs)[0].fix, Fix::StableRequestId);
    }

    #[test]
    fn one_id_on_unrelated_successful_calls_is_shared() {
        let obs = [
            call(1, "req-7", "p1", false, true, "2026-05-04T10:00:00Z", "m1"),
            call(2, "req-7", "p2", false, true, "2026-05-04T10:00:01Z", "m2"),
        ];
        let f = check(&obs);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].fix, Fix::UniqueRequestId);
        assert!(f[0].text.contains("req-7 on 2 calls"), "{}", f[0].text);
    }
}
