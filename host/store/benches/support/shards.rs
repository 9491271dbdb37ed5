//! The view kept per partition (`Shards`) at 1,000,000 keys: what reading
//! the whole view costs once it is merged from shards, and what the check
//! that a key belongs to one partition costs at commit.
//!
//! Run alone: `cargo bench -p kappa-store --bench views -- shards`.
//!
//! (a) The same 1M rows in 1, 2 and 4 shards (row `i` in partition
//! `i % shards`, so that neighbouring keys are in different shards, as a
//! hash partitioner places them): a full iteration of the merged snapshot
//! and its digest (five runs: the shortest elapsed, the mean CPU time),
//! against 1 shard.
//! (b) 1M new keys committed in batches of 16,384, alternately to
//! partitions 0 and 1, through `Shards::commit` (the check) and through
//! `View::commit` on the same shards (no check), including the final sync;
//! once into empty shards and once into shards whose files already hold
//! 1M other rows (the new keys interleaved with them), the best of two
//! runs each.

use std::path::Path;
use std::time::{Duration, Instant};

use kappa_store::{Layout, Shards, ViewOptions, Writes};

use super::{BATCH, bump, cpu_seconds, key};

const KEYS: u64 = 1_000_000;

fn open(dir: &Path) -> Shards {
    Shards::open(dir, Layout::PerPartition, ViewOptions::default()).expect("open shards")
}

/// Loads row `id` for each of `ids` into partition `id % shards`, straight
/// through each shard's view, and syncs: the rows are in the files.
fn load(shards: &Shards, count: u32, ids: impl Iterator<Item = u64>) {
    let mut batches: Vec<Writes> = (0..count).map(|_| Writes::new()).collect();
    let flush = |partition: u32, w: &mut Writes| {
        if !w.is_empty() {
            let view = shards.shard(partition).expect("shard");
            view.commit(partition, 0, w, false).expect("load");
            w.clear();
        }
    };
    for id in ids {
        let partition = u32::try_from(id % u64::from(count)).expect("partition");
        let w = &mut batches[partition as usize];
        w.insert(key(id), Some(bump(None)));
        if w.len() >= 100_000 {
            flush(partition, w);
        }
    }
    for (partition, w) in batches.iter_mut().enumerate() {
        flush(u32::try_from(partition).expect("partition"), w);
    }
    shards.sync().expect("sync");
}

/// The shortest elapsed time of `runs` runs of `f`, the mean CPU time of
/// the calling thread per run (which waiting for a core does not inflate;
/// a mean, because the kernel counts it in ticks of 10 ms), and the last
/// result.
fn best<T>(runs: u32, mut f: impl FnMut() -> T) -> (Duration, f64, T) {
    let mut out = None;
    let mut elapsed = Duration::MAX;
    let (_, cpu0) = cpu_seconds();
    for _ in 0..runs {
        let started = Instant::now();
        out = Some(f());
        elapsed = elapsed.min(started.elapsed());
    }
    let cpu = (cpu_seconds().1 - cpu0) / f64::from(runs);
    (elapsed, cpu, out.expect("one run"))
}

fn merged_reads(base: &Path) {
    println!(
        "\n| shards | rows | iterate | CPU-s | x 1 shard (CPU) | digest | CPU-s | x 1 shard (CPU) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut reference: Option<(f64, f64, String)> = None;
    for count in [1u32, 2, 4] {
        let dir = tempfile::tempdir_in(base).expect("temporary directory");
        let shards = open(dir.path());
        load(&shards, count, 0..KEYS);
        let (iterate, iterate_cpu, rows) = best(5, || {
            let snapshot = shards.snapshot().expect("snapshot");
            let mut rows = 0u64;
            for row in snapshot.rows(b"", None).expect("rows") {
                std::hint::black_box(row.expect("row"));
                rows += 1;
            }
            rows
        });
        let (digest, digest_cpu, d) = best(5, || {
            shards
                .snapshot()
                .expect("snapshot")
                .digest()
                .expect("digest")
        });
        assert_eq!(rows, KEYS);
        assert_eq!(d.rows, KEYS);
        let (it1, dg1, sha) = reference.get_or_insert((iterate_cpu, digest_cpu, d.sha256.clone()));
        assert_eq!(
            *sha, d.sha256,
            "the same rows digest equal in any number of shards"
        );
        println!(
            "| {count} | {rows} | {iterate:.2?} | {iterate_cpu:.3} | {:.2} | {digest:.2?} | {digest_cpu:.3} | {:.2} |",
            iterate_cpu / it1.max(0.001),
            digest_cpu / dg1.max(0.001),
        );
    }
}

/// Commits `ids` (all new) in batches alternating between partitions 0 and
/// 1, checked or straight to the shard's view, then syncs.
fn commit_new(shards: &Shards, ids: &[u64], checked: bool) {
    for (n, chunk) in ids.chunks(BATCH).enumerate() {
        let partition = u32::from(n % 2 == 1);
        let next = u64::try_from(n + 1).expect("offset");
        let w: Writes = chunk
            .iter()
            .map(|&id| (key(id), Some(bump(None))))
            .collect();
        if checked {
            shards.commit(partition, next, &w, false).expect("commit");
        } else {
            let view = shards.shard(partition).expect("shard");
            view.commit(partition, next, &w, false).expect("commit");
        }
    }
    shards.sync().expect("sync");
}

fn checked_commits(base: &Path) {
    println!(
        "\n| 1M new keys into 2 shards | View::commit | CPU-s | Shards::commit (checked) | CPU-s | x time | x CPU |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for preloaded in [false, true] {
        // New keys: odd ids when the shards hold the even ones.
        let ids: Vec<u64> = if preloaded {
            (0..KEYS).map(|i| 2 * i + 1).collect()
        } else {
            (0..KEYS).collect()
        };
        let mut figures = Vec::new();
        for checked in [false, true] {
            let mut fastest = (Duration::MAX, 0.0);
            for _ in 0..2 {
                let dir = tempfile::tempdir_in(base).expect("temporary directory");
                let shards = open(dir.path());
                if preloaded {
                    load(&shards, 2, (0..KEYS).map(|i| 2 * i));
                }
                // Only the commits are timed, not the preload.
                let (_, cpu0) = cpu_seconds();
                let started = Instant::now();
                commit_new(&shards, &ids, checked);
                let elapsed = started.elapsed();
                if elapsed < fastest.0 {
                    fastest = (elapsed, cpu_seconds().1 - cpu0);
                }
            }
            let (elapsed, cpu) = fastest;
            figures.push((elapsed, cpu));
        }
        let [(plain, plain_cpu), (checked, checked_cpu)] = figures[..] else {
            unreachable!("two figures");
        };
        println!(
            "| {} | {plain:.2?} | {plain_cpu:.2} | {checked:.2?} | {checked_cpu:.2} | {:.2} | {:.2} |",
            if preloaded {
                "files holding 1M other rows"
            } else {
                "empty shards"
            },
            checked.as_secs_f64() / plain.as_secs_f64(),
            checked_cpu / plain_cpu.max(0.001),
        );
    }
}

/// Runs the section, in temporary directories under `base`.
pub fn run(base: &Path) {
    println!("\n## Shards at {KEYS} keys");
    merged_reads(base);
    checked_commits(base);
}
