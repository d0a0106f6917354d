//! `tally ledger-export`: the durable per-request ledger. Every team's Redis ledger stream is
//! read through one consumer group and written as Parquet files to object storage (S3, GCS,
//! Azure Blob or a local directory), partitioned by UTC day with one file per team, hour and
//! read batch. Entries are acknowledged only once their file is stored, and a file's key is a
//! function of the entries in it, so a crash rewrites the same object: nothing lost, nothing
//! written twice (the argument is in `docs/ledger.md`). The ext_proc's SETTLE script trims a
//! stream only past what the group acknowledged (`tally_store::redis`).
//!
//! Pure rooms: [`entry`] (decoding stream entries), [`layout`] (object keys), [`schema`]
//! (records to Parquet). I/O at the edges: [`consumer`] (Redis), [`destination`] (the object
//! store), [`discovery`] (every team's stream, on one node or a cluster), [`exporter`] (one
//! export cycle over every stream), [`metrics`], [`cli`].

#![forbid(unsafe_code)]

pub mod cli;
pub mod consumer;
pub mod destination;
pub mod discovery;
pub mod entry;
pub mod exporter;
pub mod layout;
pub mod metrics;
pub mod schema;

/// What can go wrong exporting the ledger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid --destination {url:?}: {reason}")]
    Destination { url: String, reason: String },
    #[error(transparent)]
    RedisArgs(#[from] tally_store::args::RedisArgsError),
    #[error("the ledger exporter needs --redis-url (the Redis the ext_proc settles into)")]
    NoRedis,
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected Redis reply: {0}")]
    Protocol(String),
    #[error("cannot encode Parquet: {0}")]
    Encode(String),
    #[error("cannot store {key}: {source}")]
    Put { key: String, source: object_store::Error },
    #[error("{failed} stream(s) could not be exported (logged above); their entries stay in Redis for the next run")]
    Incomplete { failed: usize },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
