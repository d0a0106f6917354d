//! The contract between Tally's control plane and its data plane — the
//! counterpart of Envoy AI Gateway's `filterapi`.
//!
//! Everything both sides must agree on lives here and nowhere else: the
//! compiled config the operator writes and the ext_proc reads ([`compiled`]),
//! exact money ([`money`]), calendar budget periods ([`period`]), how a catalog
//! prices a call ([`pricing`], [`tariff`]), the Redis key layout ([`keys`]) and the
//! per-request ledger record ([`ledger`]), and how the AWS bill names Bedrock usage
//! ([`billing`]: usage types, billing region codes, the bill's model names per price entry).
//!
//! Must not: do I/O, depend on Kubernetes, gRPC, Redis or an async runtime.
//! Its dependencies are serde, jiff, thiserror and tracing (one log line about
//! fields a newer writer added), and flate2 and sha2 for the in-memory shard
//! encoding ([`wire`]), so every other crate may import it.

pub mod billing;
pub mod compiled;
pub mod keys;
pub mod ledger;
pub mod money;
pub mod period;
pub mod pricing;
pub mod tariff;
pub mod wire;
