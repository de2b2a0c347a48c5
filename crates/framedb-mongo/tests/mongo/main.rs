//! The MongoDB registry against a real MongoDB wire-protocol server (`MONGODB_URI`;
//! `scripts/test.sh` starts SecantusDB), and the registry conformance suite that the in-memory registry and the
//! MongoDB one both pass.
//!
//! Without `MONGODB_URI` the MongoDB half of each test prints a note and returns, unless
//! `CI=true`, where it fails: in CI no test is skipped silently.
//!
//! - `support`: the server's URI, and a database of one's own per test;
//! - `conformance`: the cases, written once over `&dyn InstanceRegistry`, run on both;
//! - `dataset`: the shared records and the filters both registries must answer alike;
//! - `directory`: the cluster directory's store, in memory and on MongoDB;
//! - `lease`: the reconcile lease, in memory and on MongoDB;
//! - `registry`: what only the MongoDB registry has (indexes, errors, what is sent).

mod conformance;
mod dataset;
mod directory;
mod lease;
mod registry;
mod support;
