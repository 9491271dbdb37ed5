//! kappa: a host for the Kappa architecture.
//!
//! One replayable event log, one processing code path, and processing logic
//! shipped as versioned WebAssembly components. Every view is pinned to one
//! plugin version; deploying a new version replays the log through it beside
//! the old one, and the alias swap (promote, rollback) is atomic.
//!
//! Modules, in the direction of dependency:
//! - [`eventlog`]: the log interface the host runs on, with its two
//!   implementations: the embedded, durable, replayable event log ([`log`],
//!   adapted in `eventlog::embedded`) and a Kafka cluster ([`kafka`]).
//! - [`store`]: one transactional view per version, offsets committed with rows.
//! - [`registry`]: versions, their states and the aliases.
//! - [`runtime`]: validating, compiling and running plugin components.
//! - [`diff`]: comparing two views.
//! - [`lifecycle`]: the running host that ties them together.
//! - [`model`]: the JSON shapes of the API and the CLI.
//! - [`api`]: the HTTP server ([`access`]: its bearer-token check); [`client`]: its client.
//! - [`metrics`]: the `/metrics` series; [`dashboard`]: the web page served at `/`.
//! - [`workload`]: the event generator of `kappa demo`, the tests and the benchmarks.
//!
//! The `kappa` command itself (its subcommands, the demo, the plugin
//! project templates) is the binary's (`src/main.rs`), not this library's.

// Strict lints for product code (not tests or benches): documented items, explained allows, no silent lossy casts.
#![warn(
    missing_docs,
    clippy::allow_attributes_without_reason,
    clippy::too_many_lines,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

pub mod access;
pub mod api;
pub mod check;
pub mod client;
mod clock;
pub mod dashboard;
pub mod diff;
pub mod error;
pub mod eventlog;
/// The Kafka log backend, under its old path.
pub use eventlog::kafka;
pub mod lifecycle;
/// The embedded log, a crate of its own (`host/log`), under its old path.
pub use kappa_log as log;
pub mod metrics;
pub mod model;
pub mod peers;
pub mod registry;
pub mod runtime;
/// The view store, a crate of its own (`host/store`), under its old path.
pub use kappa_store as store;
pub mod workload;

pub use error::{Error, Result};
pub use lifecycle::{Host, HostOptions};
