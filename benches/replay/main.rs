//! The replay benchmark: per-event figures of kappa, each printed with the
//! baseline it is compared to, measured in the same run over data the
//! benchmark generates itself.
//!
//! ```sh
//! cargo bench -p kappa --bench replay                # full run (a few minutes)
//! cargo bench -p kappa --bench replay -- --quick     # small sizes (seconds)
//! cargo bench -p kappa --bench replay -- --only 1,3 --runs 5 --json report.json
//! ```
//!
//! Python and JavaScript plugins are measured when `--polyglot DIR` (or
//! `KAPPA_POLYGLOT_DIR`) names a directory built by `plugins/build-polyglot.sh`.
//!
//! Sections (numbered as in BENCHMARKS.md):
//! 1. Replay throughput of the payments v2 processor as a Rust Wasm plugin
//!    against the same rules compiled natively (`payments-v2` as a host
//!    crate), over the same one-partition embedded log into the same redb
//!    view with the same batching and commits: the ratio isolates the Wasm
//!    cost. Plus the product path (`Host::deploy` until caught up) and a
//!    batch size sweep.
//! 2. The same replay with the Python and JavaScript plugins, as ratios to
//!    the Rust plugin.
//! 3. Replay of a two-partition topic with one thread (what a version's
//!    worker does) against one thread per partition.
//! 4. Live latency from `produce` acknowledged to the promoted view updated,
//!    p50/p99 at a steady rate, idle (the baseline) and while other versions
//!    replay beside it.
//! 5. Ingest throughput of the embedded log against a plain buffered file
//!    append with the same fsync per batch.
//! 6. Cold start, deploy to first event processed, without and with the
//!    compiled-code cache.
//! 7. Memory per deployed version (resident and peak).
//! 8. Key cardinality: a plain per-key aggregation (`key-totals`, one view
//!    read and one write per event) over 1 k to 1 M distinct keys (10 M on
//!    request) and a skewed mix, native and Wasm: events/s, bytes written to
//!    disk per event and the view's size, as ratios to the 1 k-key figures.
//! 9. What contract 0.3.0's range reads and timers cost per event, in the
//!    product's worker, as ratios to the same aggregation on 0.3.0-rc.1.
//!
//! Every figure is the median of `--runs` runs; the machine may be shared, so
//! nothing here asserts a speed. What it does check: every way of computing a
//! view gives the same view (sha256 digest), else the benchmark fails.

#![allow(clippy::unwrap_used)]

mod bench;
mod capabilities;
mod cardinality;
mod cold_start;
mod common;
mod ingest;
mod languages;
mod latency;
mod memory;
mod options;
mod partitions;
mod report;
mod throughput;

use bench::Bench;
use options::JSON_OUT;
pub use options::Options;
pub use report::Report;
use report::machine;

// The allocator of the `kappa` binary (host/src/main.rs), so that the
// figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let options = match Options::from_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let report = run(&options);
    if let Some(path) = JSON_OUT.get() {
        std::fs::write(path, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
        println!("\nreport written to {}", path.display());
    }
}

/// Runs the selected sections, printing each as it completes.
pub fn run(options: &Options) -> Report {
    // Quiet: the host logs every deploy and catch-up at info.
    let machine = machine();
    let setup = format!(
        "{} mode: {} events of ~100 bytes over {} keys (payments v2 logic), median of {} run(s), \
         view write buffer {} MiB, row cache {} MiB",
        if options.quick { "quick" } else { "full" },
        options.events,
        options.keys,
        options.runs,
        options.view_write_buffer_bytes >> 20,
        options.view_row_cache_bytes >> 20
    );
    println!("kappa replay benchmark\n{machine}\n{setup}");
    let bench = Bench::new(options);
    let mut sections = Vec::new();
    for id in &options.sections {
        let section = match id {
            1 => bench.replay_throughput(),
            2 => bench.languages(),
            3 => bench.partitions(),
            4 => bench.latency(),
            5 => bench.ingest(),
            6 => bench.cold_start(),
            7 => bench.memory(),
            8 => bench.cardinality(),
            9 => bench.capabilities(),
            other => panic!("no section {other}; sections are 1 to 9"),
        };
        section.print();
        sections.push(section);
    }
    Report {
        machine,
        setup,
        sections,
    }
}
