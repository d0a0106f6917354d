//! What the request headers say about a call, before any money moves: the
//! operation and model, the region, who is charged, and the ids it is recorded
//! under. Pure: headers and the policy in, [`CallFacts`] out.

use crate::bedrock::{self, Operation};
use crate::policy::{Attribution, Claims, Policy};
use crate::trace::Parent;

use super::options::Options;
use super::reply::Headers;

/// Longest client request id kept; a longer one is replaced by a generated id.
const MAX_REQUEST_ID_LEN: usize = 128;
/// Longest SDK app id kept as the call's client.
const MAX_CLIENT_LEN: usize = 64;

/// A Bedrock call as its request headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    pub operation: Operation,
    /// The model id as the client sent it (decoded); empty until the body names it
    /// (StartAsyncInvoke).
    pub model_id: String,
    pub region: String,
    pub who: Attribution,
    /// Workload identities of the peer, for the team's `principals`.
    pub principals: Vec<String>,
    /// The SDK app id the caller sends in `user-agent` (`app/<id>`): who calls, for coverage reports.
    pub client: Option<String>,
    /// The client's id for the call, stable across its retries: attribution
    /// data (the ledger's `requestId`), never a key, since the client picks it.
    pub request_id: String,
    /// This exchange's charge id: what reservation and settlement are keyed and
    /// idempotent on. Unique per exchange, so no call can settle, release or
    /// mark done another call's charge by sending the same client ids.
    pub charge_id: String,
    pub service_tier: Option<String>,
    pub content_length: Option<u64>,
    /// The client's W3C trace context, which the call's span continues.
    pub trace: Parent,
}

impl CallFacts {
    /// `None` for anything that is not a metered Bedrock call (other paths,
    /// reads of async jobs): Tally lets those pass untouched.
    pub fn from_headers(
        h: &Headers,
        opts: &Options,
        policy: &Policy,
        peer_principals: Vec<String>,
    ) -> Option<CallFacts> {
        let parsed = bedrock::parse_call(h.get(":method").unwrap_or(""), h.get(":path").unwrap_or(""))
            .filter(|c| !matches!(c.operation, Operation::GetAsyncInvoke | Operation::ListAsyncInvokes))?;
        let model_id = parsed.model_id.unwrap_or_default();
        let region = match &opts.upstream_region {
            Some(upstream) => upstream.clone(),
            None => region(h, &model_id, &opts.default_region),
        };
        let claims = Claims {
            team: h.get(&opts.team_header),
            tenant: h.get(&opts.tenant_header),
            workflow: h.get(&opts.workflow_header),
            principals: peer_principals.iter().map(String::as_str).collect(),
        };
        let who = policy.attribute(&claims);
        let request_id = request_id(h);
        let charge_id = charge_id(&request_id, sdk_attempt(h));
        Some(CallFacts {
            operation: parsed.operation,
            model_id,
            region,
            who,
            principals: peer_principals,
            client: client(h),
            request_id,
            charge_id,
            service_tier: h.get("x-amzn-bedrock-service-tier").map(str::to_string),
            content_length: h.get("content-length").and_then(|v| v.parse().ok()),
            trace: Parent::from_headers(|n| h.get(n)),
        })
    }

    /// The request body is needed to bound a metered call (`max_tokens`, its content,
    /// the units it orders: a guardrail's text units) or to know the model.
    pub fn needs_body(&self) -> bool {
        self.operation.is_metered() || self.operation.model_in_body()
    }

    /// Whether the worst case may be bounded from the headers alone. Streams are
    /// cancelled mid-way (a chat UI's stop button) before any usage arrives and are
    /// then charged their whole reservation: that must be the request's own
    /// max_tokens bound, so they always have their body read.
    pub fn may_reserve_from_headers(&self) -> bool {
        self.operation.is_inference()
            && !self.operation.streams_response()
            && !self.model_id.is_empty()
            && self.content_length.is_some()
    }

    /// Dynamic metadata Envoy's access log and later filters read.
    pub fn attribution_metadata(&self) -> Vec<(&'static str, String)> {
        let mut m = vec![
            ("team", self.who.team.clone()),
            ("requestId", self.request_id.clone()),
            ("model", self.model_id.clone()),
        ];
        if let Some(t) = &self.who.tenant {
            m.push(("tenant", t.clone()));
        }
        if let Some(w) = &self.who.workflow {
            m.push(("workflow", w.clone()));
        }
        m
    }
}

/// Client-sent `x-tally-*` headers: removed so nobody downstream trusts them.
pub fn internal_headers(h: &Headers) -> Vec<String> {
    h.0.iter()
        .filter(|(n, _)| n.starts_with("x-tally-"))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The region from the host, else from an ARN model id, else the default.
fn region(h: &Headers, model_id: &str, default_region: &str) -> String {
    h.get(":authority")
        .and_then(bedrock::region_from_host)
        .or_else(|| {
            bedrock::Arn::parse(model_id)
                .map(|a| a.region)
                .filter(|r| !r.is_empty())
        })
        .unwrap_or(default_region)
        .to_string()
}

fn request_id(h: &Headers) -> String {
    h.get("amz-sdk-invocation-id")
        .or_else(|| h.get("x-request-id"))
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// `app/<id>` from `user-agent` (AWS SDKs append it when configured with an app id).
fn client(h: &Headers) -> Option<String> {
    h.get("user-agent")?
        .split_whitespace()
        .find_map(|token| token.strip_prefix("app/"))
        .filter(|id| !id.is_empty() && id.len() <= MAX_CLIENT_LEN)
        .map(|id| format!("app/{id}"))
}

/// The client's ids (readable in the ledger) plus a fresh uuid (the uniqueness).
fn charge_id(request_id: &str, attempt: u32) -> String {
    format!("{request_id}/{attempt}/{}", uuid::Uuid::new_v4())
}

fn sdk_attempt(h: &Headers) -> u32 {
    // `amz-sdk-request: attempt=2; max=3`
    h.get("amz-sdk-request")
        .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("attempt=")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use tally_config::compiled::CompiledConfig;

    use super::*;

    fn headers(list: &[(&str, &str)]) -> Headers {
        Headers(list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect())
    }

    fn facts(list: &[(&str, &str)]) -> Option<CallFacts> {
        let policy = Policy::new(CompiledConfig::empty());
        CallFacts::from_headers(&headers(list), &Options::default(), &policy, vec![])
    }

    const CONVERSE: (&str, &str) = (":path", "/model/amazon.nova-micro-v1:0/converse");
    const POST: (&str, &str) = (":method", "POST");

    #[test]
    fn region_comes_from_the_host_then_an_arn_then_the_default() {
        let host = facts(&[
            POST,
            CONVERSE,
            (":authority", "bedrock-runtime.eu-west-1.amazonaws.com"),
        ])
        .unwrap();
        assert_eq!(host.region, "eu-west-1");
        let arn = facts(&[
            POST,
            (
                ":path",
                "/model/arn%3Aaws%3Abedrock%3Aap-south-1%3A123456789012%3Aapplication-inference-profile%2Fabc/converse",
            ),
        ])
        .unwrap();
        assert_eq!(arn.region, "ap-south-1");
        assert_eq!(facts(&[POST, CONVERSE]).unwrap().region, "us-east-1");
    }

    #[test]
    fn a_fixed_upstream_region_wins_over_what_the_client_names() {
        let opts = Options {
            upstream_region: Some("eu-central-1".into()),
            ..Options::default()
        };
        let policy = Policy::new(CompiledConfig::empty());
        let spoofed = headers(&[
            POST,
            CONVERSE,
            (":authority", "bedrock-runtime.us-east-2.amazonaws.com"),
        ]);
        let f = CallFacts::from_headers(&spoofed, &opts, &policy, vec![]).unwrap();
        assert_eq!(f.region, "eu-central-1");
    }

    #[test]
    fn the_charge_id_names_the_client_ids_but_is_unique_per_exchange() {
        let sent = [
            POST,
            CONVERSE,
            ("amz-sdk-invocation-id", "inv-1"),
            ("amz-sdk-request", "attempt=2; max=3"),
        ];
        let (f, again) = (facts(&sent).unwrap(), facts(&sent).unwrap());
        assert_eq!(f.request_id, "inv-1");
        assert!(f.charge_id.starts_with("inv-1/2/"), "{}", f.charge_id);
        assert_ne!(f.charge_id, again.charge_id, "same client ids, another exchange");
        let fallback = facts(&[POST, CONVERSE, ("x-request-id", "r-9")]).unwrap();
        assert!(fallback.charge_id.starts_with("r-9/1/"), "{}", fallback.charge_id);
    }

    #[test]
    fn the_client_is_the_sdk_app_id() {
        let ua = (
            "user-agent",
            "aws-sdk-rust/1.3.9 os/linux lang/rust/1.95.0 app/rerank-svc",
        );
        assert_eq!(
            facts(&[POST, CONVERSE, ua]).unwrap().client.as_deref(),
            Some("app/rerank-svc")
        );
        let plain = ("user-agent", "Boto3/1.38.27 md/Botocore#1.38.27");
        assert_eq!(facts(&[POST, CONVERSE, plain]).unwrap().client, None);
    }

    #[test]
    fn an_overlong_or_missing_request_id_is_replaced() {
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        let f = facts(&[POST, CONVERSE, ("amz-sdk-invocation-id", &long)]).unwrap();
        assert_ne!(f.request_id, long);
        assert_eq!(f.request_id.len(), 36, "a generated uuid");
    }

    #[test]
    fn metered_calls_have_their_body_read_and_count_tokens_does_not() {
        let post = |path| facts(&[POST, (":path", path)]).unwrap();
        assert!(post("/guardrail/gr-1/version/1/apply").needs_body(), "text units");
        assert!(post("/async-invoke").needs_body(), "model and seconds");
        assert!(post("/model/amazon.nova-micro-v1:0/converse").needs_body());
        assert!(!post("/model/amazon.nova-micro-v1:0/count-tokens").needs_body());
    }

    #[test]
    fn reads_of_async_jobs_and_other_paths_are_not_calls() {
        assert!(facts(&[(":method", "GET"), (":path", "/async-invoke/abc")]).is_none());
        assert!(facts(&[(":method", "GET"), (":path", "/healthz")]).is_none());
    }

    #[test]
    fn unconfigured_teams_are_charged_to_unknown_and_x_tally_headers_are_stripped() {
        let f = facts(&[POST, CONVERSE, ("x-team-id", "nobody")]).unwrap();
        assert_eq!(f.who.team, "unknown");
        assert_eq!(f.who.claimed_team.as_deref(), Some("nobody"));
        let h = headers(&[("x-tally-cost-usd", "0"), ("x-team-id", "a")]);
        assert_eq!(internal_headers(&h), vec!["x-tally-cost-usd".to_string()]);
    }

    #[test]
    fn only_non_streaming_calls_with_a_length_may_reserve_from_headers() {
        let f = facts(&[POST, CONVERSE, ("content-length", "120")]).unwrap();
        assert!(f.needs_body() && f.may_reserve_from_headers());
        let stream = facts(&[
            POST,
            (":path", "/model/amazon.nova-micro-v1:0/converse-stream"),
            ("content-length", "120"),
        ])
        .unwrap();
        assert!(!stream.may_reserve_from_headers());
        assert!(!facts(&[POST, CONVERSE]).unwrap().may_reserve_from_headers());
    }
}
