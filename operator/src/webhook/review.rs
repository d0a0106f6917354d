//! The admission decision, pure: one `AdmissionReview` request and a snapshot of the objects in
//! the cluster in, the response out. No I/O, no clock except a CREATE's missing timestamp.
//!
//! The candidate is compiled with the compiler `tally render` and the reconciler use, together
//! with the other objects of its kind as the cluster holds them (its own previous version left
//! out), so a conflict is decided by the documented rule: the older object by
//! `creationTimestamp` keeps a claim, and a candidate being created is the newest. Refused: every
//! problem of the candidate, and every problem it would *cause* on another object that the other
//! object did not have before (an update that takes a tenant from a newer team, a catalog that
//! now clashes with one of equal priority) — each line naming the object and the field.
//!
//! Never refused: DELETE and CONNECT, other kinds, an update that leaves the spec as it was (so
//! labels and annotations of an object already invalid can still change), an object in a
//! namespace the operator does not watch. Those, and a snapshot not synced yet (only the
//! per-object checks run then), come back as warnings.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde::de::DeserializeOwned;
use tally_api::compiler::{self, CompileError, ObjectRef};
use tally_api::crd::{GROUP, ModelPricing, TeamBudget};

/// What the cluster holds, as the webhook's watch caches see it.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub teams: Vec<Arc<TeamBudget>>,
    pub pricings: Vec<Arc<ModelPricing>>,
    /// The caches have listed once: cross-object checks are meaningful.
    pub synced: bool,
    /// Namespaces whose TeamBudgets the operator compiles; empty: all.
    pub watch_namespaces: Vec<String>,
}

/// The outcome for one candidate: refused if `problems` is not empty.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// One line per problem, each naming its object and field.
    pub problems: Vec<String>,
    /// Shown by kubectl whatever the outcome.
    pub warnings: Vec<String>,
}

/// The response to `req`; `snapshot` is taken only for a CREATE or UPDATE of a Tally kind.
pub fn review(req: &AdmissionRequest<DynamicObject>, snapshot: impl FnOnce() -> Snapshot) -> AdmissionResponse {
    let allowed = AdmissionResponse::from(req);
    let (Operation::Create | Operation::Update) = req.operation else {
        return allowed;
    };
    let Some(object) = &req.object else {
        return allowed;
    };
    if req.kind.group != GROUP {
        return allowed;
    }
    let verdict = match req.kind.kind.as_str() {
        "TeamBudget" => match parse::<TeamBudget>(object, req.old_object.as_ref()) {
            Ok((candidate, old)) => judge_team(candidate, old, &snapshot()),
            Err(warning) => warn_only(warning),
        },
        "ModelPricing" => match parse::<ModelPricing>(object, req.old_object.as_ref()) {
            Ok((candidate, old)) => judge_pricing(candidate, old, &snapshot()),
            Err(warning) => warn_only(warning),
        },
        _ => return allowed,
    };
    respond(allowed, verdict)
}

/// `allowed` turned into a refusal listing every problem when there is any, with the warnings.
pub fn respond(allowed: AdmissionResponse, verdict: Verdict) -> AdmissionResponse {
    let mut response = if verdict.problems.is_empty() {
        allowed
    } else {
        let n = verdict.problems.len();
        allowed.deny(format!(
            "{n} problem{} found:\n{}",
            if n == 1 { "" } else { "s" },
            verdict.problems.join("\n")
        ))
    };
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings);
    }
    response
}

fn warn_only(warning: String) -> Verdict {
    Verdict {
        problems: vec![],
        warnings: vec![warning],
    }
}

/// The typed candidate and its previous version. An object that does not read as this
/// operator's type (a newer CRD than the operator) is let through with a warning: the
/// reconciler reports it, and an outage of this check must never block applies.
fn parse<K: DeserializeOwned>(object: &DynamicObject, old: Option<&DynamicObject>) -> Result<(K, Option<K>), String> {
    let read = |o: &DynamicObject| {
        serde_json::to_value(o)
            .and_then(serde_json::from_value::<K>)
            .map_err(|e| format!("tally webhook could not read the object ({e}); not checked"))
    };
    Ok((read(object)?, old.map(read).transpose().ok().flatten()))
}

/// A Tally kind as the webhook judges it.
trait Kind: Clone {
    fn object_ref(&self) -> ObjectRef;
    /// Every error the compiler finds over `all` objects of this kind.
    fn compile(all: &[Self]) -> Vec<CompileError>;
    /// The errors of this object on its own (no cross-object rules).
    fn validate(&self) -> Vec<CompileError>;
    fn same_spec(&self, other: &Self) -> bool;
    /// The object reduced to what it claims cluster-wide (ids, aliases), with the rest emptied,
    /// so an object with other errors is still told about its conflicts: the compiler leaves an
    /// invalid object out before it looks for conflicts.
    fn claims(&self) -> Self;
    /// The objects of `known` that can change this one's outcome (or have it changed by it).
    fn related(&self, known: &[Arc<Self>]) -> Vec<Self>;
}

impl Kind for TeamBudget {
    fn object_ref(&self) -> ObjectRef {
        ObjectRef::team_budget(self)
    }
    fn compile(all: &[Self]) -> Vec<CompileError> {
        compiler::compile_lenient(all, &[]).errors
    }
    fn validate(&self) -> Vec<CompileError> {
        compiler::validate_team(self)
    }
    fn same_spec(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    fn claims(&self) -> Self {
        let mut claims = self.clone();
        let spec = &mut claims.spec;
        (spec.budget, spec.cost_center) = (None, None);
        spec.workflows.clear();
        spec.allowed_models.clear();
        spec.principals.clear();
        spec.tenants.iter_mut().for_each(|t| t.limit_usd = None);
        claims
    }
    fn related(&self, known: &[Arc<Self>]) -> Vec<Self> {
        super::related::component(self, known)
    }
}

impl Kind for ModelPricing {
    fn object_ref(&self) -> ObjectRef {
        ObjectRef::model_pricing(self)
    }
    fn compile(all: &[Self]) -> Vec<CompileError> {
        compiler::compile_lenient(&[], all).errors
    }
    fn validate(&self) -> Vec<CompileError> {
        compiler::validate_pricing(self)
    }
    fn same_spec(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    fn claims(&self) -> Self {
        let mut claims = self.clone();
        claims.spec.models.clear();
        claims
    }
    fn related(&self, known: &[Arc<Self>]) -> Vec<Self> {
        // A handful of catalogs: all of them.
        known.iter().map(|p| (**p).clone()).collect()
    }
}

/// A TeamBudget against the cluster's TeamBudgets.
pub fn judge_team(mut candidate: TeamBudget, old: Option<TeamBudget>, snapshot: &Snapshot) -> Verdict {
    let namespace = candidate.metadata.namespace.clone().unwrap_or_default();
    if !snapshot.watch_namespaces.is_empty() && !snapshot.watch_namespaces.contains(&namespace) {
        return warn_only(format!(
            "namespace {namespace:?} is not watched by the tally operator (--watch-namespaces): this TeamBudget \
             is not enforced"
        ));
    }
    // The API server stamps a CREATE before validating admission; a CREATE is the newest object.
    if candidate.metadata.creation_timestamp.is_none() {
        candidate.metadata.creation_timestamp = Some(Time(jiff::Timestamp::now()));
    }
    judge(candidate, old.as_ref(), &snapshot.teams, snapshot.synced)
}

/// A ModelPricing against the cluster's ModelPricings.
pub fn judge_pricing(candidate: ModelPricing, old: Option<ModelPricing>, snapshot: &Snapshot) -> Verdict {
    judge(candidate, old.as_ref(), &snapshot.pricings, snapshot.synced)
}

fn judge<K: Kind>(candidate: K, old: Option<&K>, known: &[Arc<K>], synced: bool) -> Verdict {
    let mut verdict = Verdict::default();
    let problems = if synced {
        with_the_others(candidate.clone(), known)
    } else {
        verdict.warnings.push(
            "the tally webhook has not read the cluster yet: conflicts with other objects were not checked".into(),
        );
        candidate.validate().iter().map(ToString::to_string).collect()
    };
    if old.is_some_and(|old| old.same_spec(&candidate)) {
        // Only metadata changed: never block it, but say what the reconciler will report.
        verdict.warnings.extend(problems);
    } else {
        verdict.problems = problems;
    }
    verdict
}

/// The candidate's errors, then the errors it would cause on other objects; for a candidate
/// with errors of its own, also the conflicts of its claims.
fn with_the_others<K: Kind>(candidate: K, known: &[Arc<K>]) -> Vec<String> {
    let claims = candidate.claims();
    let check_claims = !candidate.validate().is_empty() && claims.validate().is_empty();
    let mut problems = compiled_with(candidate, known);
    if check_claims {
        for conflict in compiled_with(claims, known) {
            if !problems.contains(&conflict) {
                problems.push(conflict);
            }
        }
    }
    problems
}

fn compiled_with<K: Kind>(candidate: K, known: &[Arc<K>]) -> Vec<String> {
    let me = candidate.object_ref();
    let mut all = candidate.related(known);
    all.retain(|k| k.object_ref() != me);
    let before: BTreeSet<String> = K::compile(&all).iter().map(ToString::to_string).collect();
    all.push(candidate);
    let after = K::compile(&all);
    let (own, others): (Vec<_>, Vec<_>) = after.iter().partition(|e| e.object == me);
    let mut problems: Vec<String> = own.iter().map(ToString::to_string).collect();
    problems.extend(
        others
            .iter()
            .map(ToString::to_string)
            .filter(|e| !before.contains(e))
            .map(|e| format!("{me} would make another object invalid: {e}")),
    );
    problems
}

#[cfg(test)]
#[path = "review_tests.rs"]
mod tests;
