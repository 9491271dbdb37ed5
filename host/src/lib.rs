//! kappa: a host for the Kappa architecture.
//!
//! One replayable event log, one processing code path, and processing logic
//! shipped as versioned WebAssembly components. Every view is pinned to one
//! plugin version; deploying a new version replays the log through it beside
//! the old one, and the alias swap (promote, rollback) is atomic.
//!
//! Modules, in the direction of dependency:
//! - [`log`]: the embedded, durable, replayable event log; [`eventlog`]: the
//!   interface the host runs on; [`kafka`]: the same over a Kafka cluster.
//! - [`store`]: one transactional view per version, offsets committed with rows.
//! - [`registry`]: versions, their states and the aliases.
//! - [`runtime`]: validating, compiling and running plugin components.
//! - [`diff`]: comparing two views.
//! - [`lifecycle`]: the running host that ties them together.
//! - [`model`]: the JSON shapes of the API and the CLI.
//! - [`api`]: the HTTP server ([`access`]: its bearer-token check); [`client`]: its client; [`cli`]: the `kappa` command.
//! - [`metrics`]: the `/metrics` series; [`dashboard`]: the web page served at `/`.
//! - [`demo`]: the guided tour run by `kappa demo`; [`workload`]: its event generator.

pub mod access;
pub mod api;
pub mod check;
pub mod cli;
pub mod client;
pub mod dashboard;
pub mod demo;
pub mod diff;
pub mod error;
pub mod eventlog;
pub mod kafka;
pub mod lifecycle;
/// The embedded log, a crate of its own (`host/log`), under its old path.
pub use kappa_log as log;
pub mod metrics;
pub mod model;
pub mod peers;
pub mod registry;
pub mod runtime;
pub mod scaffold;
/// The view store, a crate of its own (`host/store`), under its old path.
pub use kappa_store as store;
pub mod workload;

pub use error::{Error, Result};
pub use lifecycle::{Host, HostOptions};
