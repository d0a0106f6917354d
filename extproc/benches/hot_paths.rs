//! Criterion micro-benchmarks of the pure functions on every request's path:
//! recognising a Bedrock call, finding its price in a realistic catalog,
//! pricing a usage, and following the usage inside a response event stream.
//!
//! Run: `cargo bench -p tally-extproc --bench hot_paths` (see docs/benchmarks.md).
//! These are measurements, not tests: nothing here asserts a time.

use std::hint::black_box;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine as _;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tally_config::compiled::{Alias, Catalog, PriceEntry, Prices};
use tally_config::money::NanosPerMillion;
use tally_config::pricing::{PriceBook, Usage, cost};
use tally_extproc::bedrock::parse_call;
use tally_extproc::eventstream::StreamUsage;

/// The catalog Tally ships (`examples/catalog/bedrock-on-demand.yaml`, ~200 entries in
/// precedence order), read with a line parser so the bench needs no YAML crate.
fn shipped_catalog() -> Catalog {
    const YAML: &str = include_str!("../../examples/catalog/bedrock-on-demand.yaml");
    const ALIASES: &str = include_str!("../../examples/catalog/application-profiles.yaml");
    fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
        let start = line.find(&format!("{key}: "))? + key.len() + 2;
        let rest = &line[start..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim().trim_matches('"'))
    }
    fn price(line: &str, key: &str) -> NanosPerMillion {
        field(line, key)
            .map(|v| NanosPerMillion::parse_usd(v).expect("catalog price"))
            .unwrap_or_default()
    }
    let entries = YAML
        .lines()
        .filter(|l| l.trim_start().starts_with("- {match:"))
        .map(|line| {
            let regions = line
                .find("regions: [")
                .map(|i| {
                    let rest = &line[i + "regions: [".len()..];
                    rest[..rest.find(']').unwrap()]
                        .split(',')
                        .map(|r| r.trim().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let write_5m = price(line, "cacheWrite5mPerMillion");
            let write_1h =
                field(line, "cacheWrite1hPerMillion").map_or(write_5m, |_| price(line, "cacheWrite1hPerMillion"));
            PriceEntry {
                pattern: field(line, "{match").unwrap().to_string(),
                regions,
                prices: Prices {
                    input: price(line, "inputPerMillion"),
                    output: price(line, "outputPerMillion"),
                    cache_read: price(line, "cacheReadPerMillion"),
                    cache_write_5m: write_5m,
                    cache_write_1h: write_1h,
                },
                max_output_tokens: field(line, "maxOutputTokens")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(4096),
                source: "bedrock-on-demand".into(),
                ..PriceEntry::default()
            }
        })
        .collect::<Vec<_>>();
    assert!(
        entries.len() > 150,
        "catalog parse found only {} entries",
        entries.len()
    );
    let ids: Vec<&str> = ALIASES
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- id: "))
        .collect();
    let models: Vec<&str> = ALIASES
        .lines()
        .filter_map(|l| l.trim().strip_prefix("model: "))
        .collect();
    let aliases = ids
        .iter()
        .zip(&models)
        .map(|(id, m)| Alias {
            id: id.to_string(),
            model: m.to_string(),
        })
        .collect();
    Catalog { entries, aliases }
}

fn bench_parse_call(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_call");
    let cases = [
        ("converse", "/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse"),
        (
            "converse_stream_geo",
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/converse-stream",
        ),
        ("invoke", "/model/amazon.nova-2-lite-v1:0/invoke"),
        (
            "invoke_encoded_arn",
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fsb7k2m9x1q4w/invoke-with-response-stream",
        ),
        ("not_bedrock", "/healthz"),
    ];
    for (name, path) in cases {
        g.bench_with_input(BenchmarkId::from_parameter(name), path, |b, path| {
            b.iter(|| parse_call(black_box("POST"), black_box(path)))
        });
    }
    g.finish();
}

fn bench_pricing(c: &mut Criterion) {
    let catalog = shipped_catalog();
    let book = PriceBook::new(&catalog);
    let mut g = c.benchmark_group("pricebook_lookup");
    // First entry, late entry, geo fallback (us.X priced as X), region-scoped entry, alias, miss.
    let cases = [
        ("first_entry", "anthropic.claude-3-5-haiku-20241022-v1:0", "us-east-1"),
        ("late_entry", "mistral.voxtral-mini-3b-2507", "us-east-1"),
        (
            "geo_fallback",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us-east-1",
        ),
        ("regional", "meta.llama3-70b-instruct-v1:0", "ap-south-1"),
        ("miss", "acme.unknown-model-v9", "us-east-1"),
    ];
    for (name, model, region) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                book.lookup(black_box(model), black_box(region))
                    .map(|p| p.entry.max_output_tokens)
            })
        });
    }
    let alias = catalog.aliases[0].id.clone();
    g.bench_function("alias_then_lookup", |b| {
        b.iter(|| {
            let model = book.alias(black_box(&alias));
            book.lookup(model, black_box("us-east-1"))
                .map(|p| p.entry.max_output_tokens)
        })
    });
    g.finish();

    let prices = book
        .lookup("anthropic.claude-sonnet-4-5-20250929-v1:0", "us-east-1")
        .unwrap()
        .entry
        .prices;
    let usage = Usage {
        input: 1_234,
        output: 567,
        cache_read: 8_900,
        cache_write_5m: 120,
        cache_write_1h: 30,
    };
    c.bench_function("pricing_cost", |b| {
        b.iter(|| cost(black_box(&usage), black_box(&prices)))
    });
}

fn frame(message_type: &str, event_type: &str, payload: &[u8]) -> Vec<u8> {
    let msg = Message::new(payload.to_vec())
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.to_string().into()),
        ));
    let mut out = Vec::new();
    write_message_to(&msg, &mut out).expect("encode frame");
    out
}

/// A ConverseStream response the way Bedrock sends it: start, `deltas` text deltas
/// (with the `p` padding field Bedrock adds), stop, and the final metadata with usage.
fn converse_stream(deltas: usize) -> Vec<u8> {
    let mut out = frame("event", "messageStart", br#"{"p":"abcdefghijkl","role":"assistant"}"#);
    for i in 0..deltas {
        let payload = format!(
            r#"{{"contentBlockIndex":0,"delta":{{"text":"token {i} of a longer answer, "}},"p":"abcdefghijklmnopqrstuvwxyzABCDEF"}}"#
        );
        out.extend(frame("event", "contentBlockDelta", payload.as_bytes()));
    }
    out.extend(frame(
        "event",
        "contentBlockStop",
        br#"{"contentBlockIndex":0,"p":"abcd"}"#,
    ));
    out.extend(frame(
        "event",
        "messageStop",
        br#"{"p":"abcdefgh","stopReason":"end_turn"}"#,
    ));
    out.extend(frame(
        "event",
        "metadata",
        br#"{"metrics":{"latencyMs":812},"p":"abc","usage":{"inputTokens":1234,"outputTokens":567,"cacheReadInputTokens":8900,"cacheWriteInputTokens":150,"totalTokens":10851}}"#,
    ));
    out
}

/// An InvokeModelWithResponseStream (Anthropic) response: base64 model JSON inside `chunk` events.
fn invoke_stream(deltas: usize) -> Vec<u8> {
    let chunk = |json: &str| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(json);
        frame(
            "event",
            "chunk",
            format!(r#"{{"bytes":"{b64}","p":"abcdefghijklmnop"}}"#).as_bytes(),
        )
    };
    let mut out = chunk(
        r#"{"type":"message_start","message":{"role":"assistant","usage":{"input_tokens":1234,"output_tokens":1,"cache_read_input_tokens":8900,"cache_creation_input_tokens":150}}}"#,
    );
    for i in 0..deltas {
        out.extend(chunk(&format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"token {i} of a longer answer, "}}}}"#
        )));
    }
    out.extend(chunk(
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":567}}"#,
    ));
    out.extend(chunk(r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":1234,"outputTokenCount":567,"invocationLatency":812,"firstByteLatency":120}}"#));
    out
}

fn bench_eventstream(c: &mut Criterion) {
    let mut g = c.benchmark_group("eventstream_push");
    for (name, stream) in [
        ("converse_stream", converse_stream(500)),
        ("invoke_stream", invoke_stream(500)),
    ] {
        g.throughput(Throughput::Bytes(stream.len() as u64));
        // Envoy hands the body over in pieces; 16 KiB is its usual buffer slice, 100 B is a worst case.
        for chunk in [16 * 1024, 1024, 100] {
            g.bench_with_input(
                BenchmarkId::new(name, format!("{chunk}B_chunks")),
                &stream,
                |b, stream| {
                    b.iter(|| {
                        let mut s = StreamUsage::new();
                        for piece in stream.chunks(chunk) {
                            s.push(black_box(piece));
                        }
                        assert!(s.usage.any(), "the bench stream carries usage");
                        s.frames
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench_parse_call, bench_pricing, bench_eventstream);
criterion_main!(benches);
