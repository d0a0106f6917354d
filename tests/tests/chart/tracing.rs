//! `tracing`: off by default (no `OTEL_*` on the ext_proc); on, the OTLP endpoint, protocol,
//! service name, sampler and queue size reach the ext_proc's environment, and enabling it
//! without an endpoint fails the render naming the value.

use std::collections::BTreeMap;

use crate::render::{documents, pod_spec, render, try_render};

/// The ext_proc container's `OTEL_*` environment.
fn otel_env(sets: &[&str]) -> BTreeMap<String, String> {
    let docs = documents(&render(None, sets));
    let container = &pod_spec(&docs, "Deployment", "tally-extproc")["containers"][0];
    container["env"]
        .as_sequence()
        .expect("an env list")
        .iter()
        .filter_map(|e| {
            let name = e["name"].as_str()?;
            name.starts_with("OTEL_")
                .then(|| (name.to_string(), e["value"].as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

#[test]
fn tracing_is_off_by_default_and_sets_the_otel_environment_when_enabled() {
    assert_eq!(otel_env(&[]), BTreeMap::new());
    let env = otel_env(&[
        "tracing.enabled=true",
        "tracing.endpoint=http://otel-collector.observability:4318",
        "tracing.protocol=http/protobuf",
        "tracing.sampler=parentbased_traceidratio",
        "tracing.samplerArg=0.25",
        "tracing.resourceAttributes=deployment.environment.name=prod",
    ]);
    let expected: BTreeMap<String, String> = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://otel-collector.observability:4318",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_SERVICE_NAME", "tally-extproc"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "2048"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env, expected);
}

#[test]
fn tracing_without_an_endpoint_or_with_an_unknown_protocol_is_refused_by_name() {
    let err = try_render(None, &["tracing.enabled=true"]).unwrap_err();
    assert!(err.contains("tracing.endpoint is required"), "{err}");
    let err = try_render(None, &["tracing.protocol=http/json"]).unwrap_err();
    assert!(err.contains("at '/tracing/protocol'"), "{err}");
}
