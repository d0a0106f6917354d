//! End-to-end test support for Tally: a simulated Bedrock and fixtures that own
//! the real processes of the data path (Envoy, Redis, `tally-extproc`).
//!
//! Everything here serves tests under `tests/tests/`; nothing ships.
#![forbid(unsafe_code)]

pub mod bedrock_sim;
pub mod client;
pub mod cur;
pub mod expect;
pub mod fixtures;
pub mod fleet;
pub mod kube_apiserver;
pub mod scenarios;
pub mod tools;
