//! Which TeamBudgets can decide a candidate's conflicts, so an admission compiles a handful of
//! objects rather than all 10,000.
//!
//! The compiler's cross-object rules are about claims (a team id, tenant ids): an object keeps
//! a claim unless an older, valid object made the same one. Whether that older object is valid
//! depends in turn on the objects it shares claims with, so the objects that matter are the
//! candidate's connected component in the graph "shares a team id or a tenant id". Objects
//! outside it cannot change any outcome inside it, so compiling the component gives the
//! candidate (and the objects it affects) exactly the errors a whole compile would.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tally_api::crd::TeamBudget;

/// The objects of `known` in the candidate's component (the candidate itself not included).
pub fn component(candidate: &TeamBudget, known: &[Arc<TeamBudget>]) -> Vec<TeamBudget> {
    let mut by_claim: HashMap<Claim<'_>, Vec<usize>> = HashMap::new();
    for (i, tb) in known.iter().enumerate() {
        for claim in claims(tb) {
            by_claim.entry(claim).or_default().push(i);
        }
    }
    let mut seen_claims: HashSet<Claim<'_>> = claims(candidate).collect();
    let mut frontier: Vec<Claim<'_>> = seen_claims.iter().copied().collect();
    let mut members: HashSet<usize> = HashSet::new();
    while let Some(claim) = frontier.pop() {
        for &i in by_claim.get(&claim).into_iter().flatten() {
            if members.insert(i) {
                frontier.extend(claims(&known[i]).filter(|c| seen_claims.insert(*c)));
            }
        }
    }
    let mut members: Vec<usize> = members.into_iter().collect();
    members.sort_unstable();
    members.into_iter().map(|i| (*known[i]).clone()).collect()
}

/// One id an object claims cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Claim<'a> {
    Team(&'a str),
    Tenant(&'a str),
}

fn claims(tb: &TeamBudget) -> impl Iterator<Item = Claim<'_>> {
    std::iter::once(Claim::Team(tb.spec.team.as_str())).chain(tb.spec.tenants.iter().map(|t| Claim::Tenant(&t.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(name: &str, id: &str, tenants: &[&str]) -> Arc<TeamBudget> {
        let tenants: Vec<_> = tenants.iter().map(|t| serde_json::json!({"id": t})).collect();
        let spec = serde_json::json!({"team": id, "tenants": tenants});
        let mut tb = TeamBudget::new(name, serde_json::from_value(spec).unwrap());
        tb.metadata.namespace = Some("ns".into());
        Arc::new(tb)
    }

    fn names(tbs: &[TeamBudget]) -> Vec<&str> {
        tbs.iter().map(|t| t.metadata.name.as_deref().unwrap_or("")).collect()
    }

    #[test]
    fn the_component_follows_shared_claims_transitively_and_nothing_else() {
        let known = [
            team("a", "alpha", &["x"]),
            team("b", "beta", &["x", "y"]),
            team("c", "gamma", &["z"]),
            team("d", "alpha", &[]),
            team("e", "epsilon", &["w"]),
        ];
        // The candidate claims y: b shares it, a shares x with b (a decides whether b keeps y),
        // d shares the team id alpha with a. c and e share nothing.
        let candidate = team("new", "new", &["y"]);
        assert_eq!(names(&component(&candidate, &known)), ["a", "b", "d"]);
        let alone = team("new", "fresh", &["v"]);
        assert!(component(&alone, &known).is_empty());
    }
}
