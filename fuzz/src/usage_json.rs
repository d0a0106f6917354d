//! Usage JSON in every shape Bedrock returns it (Converse, Anthropic stream
//! events, invocation metrics, Nova, Llama, Titan), with fuzz-chosen counts:
//! response bodies and stream payloads that reach the usage readers' every branch.

use arbitrary::Arbitrary;

/// A token count: mostly small, sometimes anything up to `u64::MAX`.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Count {
    Small(u16),
    Any(u64),
}

impl Count {
    pub fn get(self) -> u64 {
        match self {
            Count::Small(n) => u64::from(n),
            Count::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Shape {
    Converse,
    AnthropicStart,
    AnthropicDelta,
    InvocationMetrics,
    NovaMetadata,
    Llama,
    Titan,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct UsageJson {
    pub shape: Shape,
    pub input: Option<Count>,
    pub output: Option<Count>,
    pub cache_read: Option<Count>,
    pub cache_write: Option<Count>,
    pub write_5m: Option<Count>,
    pub write_1h: Option<Count>,
}

/// `"k":n` for each present count, comma-joined.
fn fields(list: &[(&str, Option<Count>)]) -> String {
    list.iter()
        .filter_map(|(k, v)| v.map(|n| format!("\"{k}\":{}", n.get())))
        .collect::<Vec<_>>()
        .join(",")
}

impl UsageJson {
    pub fn render(&self) -> String {
        let (i, o, r, w) = (self.input, self.output, self.cache_read, self.cache_write);
        match self.shape {
            Shape::Converse => {
                let details = [("5m", self.write_5m), ("1h", self.write_1h)]
                    .iter()
                    .filter_map(|(ttl, n)| n.map(|n| format!(r#"{{"ttl":"{ttl}","inputTokens":{}}}"#, n.get())))
                    .collect::<Vec<_>>()
                    .join(",");
                let counts = fields(&[
                    ("inputTokens", i),
                    ("outputTokens", o),
                    ("cacheReadInputTokens", r),
                    ("cacheWriteInputTokens", w),
                ]);
                let sep = if counts.is_empty() { "" } else { "," };
                format!(r#"{{"output":{{}},"usage":{{{counts}{sep}"cacheDetails":[{details}]}}}}"#)
            }
            Shape::AnthropicStart => {
                let split = fields(&[
                    ("ephemeral_5m_input_tokens", self.write_5m),
                    ("ephemeral_1h_input_tokens", self.write_1h),
                ]);
                let counts = fields(&[
                    ("input_tokens", i),
                    ("output_tokens", o),
                    ("cache_read_input_tokens", r),
                    ("cache_creation_input_tokens", w),
                ]);
                let sep = if counts.is_empty() { "" } else { "," };
                format!(
                    r#"{{"type":"message_start","message":{{"usage":{{{counts}{sep}"cache_creation":{{{split}}}}}}}}}"#
                )
            }
            Shape::AnthropicDelta => {
                format!(
                    r#"{{"type":"message_delta","usage":{{{}}}}}"#,
                    fields(&[("output_tokens", o)])
                )
            }
            Shape::InvocationMetrics => format!(
                r#"{{"type":"message_stop","amazon-bedrock-invocationMetrics":{{{}}}}}"#,
                fields(&[
                    ("inputTokenCount", i),
                    ("outputTokenCount", o),
                    ("cacheReadInputTokenCount", r),
                    ("cacheWriteInputTokenCount", w),
                ])
            ),
            Shape::NovaMetadata => format!(
                r#"{{"metadata":{{"usage":{{{}}}}}}}"#,
                fields(&[("inputTokens", i), ("outputTokens", o)])
            ),
            Shape::Llama => format!(
                r#"{{"generation":"x",{}}}"#,
                fields(&[("prompt_token_count", i), ("generation_token_count", o)])
            )
            .replace(",}", "}"),
            Shape::Titan => format!(
                r#"{{"inputTextTokenCount":{},"results":[{{"tokenCount":{}}},{{"tokenCount":{}}}]}}"#,
                i.map_or(0, Count::get),
                o.map_or(0, Count::get),
                w.map_or(0, Count::get),
            ),
        }
    }
}
