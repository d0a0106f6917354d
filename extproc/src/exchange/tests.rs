//! The exchange driven phase by phase against the memory store: admission,
//! refusal, settlement and the cut-stream rule, without Envoy, gRPC or Redis.

use std::sync::Arc;

use tally_config::compiled::*;
use tally_config::keys::{self, Scope};
use tally_config::ledger::Outcome;
use tally_config::money::{Nanos, NanosPerMillion};
use tally_config::pricing::Usage;
use tally_store::memory::MemoryStore;
use tally_store::{Settlement, Store};

use super::*;

/// Nova Micro-like prices: 1 USD per 1M input tokens, 4 USD per 1M output tokens.
fn config(limit: Nanos, allowed_models: Vec<String>) -> CompiledConfig {
    let mut c = CompiledConfig::empty();
    c.teams.push(TeamConfig {
        team: "search".into(),
        source: "ns/search".into(),
        cost_center: None,
        tenants: vec![],
        budget: Some(BudgetConfig {
            limit,
            period: tally_config::period::Period::Monthly,
            timezone: "UTC".into(),
            enforcement: Enforcement::Block,
            alert_thresholds: vec![],
        }),
        workflows: vec![],
        allowed_models,
        principals: vec![],
    });
    c.catalog.entries.push(PriceEntry {
        pattern: "amazon.nova-micro-v1:0".into(),
        regions: vec![],
        prices: Prices {
            input: NanosPerMillion(1_000_000_000),
            output: NanosPerMillion(4_000_000_000),
            ..Prices::default()
        },
        max_output_tokens: 1000,
        source: "test".into(),
        ..PriceEntry::default()
    });
    c
}

fn shared(config: CompiledConfig, opts: Options) -> Arc<Shared> {
    Arc::new(Shared::new(
        Policy::new(config),
        Store::Memory(MemoryStore::new()),
        None,
        opts,
    ))
}

fn headers(list: &[(&str, &str)]) -> Headers {
    Headers(list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect())
}

fn request(operation: &str, id: &str) -> Headers {
    let path = format!("/model/amazon.nova-micro-v1:0/{operation}");
    headers(&[
        (":method", "POST"),
        (":path", &path),
        ("x-team-id", "search"),
        ("amz-sdk-invocation-id", id),
        ("content-length", "100"),
    ])
}

/// A Converse body of exactly 100 bytes asking for at most 50 output tokens.
fn body_100_bytes() -> Vec<u8> {
    let mut b = br#"{"inferenceConfig":{"maxTokens":50},"messages":[]}"#.to_vec();
    b.resize(100, b' ');
    b
}

/// Worst case of that body: its input bound (64 tokens per request + 4 per
/// object or array, 3 of them; the padding counts nothing) at 1 $/1M + 50
/// output at 4 $/1M.
const WORST: Nanos = Nanos((64 + 3 * 4) * 1_000 + 50 * 4_000);

fn team_counters(s: &Shared, ex: &Exchange) -> tally_store::Counters {
    let Store::Memory(m) = &s.store else {
        unreachable!("memory store")
    };
    m.counters(&keys::counter(
        "search",
        &ex.policy.plan(&call_who(ex), ex.time).window.key,
        &Scope::Team,
    ))
}

fn call_who(ex: &Exchange) -> crate::policy::Attribution {
    ex.call.as_ref().expect("a call").facts.who.clone()
}

fn ledger(s: &Shared) -> Vec<tally_config::ledger::LedgerRecord> {
    let Store::Memory(m) = &s.store else {
        unreachable!("memory store")
    };
    m.ledger(100)
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    let list = match reply {
        Reply::Continue { set_headers, .. } => set_headers,
        Reply::Respond { headers, .. } => headers,
    };
    list.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn admission_reserves_the_worst_case_from_the_body() {
    let s = shared(config(Nanos(1_000_000_000), vec![]), Options::default());
    let mut ex = Exchange::new(s.clone());
    let asked = ex.request_headers(&request("converse", "a"), false, vec![]).await;
    assert!(matches!(
        asked,
        Reply::Continue {
            mode: Some(Mode::READ_REQUEST_BODY),
            ..
        }
    ));
    let admitted = ex.request_body(&body_100_bytes(), true).await;
    assert!(matches!(admitted, Reply::Continue { mode: None, .. }), "{admitted:?}");
    assert_eq!(team_counters(&s, &ex).reserved, WORST);
}

#[tokio::test]
async fn settlement_charges_the_token_count_headers_exactly_and_releases_the_hold() {
    let s = shared(config(Nanos(1_000_000_000), vec![]), Options::default());
    let mut ex = Exchange::new(s.clone());
    ex.request_headers(&request("invoke", "b"), false, vec![]).await;
    ex.request_body(&body_100_bytes(), true).await;
    let done = ex
        .response_headers(
            &headers(&[
                (":status", "200"),
                ("x-amzn-bedrock-input-token-count", "30"),
                ("x-amzn-bedrock-output-token-count", "20"),
            ]),
            false,
        )
        .await;
    // 30 × 1 $/1M + 20 × 4 $/1M = 0.00011 USD
    assert_eq!(header(&done, "x-tally-cost-usd"), Some("0.00011"));
    assert_eq!(header(&done, "x-tally-budget-remaining-usd"), Some("0.99989"));
    let c = team_counters(&s, &ex);
    assert_eq!((c.spent, c.reserved, c.requests), (Nanos(110_000), Nanos::ZERO, 1));
    let records = ledger(&s);
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].outcome, records[0].cost_nanos), (Outcome::Ok, 110_000));
}

/// Write-behind: the response carries the cost before anything is settled; what queued meanwhile
/// goes to the store in one batch, here at the flush a stop makes (the window is ten minutes).
#[tokio::test]
async fn with_write_behind_settlements_wait_in_the_queue_and_go_in_one_batch() {
    let mut s = Shared::new(
        Policy::new(config(Nanos(1_000_000_000), vec![])),
        Store::Memory(MemoryStore::new()),
        None,
        Options::default(),
    );
    s.write_behind = Some(behind::WriteBehind::new(std::time::Duration::from_secs(600)));
    let s = Arc::new(s);
    behind::start(&s);
    let mut costs = vec![];
    for id in ["a", "b", "c"] {
        let mut ex = Exchange::new(s.clone());
        ex.request_headers(&request("invoke", id), false, vec![]).await;
        ex.request_body(&body_100_bytes(), true).await;
        let token_counts = [
            (":status", "200"),
            ("x-amzn-bedrock-input-token-count", "30"),
            ("x-amzn-bedrock-output-token-count", "20"),
        ];
        let done = ex.response_headers(&headers(&token_counts), false).await;
        costs.push(header(&done, "x-tally-cost-usd").map(str::to_string));
    }
    assert_eq!(costs, vec![Some("0.00011".to_string()); 3]);
    assert!(ledger(&s).is_empty(), "settled before the window");
    behind::flush(&s).await;
    assert_eq!(ledger(&s).len(), 3);
    let text = s.metrics.encode();
    assert!(text.contains("tally_settle_batches_total 1\n"), "{text}");
    assert!(text.contains("tally_settle_queue_depth 0\n"), "{text}");
}

#[tokio::test]
async fn a_budget_that_cannot_cover_the_worst_case_refuses_and_records_it() {
    let s = shared(config(Nanos(WORST.0 - 1), vec![]), Options::default());
    let mut ex = Exchange::new(s.clone());
    ex.request_headers(&request("converse", "c"), false, vec![]).await;
    let refused = ex.request_body(&body_100_bytes(), true).await;
    let Reply::Respond {
        status,
        error_type,
        ref message,
        ..
    } = refused
    else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert_eq!((status, error_type), (400, "ServiceQuotaExceededException"));
    assert!(
        message.contains("team \"search\"") && message.contains(&format!("up to {WORST} USD")),
        "{message}"
    );
    assert_eq!(header(&refused, "x-tally-budget"), Some("team \"search\""));
    let c = team_counters(&s, &ex);
    assert_eq!((c.reserved, c.spent, c.blocked), (Nanos::ZERO, Nanos::ZERO, 1));
    assert_eq!(ledger(&s)[0].outcome, Outcome::Blocked);
}

#[tokio::test]
async fn a_model_outside_the_allowlist_is_denied_on_the_headers() {
    let s = shared(
        config(Nanos(1_000_000_000), vec!["anthropic.*".into()]),
        Options::default(),
    );
    let mut ex = Exchange::new(s.clone());
    let denied = ex.request_headers(&request("converse", "d"), false, vec![]).await;
    assert!(
        matches!(
            denied,
            Reply::Respond {
                status: 403,
                error_type: "AccessDeniedException",
                ..
            }
        ),
        "{denied:?}"
    );
    assert_eq!(ledger(&s)[0].outcome, Outcome::Denied);
}

#[tokio::test]
async fn a_cut_stream_without_usage_is_charged_its_whole_reservation() {
    let s = shared(config(Nanos(1_000_000_000), vec![]), Options::default());
    let mut ex = Exchange::new(s.clone());
    ex.request_headers(&request("converse-stream", "e"), false, vec![])
        .await;
    ex.request_body(&body_100_bytes(), true).await;
    let streaming = ex.response_headers(&headers(&[(":status", "200")]), false).await;
    assert!(matches!(
        streaming,
        Reply::Continue {
            mode: Some(Mode::STREAM_RESPONSE),
            ..
        }
    ));
    ex.abandon().await;
    let c = team_counters(&s, &ex);
    assert_eq!((c.spent, c.reserved), (WORST, Nanos::ZERO));
    let r = &ledger(&s)[0];
    assert_eq!(
        (r.outcome, r.note.as_deref()),
        (Outcome::Incomplete, Some(settlement::NOTE_NO_USAGE))
    );
    // Abandoning twice (Envoy's reset after our own end) charges nothing more.
    ex.abandon().await;
    assert_eq!(ledger(&s).len(), 1);
}

#[tokio::test]
async fn an_upstream_error_releases_the_hold_at_zero_cost() {
    let s = shared(config(Nanos(1_000_000_000), vec![]), Options::default());
    let mut ex = Exchange::new(s.clone());
    ex.request_headers(&request("converse", "f"), false, vec![]).await;
    ex.request_body(&body_100_bytes(), true).await;
    let failed = ex.response_headers(&headers(&[(":status", "429")]), false).await;
    assert_eq!(header(&failed, "x-tally-cost-usd"), Some("0.00"));
    let c = team_counters(&s, &ex);
    assert_eq!((c.spent, c.reserved), (Nanos::ZERO, Nanos::ZERO));
    assert_eq!(ledger(&s)[0].outcome, Outcome::UpstreamError);
}

#[tokio::test]
async fn when_needed_reserves_from_the_headers_and_falls_back_to_the_body() {
    let opts = Options {
        request_body: RequestBody::WhenNeeded,
        ..Options::default()
    };
    // Room for the output-cap bound (1000 tokens): admitted on the headers.
    let roomy = shared(config(Nanos(1_000_000_000), vec![]), opts.clone());
    let mut ex = Exchange::new(roomy.clone());
    let admitted = ex.request_headers(&request("converse", "g"), false, vec![]).await;
    assert!(
        matches!(
            admitted,
            Reply::Continue {
                mode: Some(Mode::HEADERS_ONLY),
                ..
            }
        ),
        "{admitted:?}"
    );
    assert_eq!(team_counters(&roomy, &ex).reserved, Nanos(100 * 1_000 + 1000 * 4_000));
    // Room only for the body's tighter bound: nothing held, the body is read, then admitted.
    let tight = shared(config(WORST, vec![]), opts);
    let mut ex = Exchange::new(tight.clone());
    let asked = ex.request_headers(&request("converse", "h"), false, vec![]).await;
    assert!(
        matches!(
            asked,
            Reply::Continue {
                mode: Some(Mode::READ_REQUEST_BODY),
                ..
            }
        ),
        "{asked:?}"
    );
    assert_eq!(team_counters(&tight, &ex).reserved, Nanos::ZERO);
    ex.request_body(&body_100_bytes(), true).await;
    assert_eq!(team_counters(&tight, &ex).reserved, WORST);
}

#[tokio::test]
async fn zero_cost_calls_and_other_paths_pass_without_a_reservation() {
    let s = shared(config(Nanos(1), vec![]), Options::default());
    let mut ex = Exchange::new(s.clone());
    let other = ex
        .request_headers(
            &headers(&[(":method", "GET"), (":path", "/healthz"), ("x-tally-cost-usd", "1")]),
            true,
            vec![],
        )
        .await;
    let Reply::Continue {
        mode, remove_headers, ..
    } = other
    else {
        panic!("{other:?}")
    };
    assert_eq!(
        (mode, remove_headers),
        (Some(Mode::SKIP_REST), vec!["x-tally-cost-usd".to_string()])
    );
    let mut count = Exchange::new(s.clone());
    count
        .request_headers(&request("count-tokens", "i"), false, vec![])
        .await;
    let passed = count.request_body(&body_100_bytes(), true).await;
    assert!(
        matches!(passed, Reply::Continue { .. }),
        "CountTokens is never blocked: {passed:?}"
    );
}

#[test]
fn a_failed_stream_refuses_when_closed_charges_when_open_and_settles_once_admitted() {
    use call::{StreamFailure, on_stream_error};
    assert_eq!(
        on_stream_error(Phase::Requested, FailMode::Closed),
        StreamFailure::Refuse
    );
    assert_eq!(
        on_stream_error(Phase::Requested, FailMode::Open),
        StreamFailure::ChargeWorstCase
    );
    for phase in [Phase::Admitted, Phase::Finished] {
        for mode in [FailMode::Open, FailMode::Closed] {
            assert_eq!(on_stream_error(phase, mode), StreamFailure::Settle);
        }
    }
}

#[tokio::test]
async fn a_buffered_body_without_end_of_stream_is_the_last_chunk_and_admits() {
    let s = shared(config(Nanos(1_000_000_000), vec![]), Options::default());
    let mut ex = Exchange::new(s.clone());
    ex.request_headers(&request("converse", "t"), false, vec![]).await;
    // Trailers follow: Envoy sends the whole buffered body with end_of_stream=false.
    let admitted = ex.request_body(&body_100_bytes(), false).await;
    assert!(matches!(admitted, Reply::Continue { mode: None, .. }), "{admitted:?}");
    assert_eq!(team_counters(&s, &ex).reserved, WORST, "reserved before the trailers");
    assert_eq!(ex.request_trailers().await, Reply::pass(), "admitted once");
    assert_eq!(team_counters(&s, &ex).reserved, WORST);
}

/// Series in the encoded `/metrics` text (sample lines, not `#` comments).
fn series(s: &Shared) -> usize {
    s.metrics.encode().lines().filter(|l| !l.starts_with('#')).count()
}

const NOVA: &str = "amazon.nova-micro-v1:0";

/// One call of `model` under `workflow`, answered by Bedrock with a 429.
async fn call_with(s: &Arc<Shared>, model: &str, workflow: &str) {
    let path = format!("/model/{model}/converse");
    let mut ex = Exchange::new(s.clone());
    let hs = headers(&[
        (":method", "POST"),
        (":path", &path),
        ("x-team-id", "search"),
        ("x-workflow-id", workflow),
        ("content-length", "100"),
    ]);
    ex.request_headers(&hs, false, vec![]).await;
    ex.request_body(&body_100_bytes(), true).await;
    ex.response_headers(&headers(&[(":status", "429")]), false).await;
}

/// 1,000 calls through the exchange, then 100,000 settlements straight into
/// `observe` (the memory store's per-call cost would make 100,000 exchanges slow),
/// each with its own workflow id and every other one with an unpriced model id.
#[tokio::test]
async fn random_workflow_and_model_ids_fold_into_other_so_series_stay_bounded() {
    let mut c = config(Nanos(1_000_000_000), vec![]);
    c.teams[0].workflows.push(WorkflowConfig {
        id: "rag".into(),
        limit: None,
        allowed_models: vec![],
    });
    let s = shared(c, Options::default());
    call_with(&s, NOVA, "rag").await;
    let before = series(&s);
    let model = |i: usize| {
        if i.is_multiple_of(2) {
            NOVA.to_string()
        } else {
            format!("vendor.m-{i}")
        }
    };
    for i in 0..1_000 {
        call_with(&s, &model(i), &format!("wf-{i}")).await;
    }
    let template = Settlement {
        team: "search".into(),
        charge_id: String::new(),
        cost: Nanos(1),
        counters: vec![],
        count_request: true,
        team_limit: None,
        record: ledger(&s)[0].clone(),
    };
    let policy = s.policy.load();
    for i in 1_000..101_000 {
        let mut settled = template.clone();
        settled.record.workflow = Some(format!("wf-{i}"));
        settled.record.model = model(i);
        if !i.is_multiple_of(2) {
            observe::unpriced(&s.metrics, &policy, &settled.record.model);
        }
        observe::settled(
            &s.metrics,
            &policy,
            &settled,
            &Usage {
                input: 1,
                ..Usage::default()
            },
            None,
        );
    }
    let text = s.metrics.encode();
    // Configured ids stay themselves; every other id is one `other` series per metric.
    assert!(
        text.contains(r#"workflow="rag",model="amazon.nova-micro-v1:0""#),
        "{text}"
    );
    assert!(
        text.contains(r#"workflow="other",model="amazon.nova-micro-v1:0""#),
        "{text}"
    );
    assert!(
        text.contains(r#"tally_unpriced_calls_total{model="other"} 50500"#),
        "{text}"
    );
    assert!(!text.contains("wf-") && !text.contains("vendor.m-"), "{text}");
    let after = series(&s);
    assert!(
        after <= before + 10,
        "{after} series after 101,000 ids, {before} before:\n{text}"
    );
}
