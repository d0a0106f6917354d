use super::*;
use tally_config::compiled::*;
use tally_config::money::NanosPerMillion;

fn config() -> CompiledConfig {
    let team = |id: &str| TeamConfig {
        team: id.into(),
        source: format!("ns/{id}"),
        cost_center: None,
        tenants: vec![],
        budget: None,
        workflows: vec![],
        allowed_models: vec![],
        principals: vec![],
    };
    let mut search = team("search");
    search.budget = Some(BudgetConfig {
        limit: Nanos(100),
        period: Period::Daily,
        timezone: "Europe/Berlin".into(),
        enforcement: Enforcement::Block,
        alert_thresholds: vec![],
    });
    search.tenants = vec![
        TenantConfig {
            id: "acme".into(),
            limit: Some(Nanos(10)),
        },
        TenantConfig {
            id: "globex".into(),
            limit: None,
        },
    ];
    search.workflows = vec![WorkflowConfig {
        id: "rag".into(),
        limit: Some(Nanos(50)),
        allowed_models: vec!["amazon.nova-*".into()],
    }];
    search.allowed_models = vec!["amazon.*".into(), "anthropic.claude-3-5-haiku*".into()];
    let mut secure = team("secure");
    secure.principals = vec!["spiffe://cluster.local/ns/secure/sa/app".into()];
    let mut cfg = CompiledConfig::empty();
    cfg.teams = vec![search, secure, team("unknown")];
    cfg.catalog.entries = vec![PriceEntry {
        pattern: "amazon.nova-pro-v1:0".into(),
        regions: vec![],
        prices: Prices {
            input: NanosPerMillion(800_000_000),
            output: NanosPerMillion(3_200_000_000),
            ..Prices::default()
        },
        max_output_tokens: 10_000,
        source: "test".into(),
        ..PriceEntry::default()
    }];
    cfg
}

fn claims<'a>(team: Option<&'a str>, tenant: Option<&'a str>, workflow: Option<&'a str>) -> Claims<'a> {
    Claims {
        team,
        tenant,
        workflow,
        principals: vec![],
    }
}

#[test]
fn attribution_order() {
    let p = Policy::new(config());
    assert_eq!(p.attribute(&claims(Some("search"), None, Some("rag"))).team, "search");
    assert_eq!(p.attribute(&claims(None, Some("acme"), None)).team, "search");
    let a = p.attribute(&claims(Some("nope"), Some("acme"), None));
    assert_eq!((a.team.as_str(), a.claimed_team.as_deref()), ("unknown", Some("nope")));
    assert_eq!(p.attribute(&claims(None, None, None)).team, "unknown");
    assert_eq!(
        p.attribute(&claims(Some("  "), Some(&"x".repeat(500)), None)).tenant,
        None
    );
}

#[test]
fn only_configured_ids_become_label_values() {
    let p = Policy::new(config());
    assert_eq!(p.label_for_workflow("search", Some("rag")), "rag");
    assert_eq!(p.label_for_workflow("search", None), "none");
    assert_eq!(p.label_for_workflow("search", Some("adhoc")), OTHER_LABEL);
    // A workflow id of another team, or of no configured team, is not this team's.
    assert_eq!(p.label_for_workflow("secure", Some("rag")), OTHER_LABEL);
    assert_eq!(p.label_for_workflow("nope", Some("rag")), OTHER_LABEL);
    assert_eq!(p.label_for_tenant("search", Some("acme")), "acme");
    assert_eq!(p.label_for_tenant("search", None), "none");
    assert_eq!(p.label_for_tenant("search", Some("initech")), OTHER_LABEL);
    assert_eq!(p.label_for_tenant("secure", Some("acme")), OTHER_LABEL);
    assert_eq!(p.label_for_model("amazon.nova-pro-v1:0"), "amazon.nova-pro-v1:0");
    assert_eq!(p.label_for_model("meta.llama3-1-8b-instruct-v1:0"), OTHER_LABEL);
    assert_eq!(p.label_for_model(&"x".repeat(2048)), OTHER_LABEL);
}

#[test]
fn principals_bind_identity() {
    let p = Policy::new(config());
    let who = p.attribute(&claims(Some("secure"), None, None));
    assert!(
        p.authorize(&who, &["spiffe://cluster.local/ns/secure/sa/app"], None)
            .is_ok()
    );
    assert!(matches!(
        p.authorize(&who, &["spiffe://cluster.local/ns/other/sa/x"], None),
        Err(Denial::Principal { .. })
    ));
    assert!(matches!(
        p.authorize(&who, &[], None),
        Err(Denial::Principal { principal: None, .. })
    ));
    // A team without principals trusts headers.
    let who = p.attribute(&claims(Some("search"), None, None));
    assert!(p.authorize(&who, &[], None).is_ok());
}

#[test]
fn allowlists_for_team_and_workflow() {
    let p = Policy::new(config());
    let team = p.attribute(&claims(Some("search"), None, None));
    assert!(p.authorize(&team, &[], Some("amazon.nova-pro-v1:0")).is_ok());
    assert!(
        p.authorize(&team, &[], Some("us.anthropic.claude-3-5-haiku-20241022-v1:0"))
            .is_ok()
    );
    let denied = p
        .authorize(&team, &[], Some("anthropic.claude-3-opus-20240229-v1:0"))
        .unwrap_err();
    assert!(denied.message().contains("team \"search\""), "{}", denied.message());
    let rag = p.attribute(&claims(Some("search"), None, Some("rag")));
    assert!(p.authorize(&rag, &[], Some("amazon.nova-pro-v1:0")).is_ok());
    let denied = p
        .authorize(&rag, &[], Some("amazon.titan-text-express-v1"))
        .unwrap_err();
    assert!(denied.message().contains("workflow \"rag\""), "{}", denied.message());
}

#[test]
fn plan_covers_every_limited_scope_in_the_team_period() {
    let p = Policy::new(config());
    let now: Timestamp = "2026-11-26T23:30:00Z".parse().unwrap(); // already the 27th in Berlin
    let plan = p.plan(&p.attribute(&claims(Some("search"), Some("acme"), Some("rag"))), now);
    assert_eq!(plan.window.key, "2026-11-27");
    let got: Vec<_> = plan
        .budgets
        .iter()
        .map(|b| (b.key.as_str(), b.limit, b.enforce))
        .collect();
    assert_eq!(
        got,
        vec![
            ("tally:{search}:c:2026-11-27:team", Some(Nanos(100)), true),
            ("tally:{search}:c:2026-11-27:wf/rag", Some(Nanos(50)), true),
            ("tally:{search}:c:2026-11-27:tn/acme", Some(Nanos(10)), true),
        ]
    );
    // Unconfigured workflow and unlimited tenant: counted, not limited.
    let plan = p.plan(
        &p.attribute(&claims(Some("search"), Some("globex"), Some("adhoc"))),
        now,
    );
    assert_eq!(plan.budgets.len(), 2);
    assert_eq!(plan.budgets[1].limit, None);
    // No budget: counted by UTC month, never limited.
    let plan = p.plan(&p.attribute(&claims(None, None, None)), now);
    assert_eq!(plan.budgets[0].key, "tally:{unknown}:c:2026-11:team");
    assert_eq!(plan.team_limit(), None);
}

#[test]
fn the_tightest_budget_is_the_least_remaining_of_the_limited_ones() {
    let p = Policy::new(config());
    let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    // Limits: team 100, workflow rag 50, tenant acme 10.
    let plan = p.plan(&p.attribute(&claims(Some("search"), Some("acme"), Some("rag"))), now);
    assert_eq!(plan.scopes, ["team", "workflow/rag", "tenant/acme"]);
    assert_eq!(
        plan.tightest(&[Nanos(20), Nanos(10), Nanos(4)]),
        Some((Nanos(6), "tenant/acme"))
    );
    assert_eq!(
        plan.tightest(&[Nanos(95), Nanos(10), Nanos(4)]),
        Some((Nanos(5), "team"))
    );
    assert_eq!(
        plan.tightest(&[Nanos(20), Nanos(45), Nanos(0)]),
        Some((Nanos(5), "workflow/rag"))
    );
    // A tie goes to the broader budget; an overspent one (`Warn`) reads negative, as in status.
    assert_eq!(
        plan.tightest(&[Nanos(90), Nanos(40), Nanos(0)]),
        Some((Nanos(10), "team"))
    );
    assert_eq!(
        plan.tightest(&[Nanos(20), Nanos(60), Nanos(0)]),
        Some((Nanos(-10), "workflow/rag"))
    );
    // The unlimited tenant is never the tightest; no budget at all: none.
    let plan = p.plan(&p.attribute(&claims(Some("search"), Some("globex"), None)), now);
    assert_eq!(plan.tightest(&[Nanos(99), Nanos(1_000)]), Some((Nanos(1), "team")));
    let plan = p.plan(&p.attribute(&claims(None, None, None)), now);
    assert_eq!(plan.tightest(&[Nanos(5)]), None);
}
