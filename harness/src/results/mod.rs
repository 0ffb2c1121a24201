//! What runs found, for people and for machines.
//!
//! Bottom to top (a module imports only those above it in this list):
//! * [`rdesc`]: report descriptors decoded item by item, and their diff;
//! * [`report`]: one test run's report, rendered as a step log;
//! * [`matrix`]: the scenario x target summary, compiler- and
//!   kernel-dependent rows flagged;
//! * [`records`]: one record per test, as JSON and JSON lines;
//! * [`ktap`]: KTAP, parsed and written;
//! * [`junit`]: JUnit XML, written;
//! * [`summary`]: many results files merged into one matrix;
//! * [`html`]: the self-contained HTML report and the Markdown step summary;
//! * [`files`]: every results file a command writes (`--json`, `--ktap`,
//!   `--junit`, `--html`), from one set of records.
pub mod files;
pub mod html;
pub mod junit;
pub mod ktap;
pub mod matrix;
pub mod rdesc;
pub mod records;
pub mod report;
pub mod summary;
