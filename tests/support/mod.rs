//! Harness of the end-to-end tests, in three parts: [`server`] runs the
//! real `kappa` binary as a server and the CLI against it, [`client`] sends
//! HTTP requests to its API directly, and [`oracle`] computes, independently
//! of the plugins, the views that the example payments plugins must build.
//! Everything is re-exported here, so a test needs only `use support::*`.

#![allow(dead_code, clippy::unwrap_used)]

mod client;
mod oracle;
mod server;

use std::path::Path;

// A test that uses nothing of a part (no direct HTTP request, say) leaves
// that part's re-export unused: not worth a warning.
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use oracle::*;
#[allow(unused_imports)]
pub use server::*;

/// Whether this is a CI run (`CI` set, as CI services do): there, a test
/// never skips itself.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// For a test that cannot run on this machine: under CI it fails; elsewhere
/// it says loudly, past the harness's output capture, that `what` is
/// skipped and how to enable it. The caller then returns.
pub fn cannot_run(what: &str, how_to_enable: &str) {
    use std::io::Write;
    assert!(
        !under_ci(),
        "{what} cannot run, and under CI no test may skip: {how_to_enable}"
    );
    let _ = std::io::stderr().write_all(
        format!("\n\n*** SKIPPING {what}. To run it: {how_to_enable} ***\n\n").as_bytes(),
    );
}

/// Writes payments as a JSON-lines file for `kappa produce --file`.
pub fn write_jsonl(path: &Path, payments: &[kappa::workload::Payment]) {
    let text: String = payments
        .iter()
        .map(|p| serde_json::to_string(&p.to_event_line()).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}
