//! Status conditions shaped like `metav1.Condition`, shared by both kinds, and
//! the helper that updates them the way Kubernetes tools expect.
//!
//! The type is defined here rather than borrowed from `k8s-openapi` so that its
//! schema is documented for `kubectl explain` and its time is a plain RFC 3339
//! string that the reconciler can fill without a clock type.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types Tally sets.
pub mod types {
    /// The object compiled into the running config (`False` names the field at fault).
    pub const READY: &str = "Ready";
    /// The team (or one of its workflows or tenants) has spent its limit for this period.
    pub const BUDGET_EXCEEDED: &str = "BudgetExceeded";
    /// Spend crossed one of `spec.budget.alertThresholds` in this period.
    pub const THRESHOLD_CROSSED: &str = "ThresholdCrossed";
}

/// Whether a condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One aspect of an object's current state, in the shape of `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Kind of condition: `Ready`, `BudgetExceeded` or `ThresholdCrossed`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// One CamelCase word saying why the condition last changed (e.g. `Compiled`, `InvalidSpec`, `LimitReached`).
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// Human-readable details, e.g. the field that is wrong and why.
    #[serde(default)]
    #[schemars(length(max = 32768))]
    pub message: String,
    /// When `status` last changed (RFC 3339, e.g. `2026-11-26T10:00:00Z`).
    pub last_transition_time: String,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
}

impl Condition {
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
        now_rfc3339: &str,
        observed_generation: Option<i64>,
    ) -> Self {
        Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: message.into(),
            last_transition_time: now_rfc3339.to_string(),
            observed_generation,
        }
    }
}

/// Inserts or replaces the condition of `new.type_`, keeping the previous
/// `lastTransitionTime` when the status did not change (as `meta.SetStatusCondition`
/// does), so that the time says when the state changed, not when it was last seen.
/// Returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            let changed = *old != new;
            *old = new;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// The condition of type `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: ConditionStatus, reason: &str, at: &str) -> Condition {
        Condition::new(types::READY, status, reason, "", at, Some(1))
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut conditions = vec![];
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Compiled", "2026-01-01T00:00:00Z")
        ));
        // Same status, later time: nothing changes, the old time stays.
        assert!(!set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Compiled", "2026-01-02T00:00:00Z")
        ));
        assert_eq!(conditions[0].last_transition_time, "2026-01-01T00:00:00Z");
        // Same status, new reason: updated, time kept.
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Recompiled", "2026-01-03T00:00:00Z")
        ));
        assert_eq!(conditions[0].reason, "Recompiled");
        assert_eq!(conditions[0].last_transition_time, "2026-01-01T00:00:00Z");
        // Status flips: time moves.
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::False, "InvalidSpec", "2026-01-04T00:00:00Z")
        ));
        assert_eq!(conditions.len(), 1);
        assert_eq!(
            find_condition(&conditions, types::READY).unwrap().last_transition_time,
            "2026-01-04T00:00:00Z"
        );
        assert!(find_condition(&conditions, types::BUDGET_EXCEEDED).is_none());
    }

    #[test]
    fn serializes_like_metav1_condition() {
        let c = Condition::new(
            types::BUDGET_EXCEEDED,
            ConditionStatus::True,
            "LimitReached",
            "m",
            "t",
            None,
        );
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "BudgetExceeded", "status": "True", "reason": "LimitReached", "message": "m", "lastTransitionTime": "t"})
        );
    }
}
