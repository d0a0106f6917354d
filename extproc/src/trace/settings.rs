//! Whether call spans are exported, over which OTLP protocol, and how their
//! queue is sized — read from the standard OpenTelemetry environment variables.
//! Pure: a lookup function in, [`Settings`] out, so every rule is unit-tested.
//!
//! Off by default: on only when an OTLP endpoint is configured
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or
//! `OTEL_TRACES_EXPORTER=otlp`; `OTEL_SDK_DISABLED=true` and
//! `OTEL_TRACES_EXPORTER=none` turn it off whatever else is set. The endpoint,
//! headers, timeout and compression are read by the OTLP exporter itself; the
//! sampler, service name and resource attributes by the SDK.

use std::time::Duration;

/// A setting that cannot be used: the variable and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: {reason}")]
pub struct SettingsError {
    pub name: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// The span queue between the data path and the exporter (`OTEL_BSP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Spans held at most; a span arriving when it is full is dropped and counted.
    pub max_queue_size: usize,
    /// The longest a span waits before its batch is sent.
    pub schedule_delay: Duration,
    /// Spans per export request (never more than the queue holds).
    pub max_export_batch_size: usize,
    /// The longest one export may take before it counts as failed.
    pub export_timeout: Duration,
}

impl Default for QueueSettings {
    /// The OpenTelemetry specification's defaults.
    fn default() -> Self {
        QueueSettings {
            max_queue_size: 2048,
            schedule_delay: Duration::from_millis(5000),
            max_export_batch_size: 512,
            export_timeout: Duration::from_millis(30000),
        }
    }
}

/// Tracing is on: how to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub protocol: Protocol,
    pub queue: QueueSettings,
}

impl Settings {
    /// `None` when tracing is off; `get` looks a variable up (the process environment).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Settings>, SettingsError> {
        let get = |name: &str| get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let on = match get("OTEL_TRACES_EXPORTER") {
            Some(exporters) => exporters_name_otlp(&exporters)?,
            None => get("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some(),
        };
        if !on {
            return Ok(None);
        }
        let protocol = match get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
            Some(p) => protocol("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", &p)?,
            None => match get("OTEL_EXPORTER_OTLP_PROTOCOL") {
                Some(p) => protocol("OTEL_EXPORTER_OTLP_PROTOCOL", &p)?,
                // The specification's default.
                None => Protocol::HttpProtobuf,
            },
        };
        let d = QueueSettings::default();
        let max_queue_size = positive(&get, "OTEL_BSP_MAX_QUEUE_SIZE", d.max_queue_size as u64)? as usize;
        let batch = positive(&get, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", d.max_export_batch_size as u64)? as usize;
        let queue = QueueSettings {
            max_queue_size,
            schedule_delay: Duration::from_millis(positive(&get, "OTEL_BSP_SCHEDULE_DELAY", 5000)?),
            max_export_batch_size: batch.min(max_queue_size),
            export_timeout: Duration::from_millis(positive(&get, "OTEL_BSP_EXPORT_TIMEOUT", 30000)?),
        };
        Ok(Some(Settings { protocol, queue }))
    }
}

/// `OTEL_TRACES_EXPORTER` is a comma-separated list: `otlp` turns tracing on,
/// `none` off; any other exporter is not one this build has.
fn exporters_name_otlp(list: &str) -> Result<bool, SettingsError> {
    let names: Vec<String> = list.split(',').map(|n| n.trim().to_ascii_lowercase()).collect();
    if names.iter().any(|n| n == "none") {
        return Ok(false);
    }
    if let Some(other) = names.iter().find(|n| n.as_str() != "otlp") {
        return Err(SettingsError {
            name: "OTEL_TRACES_EXPORTER",
            value: other.clone(),
            reason: "only `otlp` and `none` are supported",
        });
    }
    Ok(true)
}

fn protocol(name: &'static str, value: &str) -> Result<Protocol, SettingsError> {
    match value.to_ascii_lowercase().as_str() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        _ => Err(SettingsError {
            name,
            value: value.to_string(),
            reason: "use `grpc` or `http/protobuf` (`http/json` is not built in)",
        }),
    }
}

/// A positive integer variable, or `default` when unset.
fn positive(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: u64) -> Result<u64, SettingsError> {
    let Some(value) = get(name) else { return Ok(default) };
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(SettingsError {
            name,
            value,
            reason: "must be a positive integer",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<Settings>, SettingsError> {
        Settings::from_env(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn off_without_an_endpoint_or_an_otlp_exporter() {
        assert_eq!(settings(&[]), Ok(None));
        assert_eq!(settings(&[("OTEL_SERVICE_NAME", "tally")]), Ok(None));
        assert_eq!(settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]), Ok(None));
    }

    #[test]
    fn an_endpoint_or_the_otlp_exporter_turns_it_on_over_http_protobuf() {
        for vars in [
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")][..],
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")],
            &[("OTEL_TRACES_EXPORTER", "otlp")],
        ] {
            let s = settings(vars).expect("valid").expect("on");
            assert_eq!(s.protocol, Protocol::HttpProtobuf, "{vars:?}");
            assert_eq!(s.queue, QueueSettings::default());
        }
    }

    #[test]
    fn disabled_sdk_and_the_none_exporter_win() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        assert_eq!(settings(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")]), Ok(None));
        assert_eq!(settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]), Ok(None));
        assert!(settings(&[endpoint, ("OTEL_SDK_DISABLED", "false")]).unwrap().is_some());
    }

    #[test]
    fn the_traces_protocol_overrides_the_general_one() {
        let on = ("OTEL_TRACES_EXPORTER", "otlp");
        let grpc = settings(&[on, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert_eq!(grpc.unwrap().unwrap().protocol, Protocol::Grpc);
        let traces = settings(&[
            on,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]);
        assert_eq!(traces.unwrap().unwrap().protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn the_queue_follows_otel_bsp_and_a_batch_never_exceeds_the_queue() {
        let s = settings(&[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "2000"),
        ]);
        let q = s.unwrap().unwrap().queue;
        assert_eq!(q.max_queue_size, 100);
        assert_eq!(q.schedule_delay, Duration::from_millis(250));
        assert_eq!(q.max_export_batch_size, 100);
        assert_eq!(q.export_timeout, Duration::from_millis(2000));
    }

    #[test]
    fn bad_values_name_the_variable_and_the_reason() {
        let on = ("OTEL_TRACES_EXPORTER", "otlp");
        let e = settings(&[on, ("OTEL_BSP_MAX_QUEUE_SIZE", "0")]).unwrap_err();
        assert_eq!(e.name, "OTEL_BSP_MAX_QUEUE_SIZE");
        assert!(e.to_string().contains("positive integer"), "{e}");
        let e = settings(&[on, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).unwrap_err();
        assert_eq!(e.name, "OTEL_EXPORTER_OTLP_PROTOCOL");
        let e = settings(&[("OTEL_TRACES_EXPORTER", "otlp,zipkin")]).unwrap_err();
        assert_eq!((e.name, e.value.as_str()), ("OTEL_TRACES_EXPORTER", "zipkin"));
    }
}
