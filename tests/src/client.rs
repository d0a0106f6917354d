//! AWS SDK clients the way applications build them: `endpoint_url` at the
//! gateway, static credentials, and attribution headers on every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_bedrockruntime::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_bedrockruntime::error::{BoxError, SdkError};
use aws_sdk_bedrockruntime::operation::apply_guardrail::{ApplyGuardrailError, ApplyGuardrailOutput};
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::operation::converse_stream::{ConverseStreamError, ConverseStreamOutput};
use aws_sdk_bedrockruntime::operation::count_tokens::{CountTokensError, CountTokensOutput};
use aws_sdk_bedrockruntime::operation::invoke_model::{InvokeModelError, InvokeModelOutput};
use aws_sdk_bedrockruntime::operation::invoke_model_with_response_stream::{
    InvokeModelWithResponseStreamError, InvokeModelWithResponseStreamOutput,
};
use aws_sdk_bedrockruntime::operation::start_async_invoke::{StartAsyncInvokeError, StartAsyncInvokeOutput};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    AsyncInvokeOutputDataConfig, AsyncInvokeS3OutputDataConfig, ConverseStreamOutput as ConverseStreamEvent,
    ConverseTokensRequest, CountTokensInput, GuardrailContentBlock, GuardrailContentSource, GuardrailTextBlock,
    ResponseStream,
};
use aws_smithy_types::Document;

/// The attribution headers a client sends (`x-team-id`, `x-tenant-id`, `x-workflow-id`); `None` = not sent.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    pub team: Option<String>,
    pub tenant: Option<String>,
    pub workflow: Option<String>,
}

impl Attribution {
    pub fn new(team: &str, tenant: &str, workflow: &str) -> Attribution {
        Attribution {
            team: Some(team.into()),
            tenant: Some(tenant.into()),
            workflow: Some(workflow.into()),
        }
    }

    pub fn team(team: &str) -> Attribution {
        Attribution {
            team: Some(team.into()),
            ..Attribution::default()
        }
    }

    pub fn none() -> Attribution {
        Attribution::default()
    }
}

/// Adds the headers before signing, so the client's own signature covers them (as an app's would).
#[derive(Debug)]
struct AttributionHeaders(Attribution);

impl Intercept for AttributionHeaders {
    fn name(&self) -> &'static str {
        "TallyAttributionHeaders"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.request_mut().headers_mut();
        for (name, value) in [
            ("x-team-id", &self.0.team),
            ("x-tenant-id", &self.0.tenant),
            ("x-workflow-id", &self.0.workflow),
        ] {
            if let Some(v) = value {
                headers.insert(name, v.clone());
            }
        }
        Ok(())
    }
}

/// Response headers (lowercased names) of every response a client received, oldest first.
#[derive(Debug, Clone, Default)]
pub struct ResponseLog(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl ResponseLog {
    /// Headers of the last response; panics when there was none.
    pub fn last(&self) -> BTreeMap<String, String> {
        self.0
            .lock()
            .expect("log lock")
            .last()
            .cloned()
            .expect("the client received a response")
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("log lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug)]
struct RecordResponses(ResponseLog);

impl Intercept for RecordResponses {
    fn name(&self) -> &'static str {
        "TallyRecordResponses"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context
            .response()
            .headers()
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        self.0.0.lock().expect("log lock").push(headers);
        Ok(())
    }
}

/// An SDK client plus the headers of the responses it received.
#[derive(Debug, Clone)]
pub struct AppClient {
    pub sdk: aws_sdk_bedrockruntime::Client,
    pub responses: ResponseLog,
}

/// The calls tests make most, sent as an application would; each returns the SDK's own result.
impl AppClient {
    /// `Converse` of `model` with one user message.
    pub async fn converse(&self, model: &str, text: &str) -> Result<ConverseOutput, SdkError<ConverseError>> {
        self.sdk
            .converse()
            .model_id(model)
            .messages(user_message(text))
            .send()
            .await
    }

    /// `ConverseStream` of `model` with one user message (the stream still to be read).
    pub async fn converse_stream(
        &self,
        model: &str,
        text: &str,
    ) -> Result<ConverseStreamOutput, SdkError<ConverseStreamError>> {
        self.sdk
            .converse_stream()
            .model_id(model)
            .messages(user_message(text))
            .send()
            .await
    }

    /// `InvokeModel` of `model` with a body in its family's format.
    pub async fn invoke(&self, model: &str, body: Blob) -> Result<InvokeModelOutput, SdkError<InvokeModelError>> {
        self.sdk.invoke_model().model_id(model).body(body).send().await
    }

    /// `InvokeModelWithResponseStream` of `model` (the stream still to be read).
    pub async fn invoke_stream(
        &self,
        model: &str,
        body: Blob,
    ) -> Result<InvokeModelWithResponseStreamOutput, SdkError<InvokeModelWithResponseStreamError>> {
        self.sdk
            .invoke_model_with_response_stream()
            .model_id(model)
            .body(body)
            .send()
            .await
    }

    /// `CountTokens` of `model` for one Converse user message.
    pub async fn count_tokens(&self, model: &str, text: &str) -> Result<CountTokensOutput, SdkError<CountTokensError>> {
        let input = CountTokensInput::Converse(ConverseTokensRequest::builder().messages(user_message(text)).build());
        self.sdk.count_tokens().model_id(model).input(input).send().await
    }

    /// `StartAsyncInvoke` of a Nova Reel-shaped text-to-video job of `seconds` seconds.
    pub async fn start_video_job(
        &self,
        model: &str,
        seconds: u32,
    ) -> Result<StartAsyncInvokeOutput, SdkError<StartAsyncInvokeError>> {
        let input = Document::Object(
            [
                ("taskType".to_string(), Document::from("TEXT_VIDEO")),
                (
                    "textToVideoParams".to_string(),
                    Document::Object([("text".to_string(), Document::from("a cat"))].into()),
                ),
                (
                    "videoGenerationConfig".to_string(),
                    Document::Object([("durationSeconds".to_string(), Document::from(u64::from(seconds)))].into()),
                ),
            ]
            .into(),
        );
        let output = AsyncInvokeS3OutputDataConfig::builder()
            .s3_uri("s3://videos/out/")
            .build()
            .expect("an S3 output config");
        self.sdk
            .start_async_invoke()
            .model_id(model)
            .model_input(input)
            .output_data_config(AsyncInvokeOutputDataConfig::S3OutputDataConfig(output))
            .send()
            .await
    }

    /// `ApplyGuardrail` of guardrail `id` (version 1) to one text block of user input.
    pub async fn apply_guardrail(
        &self,
        id: &str,
        text: &str,
    ) -> Result<ApplyGuardrailOutput, SdkError<ApplyGuardrailError>> {
        let block = GuardrailTextBlock::builder().text(text).build().expect("a text block");
        self.sdk
            .apply_guardrail()
            .guardrail_identifier(id)
            .guardrail_version("1")
            .source(GuardrailContentSource::Input)
            .content(GuardrailContentBlock::Text(block))
            .send()
            .await
    }

    /// A header of the last response; panics when it has none.
    pub fn last_header(&self, name: &str) -> String {
        let headers = self.responses.last();
        headers
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("response has no {name}: {headers:?}"))
    }

    /// `x-tally-request-id` of the last response: the `requestId` of its ledger record.
    pub fn request_id(&self) -> String {
        self.last_header("x-tally-request-id")
    }
}

/// An invoke stream of `model` read for its first `events` chunk events, then
/// hung up on (a client's stop button); the call's request id.
pub async fn invoke_stream_cut_after(client: &AppClient, model: &str, body: Blob, events: usize) -> String {
    let mut out = client.invoke_stream(model, body).await.expect("stream starts");
    let id = client.request_id();
    for _ in 0..events {
        let event = out.body.recv().await.expect("event").expect("stream open");
        assert!(matches!(event, ResponseStream::Chunk(_)));
    }
    id
}

/// Reads an invoke stream to its end; how many `chunk` events it carried.
pub async fn drain_invoke_stream(mut out: InvokeModelWithResponseStreamOutput) -> usize {
    let mut chunks = 0;
    while let Some(event) = out.body.recv().await.expect("stream event") {
        chunks += usize::from(matches!(event, ResponseStream::Chunk(_)));
    }
    chunks
}

/// Reads a ConverseStream to its end; `(input, output)` tokens of its metadata event.
pub async fn drain_converse_stream(mut out: ConverseStreamOutput) -> Option<(i32, i32)> {
    let mut usage = None;
    while let Some(event) = out.stream.recv().await.expect("stream event") {
        if let ConverseStreamEvent::Metadata(m) = event {
            usage = m.usage().map(|u| (u.input_tokens(), u.output_tokens()));
        }
    }
    usage
}

/// Credentials of the application (not the gateway's: in signing mode Bedrock must see the gateway's).
pub const CLIENT_ACCESS_KEY: &str = "AKIDAPPLICATION";
pub const CLIENT_SECRET_KEY: &str = "application-secret";

/// A Bedrock Runtime client for `endpoint_url`, us-east-1, with `attribution`; retries off when `retries` is false.
pub fn bedrock_client(endpoint_url: &str, attribution: Attribution, retries: bool) -> AppClient {
    let responses = ResponseLog::default();
    let retry = if retries {
        RetryConfig::standard()
    } else {
        RetryConfig::disabled()
    };
    let config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            CLIENT_ACCESS_KEY,
            CLIENT_SECRET_KEY,
            None,
            None,
            "tally-e2e",
        ))
        .endpoint_url(endpoint_url)
        .retry_config(retry)
        .interceptor(AttributionHeaders(attribution))
        .interceptor(RecordResponses(responses.clone()))
        .build();
    AppClient {
        sdk: aws_sdk_bedrockruntime::Client::from_conf(config),
        responses,
    }
}

/// A Converse user message with one text block.
pub fn user_message(text: &str) -> aws_sdk_bedrockruntime::types::Message {
    use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message};
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text.to_string()))
        .build()
        .expect("message has role and content")
}

/// An `InvokeModel` body in the Anthropic Messages format.
pub fn anthropic_body(text: &str) -> Blob {
    let body = serde_json::json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 512,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    });
    Blob::new(body.to_string())
}

/// An `InvokeModel` body in the Amazon Nova format.
pub fn nova_body(text: &str) -> Blob {
    let body = serde_json::json!({
        "schemaVersion": "messages-v1",
        "messages": [{"role": "user", "content": [{"text": text}]}],
        "inferenceConfig": {"maxTokens": 512},
    });
    Blob::new(body.to_string())
}

/// An `InvokeModel` body in the Meta Llama format.
pub fn llama_body(text: &str) -> Blob {
    let body = serde_json::json!({"prompt": text, "max_gen_len": 512});
    Blob::new(body.to_string())
}

/// Runs `tests/fixtures/e2e/boto3_client.py` with the cached Python (boto3) against
/// `endpoint_url`; `args` are its flags. Returns one JSON value per call.
pub async fn boto3_calls(endpoint_url: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let script = crate::tools::workspace_root().join("tests/fixtures/e2e/boto3_client.py");
    let mut cmd = tokio::process::Command::new(crate::tools::python());
    cmd.arg(&script).args(["--endpoint", endpoint_url]).args(args);
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_BEARER_TOKEN_BEDROCK",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", CLIENT_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", CLIENT_SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("boto3 script finished within 120 s")
        .expect("run boto3 script (scripts/tools/python.sh installs boto3)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "boto3 script failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("boto3 script printed {l:?}: {e}")))
        .collect()
}
