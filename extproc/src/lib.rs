//! Tally's data plane: an Envoy `ext_proc` service that attributes, prices,
//! reserves and settles every AWS Bedrock Runtime call.
//!
//! The pure decisions — which operation and model a path names ([`bedrock`]),
//! who is charged and which budgets apply ([`policy`]), what a response says it
//! used ([`usage`], [`eventstream`]) — take plain data and are unit-tested
//! without processes. [`exchange`] runs one call through its ext_proc phases;
//! [`server`] carries the gRPC stream to it, [`app`] wires flags, the store
//! (`tally-store`), metrics ([`metrics`]) and the admin endpoints together.
//! The contract with the operator (config, money, prices) is `tally-config`.

pub mod app;
pub mod bedrock;
pub mod eventstream;
pub mod exchange;
pub mod metrics;
pub mod peer;
pub mod policy;
pub mod server;
pub mod usage;
