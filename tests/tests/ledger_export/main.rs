//! The durable ledger: `tally ledger-export` consuming the ledger streams into Parquet in
//! object storage. End to end through the real data path into a real S3 server (versitygw,
//! `scripts/tools/versitygw.sh`) read back with pyarrow (`scripts/tools/python.sh`), and the
//! recovery paths against a real Redis (and a Redis Cluster), and the chart's `ledgerExport`.

mod chart;
mod end_to_end;
mod recovery;
mod support;
