//! kappa: a host for the Kappa architecture.
//!
//! One replayable event log, one processing code path, and processing logic
//! shipped as versioned WebAssembly components. Every view is pinned to one
//! plugin version; deploying a new version replays the log through it beside
//! the old one, and the alias swap (promote, rollback) is atomic.
//!
//! Modules, in the direction of dependency (each uses only those above it):
//! - [`log`] and [`store`]: the embedded, durable, replayable event log and
//!   the views (rows and offsets committed together), crates of their own.
//! - [`eventlog`]: the log interface the host runs on, with its two
//!   implementations: the embedded log (`eventlog::embedded`) and a Kafka
//!   cluster ([`kafka`]).
//! - [`error`]: the host's error type, keeping its typed causes.
//! - [`registry`]: versions, their states and the aliases.
//! - [`model`]: the JSON shapes of the API and the CLI; [`access`]: the
//!   bearer-token check; [`dashboard`]: the web page served at `/`;
//!   [`workload`]: the event generator of `kappa demo`, the tests and the
//!   benchmarks.
//! - [`runtime`]: validating, compiling and running plugin components;
//!   [`check`]: `kappa plugin check` over it.
//! - [`diff`]: comparing two views; [`client`]: the HTTP client; [`peers`]:
//!   asking the other hosts of a cluster.
//! - [`metrics`]: the `/metrics` series.
//! - [`lifecycle`]: the running host that ties them together.
//! - [`api`]: the HTTP server.
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
