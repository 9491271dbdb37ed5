//! The `kappa` binary: see `kappa --help`. The command line ([`cli`]), the
//! guided tour ([`demo`]), the plugin project templates ([`scaffold`]) and
//! the text the commands print ([`render`]) are the binary's; everything
//! they drive is the `kappa` library.

// Strict lints for product code (not tests or benches): documented items, explained allows, no silent lossy casts.
#![warn(
    missing_docs,
    clippy::allow_attributes_without_reason,
    clippy::too_many_lines,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

// mimalloc rather than the system allocator: a replay allocates and frees
// every event it reads and every row it writes, and with mimalloc the replay
// benchmark (benches/replay/, which uses it too) replays 10-20% more events
// per CPU-second, native rules and Wasm plugins alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The library's modules, all of them, under the paths the binary's modules
// name them by (`crate::model`, `crate::registry`, ...), as inside the
// library: code moved between the two keeps compiling. Some are unused here.
#[allow(
    unused_imports,
    reason = "the binary uses only some of the library's modules"
)]
use kappa::{
    access, api, check, client, dashboard, diff, error, eventlog, kafka, lifecycle, log, metrics,
    model, peers, registry, runtime, store, workload,
};

mod cli;
mod demo;
mod render;
mod scaffold;

fn main() -> std::process::ExitCode {
    cli::main()
}
