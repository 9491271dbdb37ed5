//! The view store at many keys: replays a worker's write pattern against
//! candidate stores and reports throughput, bytes written, size on disk and
//! the latency of reads made meanwhile.
//!
//! The pattern is the exactly-once commit of `host/src/lifecycle.rs`: per
//! batch of 16,384 events, take a snapshot, read each event's key (from the
//! batch's own writes first, as the runtime does), write the key's new value,
//! then commit the batch's rows and the partition's next offset together.
//! Each scenario first loads every key once (not measured), then replays
//! updates for at most `KAPPA_STORE_BENCH_SECS` seconds (default 20) or
//! 2,000,000 events. A second thread reads random keys meanwhile, one every
//! 100 microseconds, timing each read.
//!
//! Run: `cargo bench -p kappa-store --bench views` (`-- quick` for the 1k
//! and 100k scenarios only, `-- NAME...` for the candidates named,
//! `-- keys=1M` for the scenarios named, `-- shards` for the section on
//! views kept per partition alone, `support/shards.rs`, which a full run
//! ends with; `-- background` for the comparison of writing a full buffer
//! in the background or not, below; `-- row-cache-memory` for the memory a
//! full row cache holds, `support/row_cache_memory.rs`; `-- bulk-write` for
//! what writing a full buffer costs per row in each store,
//! `support/bulk_write.rs`; `-- fresh-replay` for where a replay into a new
//! view spends its time, `support/fresh_replay.rs`).
//! Throughput is given per second elapsed and per CPU-second (of the
//! writing thread, and of the whole process: the reading thread and a
//! store's background threads included), the latter being what a shared
//! machine does not distort. The ratio `x today@1k` compares CPU-seconds of
//! the process with redb as it was (`redb-today`) at 1,000 keys in the same run.
//! `bytes/ev` is `write_bytes` of `/proc/self/io` over the replay divided by
//! the events replayed (`wchar/ev`: bytes handed to `write`, before the page
//! cache absorbs rewrites of a page).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kappa_store::{View, ViewOptions, Writes};

#[path = "support/bulk_write.rs"]
mod bulk_write;
#[path = "support/fresh_replay.rs"]
mod fresh_replay;
#[path = "support/row_cache_memory.rs"]
mod row_cache_memory;
#[path = "support/shards.rs"]
mod shards;

/// The `kappa` binary's allocator: a replay allocates every row it writes,
/// and the system allocator's costs differ (`host/src/main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 16_384;
const MAX_EVENTS: u64 = 2_000_000;

/// One store under test, shared by the writer and the reading thread.
trait Candidate: Send + Sync {
    /// Loads keys `0..n` once, untimed.
    fn preload(&self, n: u64);
    /// One batch: read each key, write its next value, commit with `next`.
    fn batch(&self, keys: &[u64], next: u64);
    /// The latest value of `key`, as a reader on another thread sees it.
    fn get(&self, key: u64) -> Option<Vec<u8>>;
    /// Makes everything durable.
    fn sync(&self);
    /// Time spent in the batches' commits, and the longest one.
    fn commit_time(&self) -> (Duration, Duration) {
        (Duration::ZERO, Duration::ZERO)
    }
}

fn key(id: u64) -> Vec<u8> {
    format!("acct-{id:010}").into_bytes()
}

/// The next value of a row: a 24-byte counter, so a change is ~40 bytes.
fn bump(old: Option<&[u8]>) -> Vec<u8> {
    let n: u64 = old
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    format!("{:024}", n + 1).into_bytes()
}

/// Bytes of one change: key and value.
const CHANGE_BYTES: f64 = 15.0 + 24.0;

struct Redb {
    view: View,
    /// Time spent in commits, and the longest commit.
    commits: parking_lot::Mutex<(Duration, Duration)>,
}

impl Redb {
    fn new(view: View) -> Self {
        Redb {
            view,
            commits: parking_lot::Mutex::new((Duration::ZERO, Duration::ZERO)),
        }
    }
}

impl Candidate for Redb {
    fn preload(&self, n: u64) {
        let mut id = 0;
        while id < n {
            let end = (id + 1_000_000).min(n);
            let w: Writes = (id..end).map(|i| (key(i), Some(bump(None)))).collect();
            self.view.commit(0, 0, &w, true).expect("preload");
            id = end;
        }
        self.view.sync().expect("sync");
    }

    fn batch(&self, keys: &[u64], next: u64) {
        let snap = self.view.snapshot().expect("snapshot");
        let mut w = Writes::new();
        for &id in keys {
            let k = key(id);
            let new = match w.get(&k) {
                Some(v) => bump(v.as_deref()),
                None => bump(snap.get(&k).expect("get").as_deref()),
            };
            w.insert(k, Some(new));
        }
        drop(snap);
        let started = Instant::now();
        self.view.commit(0, next, &w, false).expect("commit");
        let took = started.elapsed();
        let mut commits = self.commits.lock();
        commits.0 += took;
        commits.1 = commits.1.max(took);
    }

    fn commit_time(&self) -> (Duration, Duration) {
        *self.commits.lock()
    }

    fn get(&self, id: u64) -> Option<Vec<u8>> {
        self.view.get(&key(id)).expect("get")
    }

    fn sync(&self) {
        self.view.sync().expect("sync");
    }
}

struct Fjall {
    db: fjall::Database,
    rows: fjall::Keyspace,
    offsets: fjall::Keyspace,
    last_durable: parking_lot::Mutex<Instant>,
}

impl Fjall {
    fn open(dir: &Path, cache: u64) -> Self {
        let db = fjall::Database::builder(dir)
            .cache_size(cache)
            .open()
            .expect("fjall open");
        let rows = db
            .keyspace("rows", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        let offsets = db
            .keyspace("offsets", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        Fjall {
            db,
            rows,
            offsets,
            last_durable: parking_lot::Mutex::new(Instant::now()),
        }
    }
}

impl Candidate for Fjall {
    fn preload(&self, n: u64) {
        let mut id = 0;
        while id < n {
            let end = (id + 100_000).min(n);
            let mut b = self.db.batch();
            for i in id..end {
                b.insert(&self.rows, key(i), bump(None));
            }
            b.commit().expect("preload");
            id = end;
        }
        self.sync();
    }

    fn batch(&self, keys: &[u64], next: u64) {
        use fjall::Readable;
        let snap = self.db.snapshot();
        let mut w = Writes::new();
        for &id in keys {
            let k = key(id);
            let new = match w.get(&k) {
                Some(v) => bump(v.as_deref()),
                None => bump(snap.get(&self.rows, &k).expect("get").as_deref()),
            };
            w.insert(k, Some(new));
        }
        drop(snap);
        let mut b = self.db.batch();
        for (k, v) in w {
            b.insert(&self.rows, k, v.unwrap_or_default());
        }
        b.insert(&self.offsets, 0u32.to_be_bytes(), next.to_be_bytes());
        b.commit().expect("commit");
        let mut last = self.last_durable.lock();
        if last.elapsed() >= Duration::from_millis(200) {
            self.db
                .persist(fjall::PersistMode::SyncAll)
                .expect("persist");
            *last = Instant::now();
        }
    }

    fn get(&self, id: u64) -> Option<Vec<u8>> {
        self.rows.get(key(id)).expect("get").map(|v| v.to_vec())
    }

    fn sync(&self) {
        self.db
            .persist(fjall::PersistMode::SyncAll)
            .expect("persist");
    }
}

/// How keys are drawn.
#[derive(Clone, Copy)]
enum Mix {
    Uniform,
    /// Zipf with exponent 1: a few keys take most events.
    Zipf,
}

struct Scenario {
    name: &'static str,
    keys: u64,
    mix: Mix,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draws key ids for a scenario; Zipf ranks are scattered over the key
/// space so hot keys do not share pages.
struct Keys {
    n: u64,
    cdf: Option<Vec<f64>>,
    rng: Rng,
}

impl Keys {
    fn new(n: u64, mix: Mix, seed: u64) -> Self {
        let cdf = matches!(mix, Mix::Zipf).then(|| {
            let mut acc = 0.0;
            let mut cdf: Vec<f64> = (1..=n)
                .map(|r| {
                    acc += 1.0 / r as f64;
                    acc
                })
                .collect();
            for c in &mut cdf {
                *c /= acc;
            }
            cdf
        });
        Keys {
            n,
            cdf,
            rng: Rng(seed),
        }
    }

    fn next(&mut self) -> u64 {
        match &self.cdf {
            None => self.rng.next() % self.n,
            Some(cdf) => {
                let u = self.rng.unit();
                let rank = cdf.partition_point(|c| *c < u) as u64;
                rank.wrapping_mul(0x9e37_79b9_7f4a_7c15) % self.n
            }
        }
    }
}

fn proc_io() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("write_bytes:"), field("wchar:"))
}

/// CPU seconds (user + system) of the process and of the calling thread.
fn cpu_seconds() -> (f64, f64) {
    let ticks = |path: &str| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        (field(11) + field(12)) / 100.0
    };
    (ticks("/proc/self/stat"), ticks("/proc/thread-self/stat"))
}

fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| disk_usage(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

struct Figures {
    events_per_s: f64,
    per_process_cpu: f64,
    per_writer_cpu: f64,
    bytes_per_event: f64,
    wchar_per_event: f64,
    disk: u64,
    p50: Duration,
    p99: Duration,
    events: u64,
    elapsed: Duration,
    process_cpu: f64,
    writer_cpu: f64,
    bytes: u64,
}

fn run(store: Arc<dyn Candidate>, scenario: &Scenario, path: &Path, budget: Duration) -> Figures {
    run_for(store, scenario, path, budget, MAX_EVENTS)
}

/// Replays at most `max_events` events, for at most `budget`.
fn run_for(
    store: Arc<dyn Candidate>,
    scenario: &Scenario,
    path: &Path,
    budget: Duration,
    max_events: u64,
) -> Figures {
    store.preload(scenario.keys);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, stop, n) = (Arc::clone(&store), Arc::clone(&stop), scenario.keys);
        std::thread::spawn(move || {
            let mut rng = Rng(99);
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let id = rng.next() % n;
                let t = Instant::now();
                std::hint::black_box(store.get(id));
                lat.push(t.elapsed());
                std::thread::sleep(Duration::from_micros(100));
            }
            lat
        })
    };
    let mut keys = Keys::new(scenario.keys, scenario.mix, 1);
    let (bytes0, wchar0) = proc_io();
    let (process0, writer0) = cpu_seconds();
    let started = Instant::now();
    let mut events = 0u64;
    let mut ids = Vec::with_capacity(BATCH);
    while events < max_events && started.elapsed() < budget {
        ids.clear();
        ids.extend((0..BATCH).map(|_| keys.next()));
        events += BATCH as u64;
        store.batch(&ids, events);
    }
    store.sync();
    let elapsed = started.elapsed();
    let (bytes1, wchar1) = proc_io();
    let (process1, writer1) = cpu_seconds();
    stop.store(true, Ordering::Relaxed);
    let mut lat = reader.join().unwrap_or_default();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        events_per_s: events as f64 / elapsed.as_secs_f64(),
        per_process_cpu: events as f64 / (process1 - process0).max(0.01),
        per_writer_cpu: events as f64 / (writer1 - writer0).max(0.01),
        bytes_per_event: (bytes1 - bytes0) as f64 / events as f64,
        wchar_per_event: (wchar1 - wchar0) as f64 / events as f64,
        disk: disk_usage(path),
        p50: pct(0.50),
        p99: pct(0.99),
        events,
        elapsed,
        process_cpu: process1 - process0,
        writer_cpu: writer1 - writer0,
        bytes: bytes1 - bytes0,
    }
}

/// The candidates: name, whether it runs at 10M keys, and how to open it.
type Opener = fn(&Path) -> Arc<dyn Candidate>;

fn redb(path: &Path, write_buffer_bytes: usize, cache_bytes: usize) -> Arc<dyn Candidate> {
    redb_cached(path, write_buffer_bytes, cache_bytes, 0)
}

fn redb_cached(
    path: &Path,
    write_buffer_bytes: usize,
    cache_bytes: usize,
    row_cache_bytes: usize,
) -> Arc<dyn Candidate> {
    let options = ViewOptions {
        sync_interval: Duration::from_millis(200),
        write_buffer_bytes,
        cache_bytes,
        row_cache_bytes,
    };
    Arc::new(Redb::new(
        View::open_with(&path.join("v.redb"), options).expect("open"),
    ))
}

fn candidates() -> Vec<(&'static str, bool, Opener)> {
    vec![
        // Before the write buffer: one transaction per batch, redb's
        // default cache of 1 GiB.
        ("redb-today", true, |p| redb(p, 0, 1 << 30)),
        ("redb-today-cache64M", false, |p| redb(p, 0, 64 << 20)),
        ("redb-durable-every-commit", false, |p| {
            Arc::new(Redb::new(
                View::open_with(
                    &p.join("v.redb"),
                    ViewOptions {
                        sync_interval: Duration::ZERO,
                        write_buffer_bytes: 0,
                        cache_bytes: 1 << 30,
                        row_cache_bytes: 0,
                    },
                )
                .expect("open"),
            ))
        }),
        // A write buffer of ~8 batches of distinct keys.
        ("redb-buffer16M", false, |p| redb(p, 16 << 20, 256 << 20)),
        ("redb-buffer64M", true, |p| redb(p, 64 << 20, 256 << 20)),
        // The buffer and a row cache of 256 MiB (the default).
        ("redb-buffer64M-rows256M", true, |p| {
            redb_cached(p, 64 << 20, 256 << 20, 256 << 20)
        }),
        ("redb-buffer256M", false, |p| redb(p, 256 << 20, 256 << 20)),
        ("redb-buffer64M-cache64M", false, |p| {
            redb(p, 64 << 20, 64 << 20)
        }),
        ("fjall", true, |p| {
            Arc::new(Fjall::open(&p.join("fjall"), 256 << 20))
        }),
    ]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// `-- background`: the default view (64 MiB buffer, 256 MiB cache) at 1M
/// keys, writing a full buffer in the background against on the committing
/// thread, in pairs run back to back in alternating order, each on a fresh
/// view. `KAPPA_STORE_BENCH_EVENTS` events per run (default 6,000,000, so
/// the buffer fills about five times), `KAPPA_STORE_BENCH_RUNS` pairs
/// (default 3).
fn background_comparison() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let events = env("KAPPA_STORE_BENCH_EVENTS", 6_000_000);
    let runs = env("KAPPA_STORE_BENCH_RUNS", 3);
    let base = std::env::var_os("KAPPA_STORE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let scenario = Scenario {
        name: "1M",
        keys: 1_000_000,
        mix: Mix::Uniform,
    };
    println!(
        "| pair | writes | events | elapsed s | events/s elapsed | writer CPU-s | process CPU-s | events/writer CPU-s | in commit s | longest commit | bytes/ev | get p99 | load before/after |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut ratios = Vec::new();
    for pair in 0..runs {
        let order = if pair % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut elapsed = [0.0; 2];
        let mut writer = [0.0; 2];
        for background in order {
            let dir = tempfile::tempdir_in(&base).expect("temporary directory");
            let view = View::open_with(&dir.path().join("v.redb"), ViewOptions::default())
                .expect("open")
                .with_background_writes(background);
            let store = Arc::new(Redb::new(view));
            let load = load_average();
            let f = run_for(
                Arc::clone(&store) as Arc<dyn Candidate>,
                &scenario,
                dir.path(),
                Duration::from_secs(3600),
                events,
            );
            let (in_commit, longest) = store.commit_time();
            let i = usize::from(!background);
            elapsed[i] = f.elapsed.as_secs_f64();
            writer[i] = f.writer_cpu;
            println!(
                "| {pair} | {} | {} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2?} | {:.1} | {:.1?} | {load}/{} |",
                if background {
                    "background"
                } else {
                    "on the commit"
                },
                f.events,
                f.elapsed.as_secs_f64(),
                f.events_per_s,
                f.writer_cpu,
                f.process_cpu,
                f.per_writer_cpu,
                in_commit.as_secs_f64(),
                longest,
                f.bytes as f64 / f.events as f64,
                f.p99,
                load_average(),
            );
        }
        ratios.push((elapsed[1] / elapsed[0], writer[1] / writer[0]));
    }
    for (pair, (elapsed, writer)) in ratios.iter().enumerate() {
        println!(
            "pair {pair}: on the commit / background: elapsed {elapsed:.2}, writer CPU-s {writer:.2}"
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.iter().any(|a| a == "background") {
        background_comparison();
        return;
    }
    let quick = args.iter().any(|a| a == "quick");
    let base = std::env::var_os("KAPPA_STORE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    if args.iter().any(|a| a == "shards") {
        shards::run(&base);
        return;
    }
    if args.iter().any(|a| a == "row-cache-memory") {
        row_cache_memory::run(&base);
        return;
    }
    if args.iter().any(|a| a == "fresh-replay") {
        fresh_replay::run(&base);
        return;
    }
    if args.iter().any(|a| a == "bulk-write") {
        bulk_write::run(&base);
        return;
    }
    let only: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("keys="))
        .collect();
    let named: Vec<&String> = args
        .iter()
        .filter(|a| *a != "quick" && !a.starts_with("keys="))
        .collect();
    let budget = Duration::from_secs(
        std::env::var("KAPPA_STORE_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let mut scenarios = vec![
        Scenario {
            name: "1k",
            keys: 1_000,
            mix: Mix::Uniform,
        },
        Scenario {
            name: "100k",
            keys: 100_000,
            mix: Mix::Uniform,
        },
    ];
    if !quick {
        scenarios.push(Scenario {
            name: "1M",
            keys: 1_000_000,
            mix: Mix::Uniform,
        });
        scenarios.push(Scenario {
            name: "1M-zipf",
            keys: 1_000_000,
            mix: Mix::Zipf,
        });
        scenarios.push(Scenario {
            name: "10M",
            keys: 10_000_000,
            mix: Mix::Uniform,
        });
    }
    println!(
        "| candidate | keys | events | events/s elapsed | per writer CPU-s | per process CPU-s | x today@1k | bytes/ev | wchar/ev | x change | disk MB | get p50 | get p99 |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut reference: Option<f64> = None;
    scenarios.retain(|s| only.is_empty() || only.contains(&s.name));
    for scenario in &scenarios {
        for (name, at_10m, open) in candidates() {
            if !named.is_empty() && !named.iter().any(|n| n.as_str() == name) {
                continue;
            }
            if scenario.keys >= 10_000_000 && !at_10m {
                continue;
            }
            let dir = tempfile::tempdir_in(&base).expect("temporary directory");
            let store = open(dir.path());
            let f = run(store, scenario, dir.path(), budget);
            if name == "redb-today" && scenario.name == "1k" {
                reference = Some(f.per_process_cpu);
            }
            let ratio =
                reference.map_or("-".to_string(), |r| format!("{:.2}", f.per_process_cpu / r));
            println!(
                "| {name} | {} | {} | {:.0} | {:.0} | {:.0} | {ratio} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1?} | {:.1?} |",
                scenario.name,
                f.events,
                f.events_per_s,
                f.per_writer_cpu,
                f.per_process_cpu,
                f.bytes_per_event,
                f.wchar_per_event,
                f.bytes_per_event / CHANGE_BYTES,
                f.disk as f64 / 1e6,
                f.p50,
                f.p99,
            );
        }
    }
    if !quick && named.is_empty() && only.is_empty() {
        shards::run(&base);
    }
}
