//! An exchange script: what the fuzzer chooses. A few exchanges live at once
//! over one store; each step sends one ext_proc phase to one of them, shaped
//! like what Envoy and Bedrock send (teams, models, paths, bodies, token-count
//! headers, event-stream frames) with room for anything else.

use arbitrary::Arbitrary;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tally_extproc::exchange::Headers;

use crate::frames::{Corruption, FrameSpec};
use crate::usage_json::{Count, UsageJson};
use crate::world::{self, PRICED_MODEL};

/// Exchanges alive at once.
pub const SLOTS: usize = 3;
/// Steps run per input (more are ignored, so one input stays fast).
pub const MAX_STEPS: usize = 48;

#[derive(Arbitrary, Debug)]
pub struct Script {
    /// The Block team's limit, in micro-USD (so a few calls can exhaust it).
    pub block_limit_micros: u16,
    pub warn_limit_micros: u16,
    pub fail_closed: bool,
    /// `--request-body when-needed` instead of `always`.
    pub when_needed: bool,
    pub steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
pub struct Step {
    pub slot: u8,
    pub action: Action,
}

#[derive(Arbitrary, Debug)]
pub enum Action {
    /// A new exchange in the slot (the one there, if any, ends first).
    RequestHeaders(RequestHead),
    RequestBody {
        body: RequestBodySpec,
        end_of_stream: bool,
    },
    RequestTrailers,
    ResponseHeaders(ResponseHead),
    ResponseBody {
        body: ResponseBodySpec,
        end_of_stream: bool,
    },
    /// Envoy ends the stream (client gone, reset).
    Abandon,
    /// A message could not be read: `stream_failed`, then the stream ends.
    StreamFailed,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Pick {
    Block,
    Warn,
    Free,
    Unconfigured,
    Other(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Model {
    Priced,
    /// The SDKs' encoding (`:` → `%3A`).
    PricedEncoded,
    /// A foundation-model ARN naming the priced model.
    PricedArn,
    Unpriced,
    Other(String),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    Invoke,
    InvokeStream,
    Converse,
    ConverseStream,
    CountTokens,
    StartAsyncInvoke,
    GetAsyncInvoke,
    ApplyGuardrail,
    NotBedrock,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct RequestHead {
    pub team: Option<Pick>,
    pub tenant: Option<Pick>,
    pub workflow: Option<Pick>,
    pub model: Model,
    pub op: Op,
    pub content_length: Option<u32>,
    pub end_of_stream: bool,
    pub host_region: Option<String>,
    pub invocation_id: Option<String>,
    pub attempt: Option<u8>,
    pub internal_header: bool,
}

#[derive(Arbitrary, Debug)]
pub enum RequestBodySpec {
    /// A JSON body naming its output cap in one family's spelling.
    Json {
        max_tokens: Option<Count>,
        spelling: u8,
        model_id: Option<Model>,
        tier: Option<String>,
        padding: u16,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub struct ResponseHead {
    pub status: Status,
    pub input: Option<Count>,
    pub output: Option<Count>,
    pub cache_read: Option<Count>,
    pub cache_write: Option<Count>,
    pub garbage_count: Option<String>,
    pub end_of_stream: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Status {
    Ok,
    Throttled,
    BadRequest,
    ServerError,
    Missing,
    Other(u16),
}

#[derive(Arbitrary, Debug)]
pub enum ResponseBodySpec {
    Json(UsageJson),
    /// Event-stream frames; `cut` bytes of them go now, the rest with the next body.
    Frames {
        frames: Vec<FrameSpec>,
        corruption: Option<Corruption>,
        cut: Option<u16>,
    },
    Raw(Vec<u8>),
}

impl Pick {
    pub fn name(&self) -> &str {
        match self {
            Pick::Block => world::BLOCK_TEAM,
            Pick::Warn => world::WARN_TEAM,
            Pick::Free => world::FREE_TEAM,
            Pick::Unconfigured => "nobody",
            Pick::Other(s) => s,
        }
    }

    /// As a workflow or tenant id of the Block team.
    pub fn sub_id(&self) -> &str {
        match self {
            Pick::Block => world::LIMITED_WORKFLOW,
            Pick::Warn => world::RESTRICTED_WORKFLOW,
            Pick::Free => world::LIMITED_TENANT,
            other => other.name(),
        }
    }
}

impl Model {
    pub fn id(&self) -> String {
        match self {
            Model::Priced => PRICED_MODEL.into(),
            Model::PricedEncoded => PRICED_MODEL.replace(':', "%3A"),
            Model::PricedArn => {
                let arn = format!("arn:aws:bedrock:eu-west-1::foundation-model/{PRICED_MODEL}");
                utf8_percent_encode(&arn, NON_ALPHANUMERIC).to_string()
            }
            Model::Unpriced => "vendor.unpriced-v1:0".into(),
            Model::Other(s) => s.clone(),
        }
    }
}

impl Op {
    fn path(self, model: &str) -> (&'static str, String) {
        let m = |suffix: &str| ("POST", format!("/model/{model}/{suffix}"));
        match self {
            Op::Invoke => m("invoke"),
            Op::InvokeStream => m("invoke-with-response-stream"),
            Op::Converse => m("converse"),
            Op::ConverseStream => m("converse-stream"),
            Op::CountTokens => m("count-tokens"),
            Op::StartAsyncInvoke => ("POST", "/async-invoke".into()),
            Op::GetAsyncInvoke => ("GET", "/async-invoke/abc".into()),
            Op::ApplyGuardrail => ("POST", "/guardrail/g1/version/1/apply".into()),
            Op::NotBedrock => ("GET", "/healthz".into()),
        }
    }
}

impl RequestHead {
    pub fn headers(&self) -> Headers {
        let (method, path) = self.op.path(&self.model.id());
        let mut h = vec![(":method".to_string(), method.to_string()), (":path".into(), path)];
        let mut add = |n: &str, v: Option<String>| {
            if let Some(v) = v {
                h.push((n.to_string(), v));
            }
        };
        add("x-team-id", self.team.as_ref().map(|p| p.name().to_string()));
        add("x-tenant-id", self.tenant.as_ref().map(|p| p.sub_id().to_string()));
        add("x-workflow-id", self.workflow.as_ref().map(|p| p.sub_id().to_string()));
        add("content-length", self.content_length.map(|n| n.to_string()));
        add(
            ":authority",
            self.host_region
                .as_ref()
                .map(|r| format!("bedrock-runtime.{r}.amazonaws.com")),
        );
        add("amz-sdk-invocation-id", self.invocation_id.clone());
        add("amz-sdk-request", self.attempt.map(|a| format!("attempt={a}; max=3")));
        add("x-tally-cost-usd", self.internal_header.then(|| "0".to_string()));
        Headers(h)
    }
}

impl RequestBodySpec {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            RequestBodySpec::Raw(b) => b.clone(),
            RequestBodySpec::Json {
                max_tokens,
                spelling,
                model_id,
                tier,
                padding,
            } => {
                let mut fields = vec![r#""messages":[]"#.to_string()];
                if let Some(n) = max_tokens.map(Count::get) {
                    fields.push(match spelling % 5 {
                        0 => format!(r#""max_tokens":{n}"#),
                        1 => format!(r#""inferenceConfig":{{"maxTokens":{n}}}"#),
                        2 => format!(r#""inferenceConfig":{{"max_new_tokens":{n}}}"#),
                        3 => format!(r#""max_gen_len":{n}"#),
                        _ => format!(r#""textGenerationConfig":{{"maxTokenCount":{n}}}"#),
                    });
                }
                if let Some(m) = model_id {
                    fields.push(format!(r#""modelId":"{}""#, m.id().replace(['"', '\\'], "")));
                }
                if let Some(t) = tier {
                    fields.push(format!(r#""serviceTier":{{"type":"{}"}}"#, t.replace(['"', '\\'], "")));
                }
                let mut body = format!("{{{}}}", fields.join(",")).into_bytes();
                body.resize(body.len() + usize::from(*padding % 4096), b' ');
                body
            }
        }
    }
}

impl ResponseHead {
    pub fn headers(&self) -> Headers {
        let status = match self.status {
            Status::Ok => Some("200".to_string()),
            Status::Throttled => Some("429".into()),
            Status::BadRequest => Some("400".into()),
            Status::ServerError => Some("500".into()),
            Status::Missing => None,
            Status::Other(n) => Some(n.to_string()),
        };
        let mut h = vec![];
        let counts = [
            (":status", status),
            (
                "x-amzn-bedrock-input-token-count",
                self.input.map(|c| c.get().to_string()),
            ),
            (
                "x-amzn-bedrock-output-token-count",
                self.output.map(|c| c.get().to_string()),
            ),
            (
                "x-amzn-bedrock-cache-read-input-token-count",
                self.cache_read.map(|c| c.get().to_string()),
            ),
            (
                "x-amzn-bedrock-cache-write-input-token-count",
                self.cache_write.map(|c| c.get().to_string()),
            ),
            ("x-amzn-bedrock-output-token-count", self.garbage_count.clone()),
        ];
        for (n, v) in counts {
            if let Some(v) = v {
                h.push((n.to_string(), v));
            }
        }
        Headers(h)
    }
}
