//! `-- row-cache-memory`: what a full row cache really holds in memory
//! against what it is weighed at (the bound `--view-row-cache-mb` counts).
//!
//! Commits 1,015,808 rows of 12-byte keys and ~35-byte values (62 batches
//! of 16,384, section 8's shape) into a view with no write buffer (each
//! commit goes to the file, so the cache writes through from the first on)
//! and a 1 MiB page cache, once with the row cache and once without, and
//! prints the growth of the process's resident set in each.

use std::path::Path;
use std::time::Duration;

use kappa_store::{View, ViewOptions, Writes};

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn fill(dir: &Path, row_cache_bytes: usize) -> (u64, u64) {
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
                (
                    format!("key-{k:08}").into_bytes(),
                    Some(format!("{{\"events\":{k},\"total_cents\":{}}}", k * 7).into_bytes()),
                )
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

pub fn run(base: &Path) {
    let dir = tempfile::tempdir_in(base).expect("temporary directory");
    let (without, _) = fill(dir.path(), 0);
    let (with, weighed) = fill(dir.path(), 256 << 20);
    println!(
        "1,015,808 rows: resident growth without the row cache {:.1} MB, with it {:.1} MB; \
         the cache weighed {:.1} MB, its resident memory {:.1} MB ({:.2} of the weight)",
        without as f64 / 1e6,
        with as f64 / 1e6,
        weighed as f64 / 1e6,
        with.saturating_sub(without) as f64 / 1e6,
        with.saturating_sub(without) as f64 / weighed.max(1) as f64,
    );
}
