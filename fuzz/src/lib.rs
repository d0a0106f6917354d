//! Shared pieces of Tally's fuzz targets: inputs shaped like what Envoy and
//! Bedrock send, so the fuzzer spends its time past the parsers' first checks
//! ([`usage_json`], [`frames`]), the world an exchange runs in ([`world`]), and
//! the exchange driver with its invariants ([`script`], [`drive`]).
//!
//! The targets in `fuzz_targets/` are a few lines each calling in here; this
//! crate is outside the workspace and built by `scripts/fuzz.sh` (nightly).

#![forbid(unsafe_code)]

pub mod drive;
pub mod frames;
pub mod script;
pub mod usage_json;
pub mod world;
