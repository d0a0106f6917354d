//! Tally's data plane: an Envoy `ext_proc` service that attributes, prices,
//! reserves and settles every AWS Bedrock Runtime call.
//!
//! The pure decisions — which operation and model a path names ([`bedrock`]),
//! who is charged and which budgets apply ([`policy`]), what a response says it
//! used ([`usage`], [`eventstream`]) — take plain data and are unit-tested
//! without processes. [`exchange`] runs one call through its ext_proc phases;
//! [`server`] carries the gRPC stream to it once [`peer`] has admitted the peer
//! (and decided whether its request attributes count); [`app`] wires flags,
//! TLS, the store (`tally-store`), metrics ([`metrics`]), the probes and the
//! authenticated ledger and spend API together; [`trace`] sends one OTLP span
//! per settled call.
//! The contract with the operator (config, money, prices) is `tally-config`.

pub mod app;
pub mod bedrock;
pub mod bounds;
pub mod eventstream;
pub mod exchange;
pub mod metrics;
pub mod peer;
pub mod policy;
pub mod server;
pub mod trace;
pub mod usage;
