//! Tally's data plane: an Envoy `ext_proc` service that attributes, prices,
//! reserves and settles every AWS Bedrock Runtime call.
//!
//! The pure decisions (`bedrock`, `attribution`, `pricing`, `period`, `policy`,
//! `usage`, `eventstream`) take plain data and are unit-tested without
//! processes; `server`, `store` and `admin` carry data between them and Envoy,
//! Redis and Prometheus.
#![forbid(unsafe_code)]

pub mod app;
pub mod bedrock;
pub mod config;
pub mod eventstream;
pub mod ledger;
pub mod metrics;
pub mod money;
pub mod period;
pub mod policy;
pub mod pricing;
pub mod processor;
pub mod server;
pub mod store;
pub mod usage;
