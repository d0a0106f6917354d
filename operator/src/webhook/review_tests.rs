//! The decision over `AdmissionReview` JSON as the API server sends it.

use kube::core::admission::AdmissionReview;
use serde_json::{Value, json};

use super::*;

/// An `admission.k8s.io/v1` review of `operation` on `object` (and `old`), as the API server sends it.
fn request(operation: &str, object: Value, old: Option<Value>) -> AdmissionRequest<DynamicObject> {
    let kind = object["kind"].as_str().unwrap_or("TeamBudget").to_string();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "tally.dev", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "tally.dev", "version": "v1alpha1", "resource": "teambudgets"},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": if operation == "DELETE" { Value::Null } else { object.clone() },
            "oldObject": old.unwrap_or(if operation == "DELETE" { object } else { Value::Null }),
            "dryRun": false
        }
    });
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(review).expect("a review");
    review.try_into().expect("a request")
}

fn team_json(ns: &str, name: &str, created: Option<&str>, spec: Value) -> Value {
    json!({
        "apiVersion": "tally.dev/v1alpha1", "kind": "TeamBudget",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created, "uid": format!("uid-{name}")},
        "spec": spec
    })
}

fn team(ns: &str, name: &str, created: &str, spec: Value) -> TeamBudget {
    serde_json::from_value(team_json(ns, name, Some(created), spec)).unwrap()
}

fn pricing_json(name: &str, priority: i32, aliases: Value, models: Value) -> Value {
    json!({
        "apiVersion": "tally.dev/v1alpha1", "kind": "ModelPricing", "metadata": {"name": name},
        "spec": {"source": "test", "effectiveFrom": "2026-01-01", "priority": priority, "models": models, "aliases": aliases}
    })
}

fn price(pattern: &str, input: &str) -> Value {
    json!({"match": pattern, "inputPerMillion": input, "outputPerMillion": "1", "maxOutputTokens": 4096})
}

fn synced(teams: Vec<TeamBudget>, pricings: Vec<ModelPricing>) -> Snapshot {
    Snapshot {
        teams: teams.into_iter().map(Arc::new).collect(),
        pricings: pricings.into_iter().map(Arc::new).collect(),
        synced: true,
        watch_namespaces: vec![],
    }
}

/// The owner of tenant `acme`, created before anything a test creates.
fn acme_owner() -> TeamBudget {
    team(
        "sales",
        "sales",
        "2026-01-01T00:00:00Z",
        json!({"team": "sales", "tenants": [{"id": "acme"}]}),
    )
}

fn message(response: &AdmissionResponse) -> &str {
    &response.result.message
}

#[test]
fn every_problem_of_a_team_budget_is_refused_at_once() {
    let spec = json!({
        "team": "search",
        "budget": {"limitUSD": "10", "period": "Monthly", "timezone": "Mars/Olympus_Mons"},
        "tenants": [{"id": "acme"}],
        "workflows": [{"id": "rag", "limitUSD": "50"}, {"id": "big", "limitUSD": "99999999999"}]
    });
    let req = request("CREATE", team_json("search", "search", None, spec), None);
    let response = review(&req, || synced(vec![acme_owner()], vec![]));
    assert!(!response.allowed);
    assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    let text = message(&response);
    // Without a valid budget there is no team limit to hold the workflows to: that shows next time.
    assert!(text.starts_with("3 problems found:\n"), "{text}");
    for expected in [
        "TeamBudget search/search: spec.budget.timezone: unknown timezone \"Mars/Olympus_Mons\"",
        "TeamBudget search/search: spec.workflows[1].limitUSD: \"99999999999\" is too large",
        "TeamBudget search/search: spec.tenants[0].id: tenant \"acme\" already belongs to team \"sales\" \
         (TeamBudget sales/sales)",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    // The response is what the API server reads back.
    let wire = serde_json::to_value(response.into_review()).unwrap();
    assert_eq!(wire["response"]["allowed"], false);
    assert_eq!(wire["apiVersion"], "admission.k8s.io/v1");
}

#[test]
fn a_workflow_above_its_team_limit_and_a_bad_glob_are_refused_together() {
    let spec = json!({
        "team": "search",
        "budget": {"limitUSD": "10", "period": "Monthly"},
        "workflows": [{"id": "rag", "limitUSD": "50"}],
        "allowedModels": ["anthropic.*", ""]
    });
    let response = review(
        &request("CREATE", team_json("search", "search", None, spec), None),
        || synced(vec![], vec![]),
    );
    let text = message(&response);
    assert!(text.starts_with("2 problems found:\n"), "{text}");
    assert!(
        text.contains("TeamBudget search/search: spec.workflows[0].limitUSD: "),
        "{text}"
    );
    assert!(
        text.contains("TeamBudget search/search: spec.allowedModels[1]: "),
        "{text}"
    );
}

#[test]
fn a_valid_object_passes_and_a_delete_is_never_judged() {
    let spec =
        json!({"team": "search", "budget": {"limitUSD": "10", "period": "Daily"}, "tenants": [{"id": "globex"}]});
    let req = request("CREATE", team_json("search", "search", None, spec), None);
    let response = review(&req, || synced(vec![acme_owner()], vec![]));
    assert!(response.allowed, "{}", message(&response));
    assert_eq!(response.warnings, None);

    // Deleting even an invalid object: allowed without looking at the cluster.
    let bad = team_json("s", "s", Some("2026-01-01T00:00:00Z"), json!({"team": "Not Valid"}));
    let response = review(&request("DELETE", bad, None), || panic!("a DELETE needs no snapshot"));
    assert!(response.allowed);
}

#[test]
fn the_older_object_keeps_its_claim_whichever_is_applied() {
    let newer = team(
        "b",
        "newer",
        "2026-03-01T00:00:00Z",
        json!({"team": "beta", "tenants": [{"id": "initech"}]}),
    );
    // The older object, updated to claim the newer one's tenant: it would win by age and break
    // the newer one, so the update is refused, naming both.
    let old = team_json("a", "older", Some("2026-01-01T00:00:00Z"), json!({"team": "alpha"}));
    let mut grabbing = old.clone();
    grabbing["spec"]["tenants"] = json!([{"id": "initech"}]);
    let req = request("UPDATE", grabbing, Some(old));
    let response = review(&req, || synced(vec![newer.clone()], vec![]));
    assert!(!response.allowed);
    assert_eq!(
        message(&response),
        "1 problem found:\nTeamBudget a/older would make another object invalid: TeamBudget b/newer: \
         spec.tenants[0].id: tenant \"initech\" already belongs to team \"alpha\" (TeamBudget a/older); a tenant \
         belongs to one team (the older object keeps it)"
    );
}

#[test]
fn a_metadata_only_update_of_an_invalid_object_is_allowed_with_warnings() {
    let spec = json!({"team": "dup", "tenants": [{"id": "acme"}]});
    let old = team_json("x", "x", Some("2026-02-01T00:00:00Z"), spec.clone());
    let mut labelled = old.clone();
    labelled["metadata"]["labels"] = json!({"owner": "me"});
    let response = review(&request("UPDATE", labelled, Some(old)), || {
        synced(vec![acme_owner()], vec![])
    });
    assert!(response.allowed);
    let warnings = response.warnings.unwrap();
    assert!(warnings[0].contains("tenant \"acme\" already belongs"), "{warnings:?}");
}

#[test]
fn before_the_caches_sync_only_per_object_checks_run() {
    let spec = json!({"team": "search", "tenants": [{"id": "acme"}], "allowedModels": [""]});
    let req = request("CREATE", team_json("search", "search", None, spec), None);
    let response = review(&req, || Snapshot {
        synced: false,
        ..synced(vec![acme_owner()], vec![])
    });
    assert!(!response.allowed);
    let text = message(&response);
    assert!(text.starts_with("1 problem found:\n"), "{text}");
    assert!(text.contains("spec.allowedModels[0]"), "{text}");
    assert!(response.warnings.unwrap()[0].contains("not checked"));
}

#[test]
fn an_unwatched_namespace_is_allowed_with_a_warning() {
    let req = request(
        "CREATE",
        team_json("elsewhere", "t", None, json!({"team": "Bad Id"})),
        None,
    );
    let response = review(&req, || Snapshot {
        watch_namespaces: vec!["teams".into()],
        ..synced(vec![], vec![])
    });
    assert!(response.allowed);
    assert!(response.warnings.unwrap()[0].contains("not watched"));
}

#[test]
fn a_model_pricing_is_judged_against_the_other_catalogs() {
    let existing: ModelPricing = serde_json::from_value(pricing_json(
        "base",
        0,
        json!([{"id": "profile-1", "model": "anthropic.claude-x"}]),
        json!([price("anthropic.claude-x", "3")]),
    ))
    .unwrap();
    let candidate = pricing_json(
        "override",
        0,
        json!([{"id": "profile-1", "model": "amazon.nova-y"}]),
        json!([
            price("amazon.nova-y", "1"),
            price("bad glob", "1"),
            price("x", "99999999999999999")
        ]),
    );
    let response = review(&request("CREATE", candidate, None), || synced(vec![], vec![existing]));
    assert!(!response.allowed);
    let text = message(&response);
    for expected in [
        "ModelPricing override: spec.models[1].match: ",
        "ModelPricing override: spec.models[2].inputPerMillion: ",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    // A catalog is checked on its own first: the alias clash shows once the entries are fixed.
    let fixed = pricing_json(
        "override",
        0,
        json!([{"id": "profile-1", "model": "amazon.nova-y"}]),
        json!([price("amazon.nova-y", "1")]),
    );
    let existing = serde_json::from_value(pricing_json(
        "base",
        0,
        json!([{"id": "profile-1", "model": "anthropic.claude-x"}]),
        json!([price("anthropic.claude-x", "3")]),
    ))
    .unwrap();
    let response = review(&request("CREATE", fixed, None), || synced(vec![], vec![existing]));
    assert!(!response.allowed);
    assert!(
        message(&response).contains("alias \"profile-1\" is already mapped"),
        "{}",
        message(&response)
    );
}

#[test]
fn other_kinds_pass_untouched() {
    let mut req = request("CREATE", team_json("a", "a", None, json!({"team": "Bad Id"})), None);
    req.kind.group = "apps".into();
    assert!(review(&req, || panic!("not a Tally kind")).allowed);
}
