//! OpenTelemetry traces from the ext_proc, end to end: AWS SDK → Envoy → tally-extproc
//! (OTLP to a real Jaeger v2, `scripts/tools/jaeger.sh`) → simulated Bedrock. Each call's
//! span reaches Jaeger with the GenAI and `tally.*` attributes equal to the call's Redis
//! ledger record, joins the client's trace when it sent a `traceparent`, and a refused call
//! has its span too; a collector that is down or stuck never touches a call, and what it
//! costs the spans is counted on `/metrics`.

mod collector_down;
mod spans;
mod support;
