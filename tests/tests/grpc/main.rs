//! gRPC-level integration tests of `tally-extproc`: real `ProcessingRequest`
//! streams (as Envoy sends them) against the service running in-process
//! ([`tally_tests::fixtures::extproc_service`]), with a real redis-server.
//! Expected costs are written out from the catalog prices in [`support`], never
//! computed by the code under test.

mod budgets;
mod holds;
mod leases;
mod modes;
mod outages;
mod pricing;
mod reload;
mod store_bounds;
mod support;
mod topology;
mod write_behind;
