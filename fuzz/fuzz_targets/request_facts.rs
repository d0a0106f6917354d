//! What a request tells before any money moves. The body's facts (output cap,
//! input bound, images by their header size, media it only references): the
//! input bound never falls below the text the body carries, so a reservation
//! never undercounts the prompt. The headers' facts (operation, model, region,
//! team, ids): ids stay within their bounds, the charge id names the request id
//! and is unique per exchange, the team is configured or `unknown`. Nothing panics.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tally_config::money::Nanos;
use tally_extproc::bedrock::MAX_MODEL_ID_LEN;
use tally_extproc::bounds::{self, image};
use tally_extproc::exchange::facts::CallFacts;
use tally_extproc::exchange::{Headers, Options};
use tally_extproc::policy::Policy;
use tally_fuzz::world;

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

const NAMES: [&str; 14] = [
    ":method",
    ":path",
    ":authority",
    "x-team-id",
    "x-tenant-id",
    "x-workflow-id",
    "amz-sdk-invocation-id",
    "x-request-id",
    "amz-sdk-request",
    "user-agent",
    "content-length",
    "x-amzn-bedrock-service-tier",
    "x-tally-cost-usd",
    "X-Team-Id",
];

/// Image files: a real format's magic, then whatever the fuzzer chose.
const MAGICS: [&[u8]; 6] = [
    b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR",
    b"GIF89a",
    b"RIFF\0\0\0\0WEBPVP8 ",
    b"RIFF\0\0\0\0WEBPVP8L",
    b"RIFF\0\0\0\0WEBPVP8X",
    b"\xff\xd8\xff",
];

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    /// A Converse body: text blocks and images, optionally tools and a cache point.
    Converse {
        texts: Vec<String>,
        images: Vec<(u8, Vec<u8>)>,
        max_tokens: Option<u64>,
        tools: Option<String>,
        cache_point: bool,
        s3: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    body: Body,
    anthropic: bool,
    headers: Vec<(Name, String)>,
    principals: Vec<String>,
}

fn json_string(s: &str) -> String {
    let escaped: String = s
        .chars()
        .map(|c| match c {
            '"' => "\\\"".to_string(),
            '\\' => "\\\\".to_string(),
            c if c.is_control() => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        })
        .collect();
    format!("\"{escaped}\"")
}

/// The body's bytes, and the text bytes it carries.
fn render(body: &Body) -> (Vec<u8>, u64) {
    let (texts, images, max_tokens, tools, cache_point, s3) = match body {
        Body::Raw(b) => return (b.clone(), 0),
        Body::Converse {
            texts,
            images,
            max_tokens,
            tools,
            cache_point,
            s3,
        } => (texts, images, max_tokens, tools, cache_point, s3),
    };
    let mut blocks: Vec<String> = texts
        .iter()
        .map(|t| format!(r#"{{"text":{}}}"#, json_string(t)))
        .collect();
    for (magic, rest) in images.iter().take(4) {
        let file = [MAGICS[usize::from(*magic) % MAGICS.len()], rest].concat();
        let b64 = base64::engine::general_purpose::STANDARD.encode(file);
        blocks.push(format!(
            r#"{{"image":{{"format":"png","source":{{"bytes":"{b64}"}}}}}}"#
        ));
    }
    if *s3 {
        blocks.push(r#"{"video":{"source":{"s3Location":{"uri":"s3://b/k"}}}}"#.into());
    }
    if *cache_point {
        blocks.push(r#"{"cachePoint":{"type":"default"}}"#.into());
    }
    let mut fields = vec![format!(
        r#""messages":[{{"role":"user","content":[{}]}}]"#,
        blocks.join(",")
    )];
    if let Some(n) = max_tokens {
        fields.push(format!(r#""inferenceConfig":{{"maxTokens":{n}}}"#));
    }
    if let Some(t) = tools {
        fields.push(format!(
            r#""toolConfig":{{"tools":[{{"toolSpec":{{"name":{}}}}}]}}"#,
            json_string(t)
        ));
    }
    let text: u64 = texts.iter().map(|t| t.len() as u64).sum();
    (format!("{{{}}}", fields.join(",")).into_bytes(), text)
}

fn body_facts(input: &Input) {
    let model = if input.anthropic {
        "anthropic.claude-3-haiku-20240307-v1:0"
    } else {
        world::PRICED_MODEL
    };
    let (bytes, text) = render(&input.body);
    let facts = bounds::request_facts(&bytes, model);
    if let Body::Converse { max_tokens, .. } = &input.body {
        let bound = facts.input.expect("a JSON body has an input bound");
        assert!(
            bound.tokens >= text,
            "input bound {} below the {text} text bytes sent",
            bound.tokens
        );
        assert_eq!(facts.max_output_tokens, *max_tokens);
    }
    let _ = image::size(&bytes);
}

fn headers(list: &[(Name, String)]) -> Headers {
    let name = |n: &Name| match n {
        Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()].to_string(),
        Name::Other(s) => s.clone(),
    };
    Headers(list.iter().map(|(n, v)| (name(n), v.clone())).collect())
}

fuzz_target!(|input: Input| {
    body_facts(&input);
    static POLICY: OnceLock<Policy> = OnceLock::new();
    let policy = POLICY.get_or_init(|| Policy::new(world::config(Nanos(1_000), Nanos(1_000))));
    let headers = headers(&input.headers);
    let opts = Options::default();
    let Some(f) = CallFacts::from_headers(&headers, &opts, policy, input.principals.clone()) else {
        return;
    };
    assert!(!f.request_id.is_empty() && f.request_id.len() <= 128, "{f:?}");
    assert!(f.charge_id.starts_with(&format!("{}/", f.request_id)), "{f:?}");
    let again = CallFacts::from_headers(&headers, &opts, policy, input.principals).expect("the same call");
    assert_ne!(f.charge_id, again.charge_id, "a charge id is unique per exchange");
    assert!(f.model_id.len() <= MAX_MODEL_ID_LEN, "{f:?}");
    assert!(!f.region.is_empty());
    assert!(world::TEAMS.contains(&f.who.team.as_str()), "{f:?}");
    if let Some(c) = &f.client {
        assert!(c.starts_with("app/") && c.len() <= 4 + 64, "{f:?}");
    }
    let _ = (f.needs_body(), f.may_reserve_from_headers(), f.attribution_metadata());
});
