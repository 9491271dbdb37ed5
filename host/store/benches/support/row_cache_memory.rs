//! `-- row-cache-memory`: what a full row cache really holds in memory
//! against what it is weighed at (the bound `--view-row-cache-mb` counts).
//!
//! Commits 1,015,808 rows (62 batches of 16,384) into a view with no write
//! buffer (each commit goes to the file, so the cache writes through from
//! the first on) and a 1 MiB page cache, once with the row cache and once
//! without, and prints the growth of the process's resident set in each.
//! Three shapes of row: section 8's (12-byte keys, values of up to 33 bytes,
//! both held in the cache's entries), 100-byte values (each in an allocation of
//! its own) and 40-byte keys (the same).

use std::path::Path;
use std::time::Duration;

use kappa_store::{View, ViewOptions, Writes};

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// A shape of row: its name, its key and its value for row `k`.
struct Shape {
    name: &'static str,
    key: fn(u64) -> Vec<u8>,
    value: fn(u64) -> Vec<u8>,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "12-byte keys, 28- to 33-byte values",
        key: |k| format!("key-{k:08}").into_bytes(),
        value: |k| {
            format!(
                "{{\"events\":{},\"total_cents\":{}}}",
                k % 9 + 1,
                k % 1_000_000
            )
            .into_bytes()
        },
    },
    Shape {
        name: "12-byte keys, 100-byte values",
        key: |k| format!("key-{k:08}").into_bytes(),
        value: |k| format!("{k:0>100}").into_bytes(),
    },
    Shape {
        name: "40-byte keys, 8-byte values",
        key: |k| format!("{k:0>40}").into_bytes(),
        value: |k| k.to_le_bytes().to_vec(),
    },
];

fn fill(dir: &Path, row_cache_bytes: usize, shape: &Shape) -> (u64, u64) {
    let view = View::open_with(
        &dir.join(format!("memory-{row_cache_bytes}.redb")),
        ViewOptions {
            sync_interval: Duration::from_secs(3600),
            write_buffer_bytes: 0,
            cache_bytes: 1 << 20,
            row_cache_bytes,
        },
    )
    .expect("open");
    let before = resident_bytes();
    for batch in 0..62u64 {
        let writes: Writes = (0..16_384u64)
            .map(|i| {
                let k = batch * 16_384 + i;
                ((shape.key)(k), Some((shape.value)(k)))
            })
            .collect();
        view.commit(0, (batch + 1) * 16_384, &writes, false)
            .expect("commit");
    }
    (
        resident_bytes().saturating_sub(before),
        view.row_cache_bytes(),
    )
}

/// Measures each shape in a process of its own (this benchmark run again
/// with `KAPPA_ROW_CACHE_SHAPE` set), so that no shape reuses memory an
/// earlier one freed and hides its growth.
pub fn run(base: &Path) {
    if let Ok(index) = std::env::var("KAPPA_ROW_CACHE_SHAPE") {
        let shape = index
            .parse::<usize>()
            .ok()
            .and_then(|i| SHAPES.get(i))
            .expect("KAPPA_ROW_CACHE_SHAPE: an index of SHAPES");
        measure(base, shape);
        return;
    }
    let exe = std::env::current_exe().expect("the benchmark's own path");
    for index in 0..SHAPES.len() {
        let status = std::process::Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env("KAPPA_ROW_CACHE_SHAPE", index.to_string())
            .status()
            .expect("run the benchmark for one shape");
        assert!(status.success(), "shape {index}: {status}");
    }
}

fn measure(base: &Path, shape: &Shape) {
    let dir = tempfile::tempdir_in(base).expect("temporary directory");
    let (without, _) = fill(dir.path(), 0, shape);
    let (with, weighed) = fill(dir.path(), 256 << 20, shape);
    println!(
        "1,015,808 rows of {}: resident growth without the row cache {:.1} MB, with it {:.1} \
         MB; the cache weighed {:.1} MB, its resident memory {:.1} MB ({:.2} of the weight)",
        shape.name,
        without as f64 / 1e6,
        with as f64 / 1e6,
        weighed as f64 / 1e6,
        with.saturating_sub(without) as f64 / 1e6,
        with.saturating_sub(without) as f64 / weighed.max(1) as f64,
    );
}
