//! Chargeback from the durable ledger, end to end: `tally report` (and the FOCUS export and
//! `tally reconcile`) over what the real `tally ledger-export` wrote to a local directory and
//! to a real S3 server.

mod focus;
mod reconcile;
mod report;
