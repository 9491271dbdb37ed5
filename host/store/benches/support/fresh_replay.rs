//! `-- fresh-replay`: where a replay into a new view spends its time, the
//! store alone, per event.
//!
//! A Kappa replay fills a view that starts empty. This replays that shape
//! against a default [`View`] with no plugin at all: per batch of 16,384
//! events, a snapshot, a read of each event's key (the batch's own writes
//! first, as the runtime does), its next value written to the batch, then
//! the commit of the batch with the partition's offset; a sync at the end.
//! Keys come in rounds over all keys, each round shuffled, as section 8 of
//! the replay benchmark sends them (so every key ends up in the view), or
//! with `KAPPA_STORE_BENCH_MIX=zipf` drawn with Zipf weights (exponent 1);
//! `KAPPA_STORE_BENCH_EVENTS` events (default 2,000,000, or as many as keys)
//! for 1k, 100k and 1M keys (`KAPPA_STORE_BENCH_KEYS`, comma-separated, to
//! choose), `KAPPA_STORE_BENCH_RUNS` runs each (default 2), a write buffer of
//! `KAPPA_STORE_BENCH_BUFFER_MB` (default the view's, 64 MiB). Prints, per
//! event, the writing thread's CPU time and the elapsed time in reads, in
//! commits (the writes of a full buffer to the file included) and in the
//! final sync.

use std::path::Path;
use std::time::{Duration, Instant};

use kappa_store::{View, ViewOptions, Writes};

use super::{BATCH, Keys, Mix, Rng, bump, cpu_seconds, key};

/// The keys of the events: rounds over all keys, or a skewed draw.
enum Order {
    Rounds(Rounds),
    Zipf(Keys),
}

impl Order {
    fn next(&mut self) -> u64 {
        match self {
            Order::Rounds(rounds) => rounds.next(),
            Order::Zipf(keys) => keys.next(),
        }
    }
}

/// Keys `0..keys` in rounds, each a fresh shuffle.
struct Rounds {
    order: Vec<u64>,
    at: usize,
    rng: Rng,
}

impl Rounds {
    fn new(keys: u64) -> Self {
        let mut rounds = Rounds {
            order: (0..keys).collect(),
            at: 0,
            rng: Rng(7),
        };
        rounds.shuffle();
        rounds
    }

    fn shuffle(&mut self) {
        for i in (1..self.order.len()).rev() {
            let j = usize::try_from(self.rng.next() % (i as u64 + 1)).unwrap_or(0);
            self.order.swap(i, j);
        }
        self.at = 0;
    }

    fn next(&mut self) -> u64 {
        if self.at == self.order.len() {
            self.shuffle();
        }
        self.at += 1;
        self.order[self.at - 1]
    }
}

struct Split {
    reads: Duration,
    commits: Duration,
    sync: Duration,
    cpu: f64,
    rows: u64,
}

fn replay(dir: &Path, keys: u64, events: u64, options: ViewOptions, zipf: bool) -> Split {
    let view = View::open_with(&dir.join("fresh.redb"), options).expect("open");
    let mut rounds = if zipf {
        Order::Zipf(Keys::new(keys, Mix::Zipf, 7))
    } else {
        Order::Rounds(Rounds::new(keys))
    };
    let mut split = Split {
        reads: Duration::ZERO,
        commits: Duration::ZERO,
        sync: Duration::ZERO,
        cpu: 0.0,
        rows: 0,
    };
    let (_, cpu0) = cpu_seconds();
    let mut done = 0;
    while done < events {
        let n = (events - done).min(BATCH as u64);
        let snapshot = view.snapshot().expect("snapshot");
        let mut writes = Writes::new();
        for _ in 0..n {
            let k = key(rounds.next());
            let started = Instant::now();
            let old = match writes.get(&k) {
                Some(v) => v.clone(),
                None => snapshot.get(&k).expect("get"),
            };
            split.reads += started.elapsed();
            writes.insert(k, Some(bump(old.as_deref())));
        }
        drop(snapshot);
        done += n;
        let started = Instant::now();
        view.commit(0, done, &writes, false).expect("commit");
        split.commits += started.elapsed();
    }
    let started = Instant::now();
    view.sync().expect("sync");
    split.sync = started.elapsed();
    split.cpu = cpu_seconds().1 - cpu0;
    split.rows = view.snapshot().expect("snapshot").len().expect("rows");
    split
}

pub(crate) fn run(base: &Path) {
    let env = |name: &str| std::env::var(name).ok();
    let keys: Vec<u64> = env("KAPPA_STORE_BENCH_KEYS")
        .map(|s| s.split(',').filter_map(|k| k.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000]);
    let events = env("KAPPA_STORE_BENCH_EVENTS").and_then(|s| s.parse().ok());
    let mut options = ViewOptions::default();
    if let Some(mb) = env("KAPPA_STORE_BENCH_BUFFER_MB").and_then(|s| s.parse::<usize>().ok()) {
        options.write_buffer_bytes = mb << 20;
    }
    let zipf = env("KAPPA_STORE_BENCH_MIX").is_some_and(|m| m == "zipf");
    let runs = env("KAPPA_STORE_BENCH_RUNS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    println!(
        "| keys | run | events | rows | writer CPU ns/event | reads ns/event | commits ns/event | sync ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &k in &keys {
        let events = events.unwrap_or(2_000_000).max(k);
        for run in 0..runs {
            let dir = tempfile::tempdir_in(base).expect("temporary directory");
            let split = replay(dir.path(), k, events, options.clone(), zipf);
            let per = |d: Duration| d.as_secs_f64() * 1e9 / events as f64;
            println!(
                "| {k} | {run} | {events} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                split.rows,
                split.cpu * 1e9 / events as f64,
                per(split.reads),
                per(split.commits),
                split.sync.as_secs_f64() * 1e3,
            );
        }
    }
}
