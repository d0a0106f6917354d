//! Bedrock Runtime on the wire: which operation a request is, which model it
//! names, and which region it goes to.
//!
//! Pure parsing of what Envoy hands us (`:path`, `:authority`); no I/O. Model
//! ids arrive percent-encoded by the AWS SDKs (`:` → `%3A`, `/` → `%2F`), some
//! clients leave them raw; both decode to the same id.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

/// The longest model id Bedrock accepts.
pub const MAX_MODEL_ID_LEN: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    InvokeModel,
    InvokeModelWithResponseStream,
    InvokeModelWithBidirectionalStream,
    Converse,
    ConverseStream,
    CountTokens,
    ApplyGuardrail,
    StartAsyncInvoke,
    GetAsyncInvoke,
    ListAsyncInvokes,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::InvokeModel => "InvokeModel",
            Operation::InvokeModelWithResponseStream => "InvokeModelWithResponseStream",
            Operation::InvokeModelWithBidirectionalStream => "InvokeModelWithBidirectionalStream",
            Operation::Converse => "Converse",
            Operation::ConverseStream => "ConverseStream",
            Operation::CountTokens => "CountTokens",
            Operation::ApplyGuardrail => "ApplyGuardrail",
            Operation::StartAsyncInvoke => "StartAsyncInvoke",
            Operation::GetAsyncInvoke => "GetAsyncInvoke",
            Operation::ListAsyncInvokes => "ListAsyncInvokes",
        }
    }

    /// Model inference billed per token, priced from the usage in the response.
    pub fn is_inference(self) -> bool {
        matches!(
            self,
            Operation::InvokeModel
                | Operation::InvokeModelWithResponseStream
                | Operation::InvokeModelWithBidirectionalStream
                | Operation::Converse
                | Operation::ConverseStream
        )
    }

    /// Billed by Bedrock, so priced, reserved and charged: inference, async jobs
    /// (per second / image / job) and guardrails (per text unit). CountTokens is free.
    pub fn is_metered(self) -> bool {
        self.is_inference() || matches!(self, Operation::StartAsyncInvoke | Operation::ApplyGuardrail)
    }

    /// The response is an AWS event stream (`application/vnd.amazon.eventstream`).
    pub fn streams_response(self) -> bool {
        matches!(
            self,
            Operation::InvokeModelWithResponseStream
                | Operation::InvokeModelWithBidirectionalStream
                | Operation::ConverseStream
        )
    }

    /// Converse-family bodies (`usage.inputTokens`) rather than model-native ones.
    pub fn is_converse(self) -> bool {
        matches!(self, Operation::Converse | Operation::ConverseStream)
    }

    /// The model id is in the JSON request body, not in the path.
    pub fn model_in_body(self) -> bool {
        self == Operation::StartAsyncInvoke
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request recognised as a Bedrock Runtime call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub operation: Operation,
    /// The model id as the client named it, percent-decoded. `None` when it is
    /// not in the path (StartAsyncInvoke: read it from the body) or for calls
    /// that name no model.
    pub model_id: Option<String>,
}

/// Recognises a Bedrock Runtime request from its method and `:path`.
/// Anything else (health checks, other services) is `None` and passes untouched.
pub fn parse_call(method: &str, path: &str) -> Option<Call> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    match (method, path) {
        ("POST", "/async-invoke") => {
            return Some(Call {
                operation: Operation::StartAsyncInvoke,
                model_id: None,
            });
        }
        ("GET", "/async-invoke") => {
            return Some(Call {
                operation: Operation::ListAsyncInvokes,
                model_id: None,
            });
        }
        ("GET", p) if p.starts_with("/async-invoke/") => {
            return Some(Call {
                operation: Operation::GetAsyncInvoke,
                model_id: None,
            });
        }
        ("POST", p) if p.starts_with("/guardrail/") && p.ends_with("/apply") => {
            return Some(Call {
                operation: Operation::ApplyGuardrail,
                model_id: guardrail_pricing_id(p),
            });
        }
        _ => {}
    }
    if method != "POST" {
        return None;
    }
    let rest = path.strip_prefix("/model/")?;
    // The operation is the last segment; the model id is everything before it,
    // which may itself contain raw `/` when a client did not encode an ARN.
    let (raw_model, suffix) = rest.rsplit_once('/')?;
    let operation = match suffix {
        "invoke" => Operation::InvokeModel,
        "invoke-with-response-stream" => Operation::InvokeModelWithResponseStream,
        "invoke-with-bidirectional-stream" => Operation::InvokeModelWithBidirectionalStream,
        "converse" => Operation::Converse,
        "converse-stream" => Operation::ConverseStream,
        "count-tokens" => Operation::CountTokens,
        _ => return None,
    };
    if raw_model.is_empty() || raw_model.len() > 3 * MAX_MODEL_ID_LEN {
        return None;
    }
    let model = decode_model_id(raw_model)?;
    if model.is_empty() || model.len() > MAX_MODEL_ID_LEN {
        return None;
    }
    Some(Call {
        operation,
        model_id: Some(model),
    })
}

/// Prefix of the id a guardrail is priced by: `guardrail/<id>`.
pub const GUARDRAIL_PREFIX: &str = "guardrail/";

/// `/guardrail/{id}/version/{v}/apply` → `guardrail/<id>`, the id a catalog
/// entry prices it by (an ARN identifier reduces to the id inside it).
fn guardrail_pricing_id(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/guardrail/")?.strip_suffix("/apply")?;
    let (raw, _version) = rest.rsplit_once("/version/")?;
    let id = decode_model_id(raw)?;
    let short = id.rsplit_once("guardrail/").map_or(id.as_str(), |(_, id)| id);
    (!short.is_empty() && short.len() <= 256 && !short.contains('/')).then(|| format!("{GUARDRAIL_PREFIX}{short}"))
}

/// Percent-decodes a model id; `None` if it does not decode to UTF-8.
pub fn decode_model_id(raw: &str) -> Option<String> {
    let decoded: Cow<'_, str> = percent_decode_str(raw).decode_utf8().ok()?;
    Some(decoded.into_owned())
}

/// The model id a price is looked up by: foundation-model and inference-profile
/// ARNs reduce to the id inside them (`…:inference-profile/us.anthropic.x` →
/// `us.anthropic.x`); opaque ARNs (application inference profiles, provisioned,
/// custom and imported models) stay whole, to be priced through an alias.
pub fn pricing_model_id(model_id: &str) -> &str {
    let Some(arn) = Arn::parse(model_id) else {
        return model_id;
    };
    match arn.resource_type {
        "foundation-model" | "inference-profile" => arn.resource_id,
        _ => model_id,
    }
}

/// The parts of a Bedrock ARN we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub region: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
}

impl<'a> Arn<'a> {
    /// `arn:<partition>:bedrock:<region>:<account>:<type>/<id>`.
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut parts = s.splitn(6, ':');
        let (arn, _partition, service, region, _account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if arn != "arn" || service != "bedrock" {
            return None;
        }
        let (resource_type, resource_id) = resource.split_once('/')?;
        Some(Arn {
            region,
            resource_type,
            resource_id,
        })
    }
}

/// The region of a Bedrock Runtime endpoint host
/// (`bedrock-runtime.us-east-1.amazonaws.com`, `bedrock-runtime-fips.us-west-2.amazonaws.com`,
/// VPC endpoint names `vpce-….bedrock-runtime.eu-west-1.vpce.amazonaws.com`).
pub fn region_from_host(authority: &str) -> Option<&str> {
    let host = authority.rsplit_once(':').map_or(authority, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            authority
        }
    });
    let mut labels = host.split('.');
    while let Some(label) = labels.next() {
        if label == "bedrock-runtime" || label == "bedrock-runtime-fips" {
            let region = labels.next()?;
            return looks_like_region(region).then_some(region);
        }
    }
    None
}

fn looks_like_region(s: &str) -> bool {
    // us-east-1, ap-southeast-2, us-gov-west-1, eu-central-2
    s.len() <= 20
        && s.matches('-').count() >= 2
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &str, path: &str) -> Option<(Operation, Option<String>)> {
        parse_call(method, path).map(|c| (c.operation, c.model_id))
    }

    #[test]
    fn recognises_every_operation() {
        let m = Some("anthropic.claude-3-haiku-20240307-v1:0".to_string());
        let cases = [
            (
                "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke",
                Operation::InvokeModel,
            ),
            (
                "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream",
                Operation::InvokeModelWithResponseStream,
            ),
            (
                "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-bidirectional-stream",
                Operation::InvokeModelWithBidirectionalStream,
            ),
            (
                "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
                Operation::Converse,
            ),
            (
                "/model/anthropic.claude-3-haiku-20240307-v1:0/converse-stream",
                Operation::ConverseStream,
            ),
            (
                "/model/anthropic.claude-3-haiku-20240307-v1%3a0/count-tokens",
                Operation::CountTokens,
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(op("POST", path), Some((expected, m.clone())), "{path}");
        }
        assert_eq!(op("POST", "/async-invoke"), Some((Operation::StartAsyncInvoke, None)));
        assert_eq!(
            op("GET", "/async-invoke?maxResults=10"),
            Some((Operation::ListAsyncInvokes, None))
        );
        assert_eq!(
            op("GET", "/async-invoke/arn%3Aaws%3Abedrock%3A"),
            Some((Operation::GetAsyncInvoke, None))
        );
        assert_eq!(
            op("POST", "/guardrail/gr-1/version/1/apply"),
            Some((Operation::ApplyGuardrail, Some("guardrail/gr-1".into())))
        );
        // an ARN identifier, as the SDKs encode it, is priced by the id inside it
        assert_eq!(
            op(
                "POST",
                "/guardrail/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aguardrail%2Fabc123/version/DRAFT/apply"
            ),
            Some((Operation::ApplyGuardrail, Some("guardrail/abc123".into())))
        );
    }

    #[test]
    fn passes_over_what_is_not_bedrock() {
        for (m, p) in [
            ("GET", "/healthz"),
            ("GET", "/model/x/invoke"),
            ("POST", "/model//invoke"),
            ("POST", "/model/x/delete"),
            ("POST", "/v1/chat/completions"),
            ("POST", "/model/%FF%FE/invoke"),
            ("POST", "/model"),
        ] {
            assert_eq!(parse_call(m, p), None, "{m} {p}");
        }
        let huge = format!("/model/{}/invoke", "a".repeat(MAX_MODEL_ID_LEN + 1));
        assert_eq!(parse_call("POST", &huge), None);
    }

    #[test]
    fn decodes_arns_encoded_or_raw() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3";
        let encoded =
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fa1b2c3/converse";
        assert_eq!(op("POST", encoded), Some((Operation::Converse, Some(arn.to_string()))));
        assert_eq!(
            op("POST", &format!("/model/{arn}/converse")),
            Some((Operation::Converse, Some(arn.to_string())))
        );
    }

    #[test]
    fn reduces_arns_to_the_priced_id() {
        assert_eq!(
            pricing_model_id("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(
            pricing_model_id(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
            ),
            "us.anthropic.claude-3-haiku-20240307-v1:0"
        );
        let opaque = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3";
        assert_eq!(pricing_model_id(opaque), opaque);
        assert_eq!(pricing_model_id("amazon.nova-pro-v1:0"), "amazon.nova-pro-v1:0");
        assert_eq!(Arn::parse(opaque).unwrap().region, "us-east-1");
        assert_eq!(Arn::parse("arn:aws:s3:::bucket/key"), None);
    }

    #[test]
    fn region_from_endpoint_hosts() {
        assert_eq!(
            region_from_host("bedrock-runtime.us-east-1.amazonaws.com"),
            Some("us-east-1")
        );
        assert_eq!(
            region_from_host("bedrock-runtime.eu-central-2.amazonaws.com:443"),
            Some("eu-central-2")
        );
        assert_eq!(
            region_from_host("bedrock-runtime-fips.us-gov-west-1.amazonaws.com"),
            Some("us-gov-west-1")
        );
        assert_eq!(
            region_from_host("vpce-0abc.bedrock-runtime.ap-southeast-2.vpce.amazonaws.com"),
            Some("ap-southeast-2")
        );
        assert_eq!(region_from_host("127.0.0.1:8080"), None);
        assert_eq!(region_from_host("tally-gateway.tally.svc:8080"), None);
    }
}
