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
//!
//! Every figure is the median of `--runs` runs; the machine may be shared, so
//! nothing here asserts a speed. What it does check: every way of computing a
//! view gives the same view (sha256 digest), else the benchmark fails.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kappa::eventlog::EventLog;
use kappa::log::{EmbeddedLog, LogOptions, NewRecord, Record};
use kappa::registry::{Settings, VersionId};
use kappa::runtime::{Instance, Plugin, Runtime};
use kappa::store::{Snapshot, View, Writes};
use kappa::workload::PaymentGenerator;
use kappa::{Host, HostOptions};

// The allocator of the `kappa` binary (host/src/main.rs), so that the
// figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What to run and how big.
#[derive(Debug, Clone)]
pub struct Options {
    /// Small sizes: seconds instead of minutes.
    pub quick: bool,
    /// Events of the replay logs (sections 1, 3 and the replay of 4).
    pub events: usize,
    /// Events of the Python/JS comparison (section 2).
    pub polyglot_events: usize,
    /// Distinct keys (accounts) of the generated payments.
    pub keys: u64,
    /// Runs per figure; the median is reported.
    pub runs: usize,
    /// Sections to run (1..=7).
    pub sections: Vec<u8>,
    /// Directory holding payments-v2-python.wasm and payments-v2-js.wasm.
    pub polyglot: Option<PathBuf>,
    /// Produce rate of the latency measurement, events/s.
    pub live_rate: u64,
    /// Length of each latency measurement.
    pub live_seconds: f64,
    /// Events appended by the ingest measurement.
    pub ingest_events: usize,
    /// Versions deployed by the memory measurement.
    pub memory_versions: usize,
    /// Batch sizes of the sweep in section 1.
    pub batch_sweep: Vec<usize>,
}

impl Options {
    /// The full run.
    pub fn full() -> Self {
        Options {
            quick: false,
            events: 500_000,
            polyglot_events: 20_000,
            keys: 1_000,
            runs: 5,
            sections: (1..=7).collect(),
            polyglot: None,
            live_rate: 10_000,
            live_seconds: 5.0,
            ingest_events: 500_000,
            memory_versions: 4,
            batch_sweep: vec![256, 1024, 4096, 16384],
        }
    }

    /// Small sizes, for a check that everything runs.
    pub fn quick() -> Self {
        Options {
            quick: true,
            events: 50_000,
            polyglot_events: 2_000,
            runs: 1,
            live_rate: 10_000,
            live_seconds: 1.0,
            ingest_events: 50_000,
            memory_versions: 2,
            batch_sweep: vec![256, 1024],
            ..Options::full()
        }
    }

    fn from_args() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut options = if args.iter().any(|a| a == "--quick") {
            Options::quick()
        } else {
            Options::full()
        };
        options.polyglot = std::env::var_os("KAPPA_POLYGLOT_DIR").map(PathBuf::from);
        let mut json = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let number = |name: &str, v: String| {
                v.replace('_', "")
                    .parse::<usize>()
                    .map_err(|e| format!("{name} {v}: {e}"))
            };
            match arg.as_str() {
                "--quick" | "--bench" => {}
                "--events" => options.events = number(arg, value(arg)?)?,
                "--polyglot-events" => options.polyglot_events = number(arg, value(arg)?)?,
                "--keys" => options.keys = number(arg, value(arg)?)? as u64,
                "--runs" => options.runs = number(arg, value(arg)?)?.max(1),
                "--rate" => options.live_rate = number(arg, value(arg)?)? as u64,
                "--seconds" => {
                    options.live_seconds =
                        value(arg)?.parse().map_err(|e| format!("--seconds: {e}"))?
                }
                "--polyglot" => options.polyglot = Some(PathBuf::from(value(arg)?)),
                "--batches" => {
                    options.batch_sweep = value(arg)?
                        .split(',')
                        .map(|s| number("--batches", s.trim().to_owned()))
                        .collect::<Result<_, _>>()?;
                }
                "--json" => json = Some(PathBuf::from(value(arg)?)),
                "--only" => {
                    options.sections = value(arg)?
                        .split(',')
                        .map(|s| {
                            s.trim()
                                .parse::<u8>()
                                .map_err(|e| format!("--only {s}: {e}"))
                        })
                        .collect::<Result<_, _>>()?;
                }
                other => {
                    return Err(format!(
                        "unknown argument `{other}`; use --quick, --events N, --polyglot-events N, \
                         --keys N, --runs N, --rate N, --seconds S, --polyglot DIR, --only 1,2,.., \
                         --batches 256,1024,.. , --json FILE"
                    ));
                }
            }
        }
        if let Some(path) = json {
            JSON_OUT.set(path).ok();
        }
        Ok(options)
    }
}

static JSON_OUT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// One figure of a section.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Ratio to the section's baseline (same unit, same run), when it has one.
    pub ratio: Option<f64>,
}

/// The figures of one section, the first being its baseline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Section {
    /// 1 to 7.
    pub id: u8,
    /// What it measures.
    pub title: String,
    /// What the ratios mean.
    pub ratio_meaning: String,
    /// The figures.
    pub figures: Vec<Figure>,
    /// Facts checked and remarks (views identical, sizes, ...).
    pub notes: Vec<String>,
}

impl Section {
    fn new(id: u8, title: &str, ratio_meaning: &str) -> Self {
        Section {
            id,
            title: title.into(),
            ratio_meaning: ratio_meaning.into(),
            figures: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn figure(&mut self, name: impl Into<String>, value: f64, unit: &str, ratio: Option<f64>) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            ratio,
        });
    }

    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    fn print(&self) {
        println!();
        println!("== {}. {} ==", self.id, self.title);
        println!("   ratio: {}", self.ratio_meaning);
        let width = self.figures.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for f in &self.figures {
            let ratio = f.ratio.map(|r| format!("{r:>8.3}")).unwrap_or_default();
            println!(
                "   {:<width$}  {:>14} {:<9} {}",
                f.name,
                fmt_value(f.value),
                f.unit,
                ratio
            );
        }
        for n in &self.notes {
            println!("   - {n}");
        }
    }
}

fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Machine description.
    pub machine: String,
    /// Mode and sizes.
    pub setup: String,
    /// The sections run.
    pub sections: Vec<Section>,
}

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
        "{} mode: {} events of ~100 bytes over {} keys (payments v2 logic), median of {} run(s)",
        if options.quick { "quick" } else { "full" },
        options.events,
        options.keys,
        options.runs
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
            other => panic!("no section {other}; sections are 1 to 7"),
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

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("unknown memory".into(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    format!("machine: {cores} cores, {cpu}, {mem}")
}

// ------------------------------------------------------------------ data

/// `n` payments keyed by account, as log records.
fn payments(seed: u64, keys: u64, n: usize) -> Vec<NewRecord> {
    let mut generator = PaymentGenerator::new(seed, keys, 1_767_225_600_000);
    (0..n)
        .map(|_| {
            let p = generator.next_payment();
            NewRecord {
                timestamp: p.timestamp,
                key: Some(p.account.clone().into_bytes()),
                value: serde_json::to_vec(&p).unwrap(),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// Appends `records` to `topic`, each to its key's partition.
fn fill(log: &dyn EventLog, topic: &str, records: Vec<NewRecord>) {
    let partitions = log.topic(topic).unwrap().partitions;
    let mut batch = Vec::with_capacity(50_000);
    for r in records {
        let p = kappa::log::partition_for_key(r.key.as_deref().unwrap_or_default(), partitions);
        batch.push((p, r));
        if batch.len() == 50_000 {
            log.append(topic, std::mem::take(&mut batch)).unwrap();
        }
    }
    if !batch.is_empty() {
        log.append(topic, batch).unwrap();
    }
}

/// Which side of a pair runs first in run `run`: native then Wasm in even
/// runs, Wasm then native in odd ones (`true` is the Wasm side), so that an
/// effect of order (the previous run's final sync, a warmer cache) falls on
/// each side equally often and cancels in the median of the ratios.
fn pair_order(run: usize) -> [bool; 2] {
    if run.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

/// The median of the ratios `a[i] / b[i]`: each pair is measured back to
/// back, so a change of the machine's load during the run moves both terms
/// of a pair and cancels out, where a ratio of two medians would not.
fn paired_ratio(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(a, b)| a / b).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ------------------------------------------------------------------ processors

/// What a replay loop runs on each batch: the plugin, or its native twin.
trait Processor: Send {
    fn process(&mut self, snapshot: Snapshot, events: Vec<Record>) -> Writes;
}

/// The payments v2 rules compiled for the host.
struct Native {
    config: payments_v2::Config,
}

impl Native {
    fn new() -> Self {
        Native {
            config: payments_v2::Config::default(),
        }
    }
}

/// The view as the native rules see it: the same read-your-writes overlay of
/// the batch's writes on a snapshot that the Wasm host functions implement.
struct NativeView {
    snapshot: Snapshot,
    writes: Writes,
}

impl payments_core::View for NativeView {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(pending) = self.writes.get(key) {
            return pending.clone();
        }
        self.snapshot.get(key).unwrap()
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
    }
}

impl Processor for Native {
    fn process(&mut self, snapshot: Snapshot, events: Vec<Record>) -> Writes {
        let mut view = NativeView {
            snapshot,
            writes: Writes::new(),
        };
        let inputs = events.iter().map(|r| payments_core::Input {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.as_deref(),
            value: &r.value,
        });
        payments_v2::process_batch(&self.config, &mut view, inputs).unwrap();
        view.writes
    }
}

struct Wasm(Instance);

impl Processor for Wasm {
    fn process(&mut self, snapshot: Snapshot, events: Vec<Record>) -> Writes {
        match self.0.process(snapshot, events) {
            Ok(writes) => writes,
            Err(failure) => panic!("the plugin failed: {}", failure.message),
        }
    }
}

/// Replays `partitions` of `topic` from offset 0 into `view` exactly as a
/// version's worker does: round-robin over the partitions, one batch of up to
/// `batch` events each, a snapshot per batch, the batch's writes committed
/// with the partition's next offset (not fsynced), one sync at the end.
/// Returns the events replayed.
fn replay(
    log: &dyn EventLog,
    topic: &str,
    partitions: &[u32],
    view: &View,
    batch: usize,
    processor: &mut dyn Processor,
) -> u64 {
    let mut readers: Vec<_> = partitions
        .iter()
        .map(|&p| (p, log.reader(topic, p, 0).unwrap()))
        .collect();
    let mut buf: Vec<Record> = Vec::with_capacity(batch);
    let mut total = 0;
    loop {
        let mut worked = false;
        for (partition, reader) in &mut readers {
            buf.clear();
            reader.read_batch(batch, 4 << 20, &mut buf).unwrap();
            let Some(last) = buf.last().map(|r| r.offset) else {
                continue;
            };
            total += buf.len() as u64;
            let events = std::mem::take(&mut buf);
            let writes = processor.process(view.snapshot().unwrap(), events);
            view.commit(*partition, last + 1, &writes, false).unwrap();
            worked = true;
        }
        if !worked {
            break;
        }
    }
    view.sync().unwrap();
    total
}

// ------------------------------------------------------------------ the bench

struct Bench {
    options: Options,
    dir: tempfile::TempDir,
    host: Arc<Host>,
    runtime: Runtime,
    rust: Arc<Plugin>,
    settings: Settings,
    /// Events of topic `one` (one partition) and `two` (two partitions).
    counter: AtomicU64,
}

const ONE: &str = "one";
const TWO: &str = "two";

impl Bench {
    /// The payments v2 components to measure: Rust, plus Python and
    /// JavaScript when `--polyglot` names a directory holding them.
    fn plugins(&self) -> Vec<(String, Vec<u8>)> {
        let mut plugins: Vec<(String, Vec<u8>)> =
            vec![("Rust".into(), kappa_plugins::PAYMENTS_V2.bytes.to_vec())];
        if let Some(dir) = &self.options.polyglot {
            for (lang, file) in [
                ("Python", "payments-v2-python.wasm"),
                ("JavaScript", "payments-v2-js.wasm"),
            ] {
                if let Ok(bytes) = std::fs::read(dir.join(file)) {
                    plugins.push((lang.into(), bytes));
                }
            }
        }
        plugins
    }

    fn new(options: &Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::open(&dir.path().join("host"), HostOptions::default()).unwrap();
        let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
        let bytes = kappa_plugins::PAYMENTS_V2.bytes;
        let rust = Arc::new(runtime.load(bytes, &sha256(bytes)).unwrap());
        let started = Instant::now();
        host.create_topic(ONE, 1).unwrap();
        host.create_topic(TWO, 2).unwrap();
        let records = payments(11, options.keys, options.events);
        let bytes: usize = records
            .iter()
            .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.len())
            .sum();
        fill(host.log().as_ref(), ONE, records.clone());
        fill(host.log().as_ref(), TWO, records);
        println!(
            "generated {} payments ({:.1} bytes of key + value each, {:.0} bytes on disk with \
             the record framing) into a 1-partition and a 2-partition topic in {:.1} s",
            options.events,
            bytes as f64 / options.events.max(1) as f64,
            bytes as f64 / options.events.max(1) as f64 + 34.0,
            started.elapsed().as_secs_f64()
        );
        Bench {
            options: options.clone(),
            dir,
            host,
            runtime,
            rust,
            settings: Settings::default(),
            counter: AtomicU64::new(0),
        }
    }

    fn fresh_view(&self, label: &str) -> (View, PathBuf) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("view-{label}-{n}.redb"));
        (View::open(&path, Duration::from_millis(200)).unwrap(), path)
    }

    fn wasm(&self, plugin: &Plugin) -> Wasm {
        Wasm(
            self.runtime
                .instantiate(plugin, "bench@1.0.0", &self.settings)
                .map_err(|f| f.message)
                .unwrap(),
        )
    }

    /// Seconds to replay `partitions` of `topic` with one thread, and the
    /// view's digest.
    fn timed_replay(
        &self,
        topic: &str,
        partitions: &[u32],
        batch: usize,
        processor: &mut dyn Processor,
    ) -> (f64, String) {
        let (seconds, _, digest) = self.cpu_timed_replay(topic, partitions, batch, processor);
        (seconds, digest)
    }

    /// [`timed_replay`](Self::timed_replay) that also returns the CPU time
    /// the replaying thread used: on a shared machine, time spent waiting
    /// for a core inflates the elapsed time but not the CPU time.
    fn cpu_timed_replay(
        &self,
        topic: &str,
        partitions: &[u32],
        batch: usize,
        processor: &mut dyn Processor,
    ) -> (f64, f64, String) {
        let (view, path) = self.fresh_view(topic);
        let started = Instant::now();
        let cpu = thread_cpu_seconds();
        replay(
            self.host.log().as_ref(),
            topic,
            partitions,
            &view,
            batch,
            processor,
        );
        // At least one clock tick, the resolution: tiny runs (the smoke
        // test) may use less.
        let cpu = (thread_cpu_seconds() - cpu).max(0.01);
        let seconds = started.elapsed().as_secs_f64();
        let digest = view.snapshot().unwrap().digest().unwrap().sha256;
        drop(view);
        std::fs::remove_file(path).ok();
        (seconds, cpu, digest)
    }

    /// Seconds for a new version of the product (`Host::deploy`, its worker)
    /// to replay all of `topic`, from the deploy call to the last event
    /// applied, and its view's digest.
    fn host_replay(&self, name: &str, topic: &str, bytes: &[u8]) -> (f64, String) {
        let id = VersionId::parse(&format!(
            "{name}@1.0.{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ))
        .unwrap();
        let total: u64 = self.host.log().end_offsets(topic).unwrap().iter().sum();
        let started = Instant::now();
        self.host
            .deploy(&id, topic, bytes, self.settings.clone())
            .unwrap();
        wait_applied(&self.host, &id, total, Duration::from_millis(1));
        let seconds = started.elapsed().as_secs_f64();
        let digest = self.host.digest(&id.to_string()).unwrap().1.sha256;
        (seconds, digest)
    }

    // -------------------------------------------------------------- 1

    fn replay_throughput(&self) -> Section {
        let mut s = Section::new(
            1,
            "replay throughput, payments v2, 1 partition, 1 core",
            "Wasm time / native time (target: at most 1.5)",
        );
        let n = self.options.events as f64;
        let batch = HostOptions::default().batch_size;
        // Warm up both (page cache, allocator, compiled code).
        self.timed_replay(ONE, &[0], batch, &mut Native::new());
        self.timed_replay(ONE, &[0], batch, &mut self.wasm(&self.rust));
        let (mut native, mut wasm, mut host) = (Vec::new(), Vec::new(), Vec::new());
        let (mut native_cpu, mut wasm_cpu) = (Vec::new(), Vec::new());
        let mut digests = Vec::new();
        for run in 0..self.options.runs {
            for wasm_side in pair_order(run) {
                let (t, cpu, d) = if wasm_side {
                    self.cpu_timed_replay(ONE, &[0], batch, &mut self.wasm(&self.rust))
                } else {
                    self.cpu_timed_replay(ONE, &[0], batch, &mut Native::new())
                };
                let (times, cpus, name) = if wasm_side {
                    (&mut wasm, &mut wasm_cpu, "wasm")
                } else {
                    (&mut native, &mut native_cpu, "native")
                };
                times.push(t);
                cpus.push(cpu);
                digests.push((name, d));
            }
            let (t, d) = self.host_replay("replay", ONE, kappa_plugins::PAYMENTS_V2.bytes);
            host.push(t);
            digests.push(("host", d));
        }
        let wasm_ratio = paired_ratio(&wasm, &native);
        let host_ratio = paired_ratio(&host, &native);
        let cpu_ratio = paired_ratio(&wasm_cpu, &native_cpu);
        let native_busy = paired_ratio(&native_cpu, &native);
        let (native, wasm, host) = (median(native), median(wasm), median(host));
        let (native_cpu, wasm_cpu) = (median(native_cpu), median(wasm_cpu));
        s.figure(
            format!("native rules, batch {batch}"),
            n / native,
            "events/s",
            Some(1.0),
        );
        s.figure(
            format!("Rust Wasm plugin, batch {batch}"),
            n / wasm,
            "events/s",
            Some(wasm_ratio),
        );
        s.figure(
            "Rust Wasm plugin, product worker (deploy to caught up)",
            n / host,
            "events/s",
            Some(host_ratio),
        );
        s.figure(
            "native rules, per CPU-second of the replaying thread",
            n / native_cpu,
            "events/s",
            Some(native_busy),
        );
        s.figure(
            "Rust Wasm plugin, per CPU-second of the replaying thread",
            n / wasm_cpu,
            "events/s",
            Some(cpu_ratio),
        );
        check_same(&mut s, &digests);
        s.note(
            "CPU-second rows: the native row's ratio is its CPU time / its elapsed time (below \
             1 when the thread waited for a core), the Wasm row's is Wasm CPU time / native CPU \
             time; every ratio is the median of the ratios of runs made back to back, every rate \
             the median of the rates",
        );
        s.note(format!(
            "target 1,000,000 events/s for the Wasm plugin: {} ({:.0} events/s elapsed, {:.0} \
             per CPU-second)",
            if n / wasm >= 1_000_000.0 {
                "met"
            } else {
                "NOT met"
            },
            n / wasm,
            n / wasm_cpu
        ));
        // Batch size sweep: the same comparison at other batch sizes, in
        // CPU time (less disturbed by other processes than elapsed time).
        for &b in &self.options.batch_sweep {
            let (mut tn, mut tw) = (Vec::new(), Vec::new());
            for run in 0..self.options.runs {
                for wasm_side in pair_order(run) {
                    if wasm_side {
                        let cpu = self.cpu_timed_replay(ONE, &[0], b, &mut self.wasm(&self.rust));
                        tw.push(cpu.1);
                    } else {
                        tn.push(self.cpu_timed_replay(ONE, &[0], b, &mut Native::new()).1);
                    }
                }
            }
            let ratio = paired_ratio(&tw, &tn);
            let (tn, tw) = (median(tn), median(tw));
            s.figure(
                format!("sweep: native, batch {b}, per CPU-second"),
                n / tn,
                "events/s",
                Some(tn / native_cpu),
            );
            s.figure(
                format!("sweep: Wasm, batch {b}, per CPU-second"),
                n / tw,
                "events/s",
                Some(ratio),
            );
        }
        s.note(
            "sweep ratios: native rows are CPU time / native CPU time at the default batch, Wasm \
             rows are Wasm CPU time / native CPU time at the same batch",
        );
        s
    }

    // -------------------------------------------------------------- 2

    fn languages(&self) -> Section {
        let mut s = Section::new(
            2,
            "replay throughput by plugin language, payments v2, 1 partition",
            "events/s / events/s of the Rust plugin (higher is better)",
        );
        let n = self.options.polyglot_events;
        let topic = "poly";
        self.host.create_topic(topic, 1).unwrap();
        fill(
            self.host.log().as_ref(),
            topic,
            payments(12, self.options.keys, n),
        );
        let batch = HostOptions::default().batch_size;
        let mut plugins: Vec<(String, Arc<Plugin>)> = vec![("Rust".into(), self.rust.clone())];
        match &self.options.polyglot {
            Some(dir) => {
                for (lang, file) in [
                    ("Python", "payments-v2-python.wasm"),
                    ("JavaScript", "payments-v2-js.wasm"),
                ] {
                    let path = dir.join(file);
                    let Ok(bytes) = std::fs::read(&path) else {
                        s.note(format!("{lang}: {} not found, skipped", path.display()));
                        continue;
                    };
                    let started = Instant::now();
                    let plugin = self.runtime.load(&bytes, &sha256(&bytes)).unwrap();
                    s.note(format!(
                        "{lang}: {:.1} MB component, compiled in {:.1} s",
                        bytes.len() as f64 / 1e6,
                        started.elapsed().as_secs_f64()
                    ));
                    plugins.push((lang.into(), Arc::new(plugin)));
                }
            }
            None => s.note(
                "Python and JavaScript skipped: build them with plugins/build-polyglot.sh DIR \
                 and pass --polyglot DIR (or set KAPPA_POLYGLOT_DIR)",
            ),
        }
        let mut digests = Vec::new();
        let mut times = vec![Vec::new(); plugins.len()];
        let (mut native, mut native_digest) = (Vec::new(), String::new());
        for _ in 0..self.options.runs {
            let (t, d) = self.timed_replay(topic, &[0], batch, &mut Native::new());
            native.push(t);
            native_digest = d;
            for (i, (lang, plugin)) in plugins.iter().enumerate() {
                let (t, d) = self.timed_replay(topic, &[0], batch, &mut self.wasm(plugin));
                times[i].push(t);
                digests.push((lang.as_str(), d));
            }
        }
        digests.push(("native", native_digest));
        let rust = median(times[0].clone());
        for (i, (lang, _)) in plugins.iter().enumerate() {
            let t = median(times[i].clone());
            s.figure(lang.clone(), n as f64 / t, "events/s", Some(rust / t));
        }
        let native = median(native);
        s.figure(
            "native rules (reference)",
            n as f64 / native,
            "events/s",
            Some(rust / native),
        );
        s.note(format!("{n} events"));
        check_same(&mut s, &digests);
        s
    }

    // -------------------------------------------------------------- 3

    fn partitions(&self) -> Section {
        let mut s = Section::new(
            3,
            "replay scaling with partitions, 2 partitions, payments v2",
            "time of one thread / time of this row (speedup; 2.0 is perfect on 2 cores)",
        );
        let n = self.options.events as f64;
        let batch = HostOptions::default().batch_size;
        let mut digests = Vec::new();
        let (mut n1, mut n2, mut w1, mut w2, mut host) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..self.options.runs {
            let (t, d) = self.timed_replay(TWO, &[0, 1], batch, &mut Native::new());
            n1.push(t);
            digests.push(("native 1 thread", d));
            let (t, d) = self.parallel_replay(TWO, batch, || Box::new(Native::new()));
            n2.push(t);
            digests.push(("native 2 threads", d));
            let (t, d) = self.timed_replay(TWO, &[0, 1], batch, &mut self.wasm(&self.rust));
            w1.push(t);
            digests.push(("wasm 1 thread", d));
            let (t, d) = self.parallel_replay(TWO, batch, || Box::new(self.wasm(&self.rust)));
            w2.push(t);
            digests.push(("wasm 2 threads", d));
            let (t, d) = self.host_replay("scaling", TWO, kappa_plugins::PAYMENTS_V2.bytes);
            host.push(t);
            digests.push(("host", d));
        }
        let (n1, n2, w1, w2, host) = (median(n1), median(n2), median(w1), median(w2), median(host));
        s.figure("native, 1 thread", n / n1, "events/s", Some(1.0));
        s.figure(
            "native, 1 thread per partition",
            n / n2,
            "events/s",
            Some(n1 / n2),
        );
        s.figure("Wasm, 1 thread", n / w1, "events/s", Some(1.0));
        s.figure(
            "Wasm, 1 thread per partition",
            n / w2,
            "events/s",
            Some(w1 / w2),
        );
        s.figure(
            "Wasm, product worker (deploy to caught up)",
            n / host,
            "events/s",
            Some(w1 / host),
        );
        s.note(format!(
            "{} cores available; other processes on the machine share them",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
        check_same(&mut s, &digests);
        s
    }

    /// One thread per partition of `topic`, each with its own processor,
    /// all committing to one view (redb serializes the commits).
    fn parallel_replay(
        &self,
        topic: &str,
        batch: usize,
        make: impl Fn() -> Box<dyn Processor>,
    ) -> (f64, String) {
        let partitions = self.host.log().topic(topic).unwrap().partitions;
        let (view, path) = self.fresh_view(topic);
        let mut processors: Vec<_> = (0..partitions).map(|_| make()).collect();
        let log = self.host.log().as_ref();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for (p, processor) in processors.iter_mut().enumerate() {
                let view = &view;
                scope.spawn(move || replay(log, topic, &[p as u32], view, batch, &mut **processor));
            }
        });
        let seconds = started.elapsed().as_secs_f64();
        let digest = view.snapshot().unwrap().digest().unwrap().sha256;
        drop(view);
        std::fs::remove_file(path).ok();
        (seconds, digest)
    }

    // -------------------------------------------------------------- 4

    fn latency(&self) -> Section {
        let mut s = Section::new(
            4,
            "live latency, produce acknowledged to promoted view updated",
            "latency / the same percentile with nothing replaying beside it",
        );
        let topic = "live";
        self.host.create_topic(topic, 2).unwrap();
        let live = VersionId::parse("live@1.0.0").unwrap();
        self.host
            .deploy(
                &live,
                topic,
                kappa_plugins::PAYMENTS_V2.bytes,
                self.settings.clone(),
            )
            .unwrap();
        wait_applied(&self.host, &live, 0, Duration::from_millis(1));
        let mut generator = PaymentGenerator::new(13, self.options.keys, 1_767_225_600_000);
        let rate = self.options.live_rate;
        let seconds = self.options.live_seconds;

        let idle = self.measure_latency(&live, topic, &mut generator, rate, seconds);

        // Beside it: new versions replaying the 1-partition log one after
        // another, for as long as the measurement lasts.
        let stop = AtomicBool::new(false);
        let replayed = AtomicU64::new(0);
        let replaying = std::thread::scope(|scope| {
            let background = scope.spawn(|| self.replay_beside(&stop, &replayed));
            // Let the replay get going before measuring.
            std::thread::sleep(Duration::from_millis(200));
            let started = Instant::now();
            let before = replayed.load(Ordering::Relaxed);
            let lat = self.measure_latency(&live, topic, &mut generator, rate, seconds);
            let during = replayed.load(Ordering::Relaxed) - before;
            let elapsed = started.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            background.join().unwrap();
            (lat, during as f64 / elapsed)
        });
        let (busy, replay_rate) = replaying;
        for (label, l) in [
            ("nothing else running", &idle),
            ("a replay beside it", &busy),
        ] {
            let (p50, p99, max) = (
                percentile(&l.latencies, 0.5),
                percentile(&l.latencies, 0.99),
                percentile(&l.latencies, 1.0),
            );
            let base_p50 = percentile(&idle.latencies, 0.5);
            let base_p99 = percentile(&idle.latencies, 0.99);
            let idle_row = std::ptr::eq(l, &idle);
            let ratio = |v: f64, base: f64| Some(if idle_row { 1.0 } else { v / base });
            s.figure(format!("p50, {label}"), p50, "ms", ratio(p50, base_p50));
            s.figure(format!("p99, {label}"), p99, "ms", ratio(p99, base_p99));
            s.figure(format!("max, {label}"), max, "ms", None);
            s.figure(
                format!("events/s produced, {label}"),
                l.events as f64 / l.seconds,
                "events/s",
                None,
            );
        }
        s.figure("replay beside it", replay_rate, "events/s", None);
        let p99 = percentile(&busy.latencies, 0.99);
        s.note(format!(
            "{} produce calls per measurement (each acknowledged after fsync), {rate} events/s \
             asked for {seconds} s, 2 partitions; latency from the acknowledgement to the \
             promoted version's applied offsets covering the events (polled every 200 us)",
            idle.latencies.len()
        ));
        s.note(format!(
            "target p99 under 10 ms at 10,000 events/s with a replay beside it: {} ({p99:.2} ms)",
            if p99 < 10.0 && rate >= 10_000 {
                "met"
            } else {
                "NOT met"
            }
        ));
        s
    }

    fn replay_beside(&self, stop: &AtomicBool, replayed: &AtomicU64) {
        let total: u64 = self.host.log().end_offsets(ONE).unwrap().iter().sum();
        let mut k = 0;
        while !stop.load(Ordering::Relaxed) {
            let id = VersionId::parse(&format!("beside@1.0.{k}")).unwrap();
            k += 1;
            self.host
                .deploy(
                    &id,
                    ONE,
                    kappa_plugins::PAYMENTS_V2.bytes,
                    self.settings.clone(),
                )
                .unwrap();
            let mut last = 0;
            loop {
                let status = self.host.version_status(&id).unwrap();
                let applied: u64 = status.applied_offsets.iter().sum();
                replayed.fetch_add(applied - last, Ordering::Relaxed);
                last = applied;
                if applied >= total || stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // The first version is promoted when it catches up; the others
            // are retired so that only one replays at a time.
            // (Retiring the promoted one fails: it stays, idle.)
            let _ = self.host.retire(&id);
        }
    }

    fn measure_latency(
        &self,
        id: &VersionId,
        topic: &str,
        generator: &mut PaymentGenerator,
        rate: u64,
        seconds: f64,
    ) -> Latencies {
        let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<(u32, u64)>)>();
        let host = &self.host;
        std::thread::scope(|scope| {
            let observer = scope.spawn(move || {
                let mut pending: VecDeque<(Instant, Vec<(u32, u64)>)> = VecDeque::new();
                let mut latencies = Vec::new();
                let mut open = true;
                while open || !pending.is_empty() {
                    loop {
                        match rx.try_recv() {
                            Ok(item) => pending.push_back(item),
                            Err(std::sync::mpsc::TryRecvError::Empty) => break,
                            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                                open = false;
                                break;
                            }
                        }
                    }
                    if !pending.is_empty() {
                        let applied = host.version_status(id).unwrap().applied_offsets;
                        let now = Instant::now();
                        while let Some((acked, ends)) = pending.front() {
                            if ends
                                .iter()
                                .all(|&(p, end)| applied.get(p as usize).is_some_and(|&a| a >= end))
                            {
                                latencies.push(now.duration_since(*acked).as_secs_f64() * 1e3);
                                pending.pop_front();
                            } else {
                                break;
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                latencies
            });
            let started = Instant::now();
            let mut sent = 0u64;
            let mut calls = 0;
            while started.elapsed().as_secs_f64() < seconds {
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                if due <= sent {
                    std::thread::sleep(Duration::from_micros(500));
                    continue;
                }
                let n = (due - sent).min(5_000) as usize;
                let events = generator
                    .take(n)
                    .into_iter()
                    .map(|p| {
                        (
                            None,
                            NewRecord {
                                timestamp: p.timestamp,
                                key: Some(p.account.clone().into_bytes()),
                                value: serde_json::to_vec(&p).unwrap(),
                                headers: Vec::new(),
                            },
                        )
                    })
                    .collect();
                let report = host.produce(topic, events).unwrap();
                let acked = Instant::now();
                let ends = report
                    .partitions
                    .iter()
                    .map(|r| (r.partition, r.last_offset + 1))
                    .collect();
                tx.send((acked, ends)).unwrap();
                sent += n as u64;
                calls += 1;
            }
            let seconds = started.elapsed().as_secs_f64();
            drop(tx);
            let mut latencies = observer.join().unwrap();
            latencies.sort_by(f64::total_cmp);
            assert_eq!(latencies.len(), calls);
            Latencies {
                latencies,
                events: sent,
                seconds,
            }
        })
    }

    // -------------------------------------------------------------- 5

    fn ingest(&self) -> Section {
        let mut s = Section::new(
            5,
            "ingest throughput, embedded log, fsync per append call",
            "log events/s / plain buffered file events/s (same bytes, same fsyncs)",
        );
        let records = payments(14, self.options.keys, self.options.ingest_events);
        for (batch, count) in [
            (1usize, if self.options.quick { 200 } else { 2_000 }),
            (100, self.options.ingest_events / 10),
            (10_000, self.options.ingest_events),
        ] {
            let records = &records[..count.min(records.len())];
            let (mut log_t, mut file_t) = (Vec::new(), Vec::new());
            for run in 0..self.options.runs {
                let dir = self.dir.path().join(format!("ingest-{batch}-{run}"));
                std::fs::create_dir_all(&dir).unwrap();
                let plain = || {
                    let started = Instant::now();
                    plain_append(&dir.join("plain.bin"), records, batch);
                    started.elapsed().as_secs_f64()
                };
                // Alternate which goes first, so that neither always meets
                // the other's write-back.
                if run % 2 == 1 {
                    file_t.push(plain());
                }
                let log = EmbeddedLog::open(&dir.join("log"), LogOptions::default()).unwrap();
                log.create_topic("in", 1).unwrap();
                let started = Instant::now();
                for chunk in records.chunks(batch) {
                    log.append("in", chunk.iter().map(|r| (0, r.clone())).collect())
                        .unwrap();
                }
                log_t.push(started.elapsed().as_secs_f64());
                drop(log);
                if run.is_multiple_of(2) {
                    file_t.push(plain());
                }
                std::fs::remove_dir_all(&dir).ok();
            }
            let (lt, ft) = (median(log_t), median(file_t));
            let n = records.len() as f64;
            s.figure(
                format!("plain file, {batch} events per fsync"),
                n / ft,
                "events/s",
                Some(1.0),
            );
            s.figure(
                format!("embedded log, {batch} events per append"),
                n / lt,
                "events/s",
                Some(ft / lt),
            );
        }
        self.ingest_requests(&mut s, &records);
        s.note(
            "the log's time includes cloning each record out of the generated set (the append \
             API takes ownership); the plain file writes the same framed bytes (8-byte length + \
             checksum, then the body) through a 1 MiB BufWriter and calls sync_data per batch, \
             as the log does",
        );
        s.note(
            "requests over 4 partitions: each append spreads its events round-robin over 4 \
             partitions, so the log fsyncs 4 segments plus the request journal's intent (5 \
             fsyncs) where the plain file does 1; with a request id, the id is also checked and \
             remembered",
        );
        s
    }

    /// Section 5, multi-partition requests: appends spanning 4 partitions
    /// (each first records an intent in the request journal), without and
    /// with a request id, against the plain file with one fsync per batch.
    fn ingest_requests(&self, s: &mut Section, records: &[NewRecord]) {
        use kappa::log::RequestTag;
        let batch = 100usize;
        let records = &records[..(self.options.ingest_events / 10).min(records.len())];
        let n = records.len() as f64;
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for run in 0..self.options.runs {
            let dir = self.dir.path().join(format!("ingest-requests-{run}"));
            std::fs::create_dir_all(&dir).unwrap();
            let started = Instant::now();
            plain_append(&dir.join("plain.bin"), records, batch);
            times[0].push(started.elapsed().as_secs_f64());
            for (case, with_id) in [(1, false), (2, true)] {
                let log =
                    EmbeddedLog::open(&dir.join(format!("log-{case}")), LogOptions::default())
                        .unwrap();
                log.create_topic("in", 4).unwrap();
                let started = Instant::now();
                for (i, chunk) in records.chunks(batch).enumerate() {
                    let tag = with_id.then(|| RequestTag {
                        id: format!("bench-{i}"),
                        fingerprint: [i as u8; 32],
                    });
                    let events = chunk
                        .iter()
                        .enumerate()
                        .map(|(j, r)| ((j % 4) as u32, r.clone()))
                        .collect();
                    log.append_request("in", events, tag.as_ref()).unwrap();
                }
                times[case].push(started.elapsed().as_secs_f64());
            }
            std::fs::remove_dir_all(&dir).ok();
        }
        let [plain, journal, id] = times.map(median);
        s.figure(
            format!("plain file, {batch} events per fsync (requests baseline)"),
            n / plain,
            "events/s",
            Some(1.0),
        );
        s.figure(
            format!("embedded log, {batch} events per append over 4 partitions"),
            n / journal,
            "events/s",
            Some(plain / journal),
        );
        s.figure(
            format!("embedded log, {batch} events per append over 4 partitions, with a request id"),
            n / id,
            "events/s",
            Some(plain / id),
        );
    }

    // -------------------------------------------------------------- 6

    fn cold_start(&self) -> Section {
        let mut s = Section::new(
            6,
            "cold start, deploy to first event processed",
            "time with the compiled-code cache / time without it",
        );
        let plugins = self.plugins();
        for (lang, bytes) in &plugins {
            // Interpreters take ~15 s to compile: one run each for them.
            let runs = if lang == "Rust" { self.options.runs } else { 1 };
            let (mut cold, mut warm) = (Vec::new(), Vec::new());
            for run in 0..runs {
                let base = self.dir.path().join(format!("cold-{lang}-{run}"));
                let first = base.join("first");
                let (t, report) = first_event(&first, bytes);
                assert!(!report.compiled_from_cache);
                cold.push(t);
                // A second host with an empty data directory except for the
                // compiled code the first one left.
                let second = base.join("second");
                std::fs::create_dir_all(second.join("compiled")).unwrap();
                for entry in std::fs::read_dir(first.join("compiled")).unwrap() {
                    let entry = entry.unwrap();
                    std::fs::copy(
                        entry.path(),
                        second.join("compiled").join(entry.file_name()),
                    )
                    .unwrap();
                }
                let (t, report) = first_event(&second, bytes);
                assert!(report.compiled_from_cache);
                warm.push(t);
                std::fs::remove_dir_all(&base).ok();
            }
            let (cold, warm) = (median(cold), median(warm));
            s.figure(format!("{lang}, compiling"), cold * 1e3, "ms", Some(1.0));
            s.figure(
                format!("{lang}, from the cache"),
                warm * 1e3,
                "ms",
                Some(warm / cold),
            );
        }
        s.note(
            "each figure is a fresh host: deploy call (validate, compile or load, instantiate, \
             init) until the version has applied its first event",
        );
        s
    }

    // -------------------------------------------------------------- 7

    fn memory(&self) -> Section {
        /// Growth below this is the allocator's reuse, not a measurement.
        const MEASURABLE_BYTES: f64 = 100_000.0;
        let mut s = Section::new(
            7,
            "memory per deployed version (resident set of the host process)",
            "bytes per version / bytes per version of the Rust plugin",
        );
        let topic = "mem";
        let events = (self.options.events / 10).max(1000);
        self.host.create_topic(topic, 1).unwrap();
        fill(
            self.host.log().as_ref(),
            topic,
            payments(15, self.options.keys, events),
        );
        let plugins = self.plugins();
        let mut rust_steady = f64::NAN;
        let mut rust_peak = f64::NAN;
        for (i, (lang, bytes)) in plugins.iter().enumerate() {
            // The first deploy compiles (or loads) the code, which all later
            // versions with these bytes share: measured apart.
            let name = format!("mem{i}");
            let first = VersionId::parse(&format!("{name}@0.0.1")).unwrap();
            let before_code = rss_bytes();
            self.host
                .deploy(&first, topic, bytes, self.settings.clone())
                .unwrap();
            wait_applied(&self.host, &first, events as u64, Duration::from_millis(2));
            let code = rss_bytes().saturating_sub(before_code);
            let k = self.options.memory_versions;
            reset_peak();
            let before = rss_bytes();
            let mut ids = Vec::new();
            for v in 0..k {
                let id = VersionId::parse(&format!("{name}@1.0.{v}")).unwrap();
                self.host
                    .deploy(&id, topic, bytes, self.settings.clone())
                    .unwrap();
                ids.push(id);
            }
            for id in &ids {
                wait_applied(&self.host, id, events as u64, Duration::from_millis(2));
            }
            let steady = rss_bytes().saturating_sub(before) as f64 / k as f64;
            let peak = peak_bytes().saturating_sub(before) as f64 / k as f64;
            if i == 0 {
                rust_steady = steady;
                rust_peak = peak;
            }
            // A ratio only to a baseline that grew measurably: the
            // allocator may serve a version from memory that earlier
            // sections freed but kept resident, which shows as no growth.
            let ratio = |x: f64, base: f64| (base >= MEASURABLE_BYTES).then(|| x / base);
            s.figure(
                format!("{lang}, resident per version"),
                steady / 1e6,
                "MB",
                ratio(steady, rust_steady),
            );
            s.figure(
                format!("{lang}, peak per version"),
                peak / 1e6,
                "MB",
                ratio(peak, rust_peak),
            );
            s.figure(
                format!("{lang}, compiled code and first version"),
                code as f64 / 1e6,
                "MB",
                None,
            );
            for id in ids {
                self.host.retire(&id).unwrap();
            }
        }
        s.note(format!(
            "{} versions per language deployed at once, each replaying {events} events; \
             resident and peak (VmHWM, reset before deploying) growth of the whole process \
             divided by the number of versions (no ratio when the Rust figure is under 0.1 MB: \
             the allocator reused memory freed earlier); host resident before: {:.1} MB",
            self.options.memory_versions,
            rss_bytes() as f64 / 1e6
        ));
        s
    }
}

struct Latencies {
    latencies: Vec<f64>,
    events: u64,
    seconds: f64,
}

fn check_same(s: &mut Section, digests: &[(&str, String)]) {
    let first = &digests[0].1;
    for (who, d) in digests {
        assert_eq!(
            d, first,
            "the view of `{who}` differs from the view of `{}`",
            digests[0].0
        );
    }
    let mut who: Vec<&str> = digests.iter().map(|(w, _)| *w).collect();
    who.dedup();
    who.sort();
    who.dedup();
    s.note(format!(
        "views identical (sha256 {}): {}",
        &first[..12],
        who.join(", ")
    ));
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Waits until `id` has applied `total` events (all partitions summed).
fn wait_applied(host: &Host, id: &VersionId, total: u64, poll: Duration) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let status = host.version_status(id).unwrap();
        assert!(
            status.failure.is_none(),
            "{id} failed: {:?}",
            status.failure
        );
        let applied: u64 = status.applied_offsets.iter().sum();
        if applied >= total && (total > 0 || status.caught_up) {
            return;
        }
        assert!(Instant::now() < deadline, "{id} did not catch up in 600 s");
        std::thread::sleep(poll);
    }
}

/// Seconds from a deploy on a fresh host at `dir` to its first event
/// applied.
fn first_event(dir: &Path, bytes: &[u8]) -> (f64, kappa::model::DeployReport) {
    let host = Host::open(dir, HostOptions::default()).unwrap();
    host.create_topic("cold", 1).unwrap();
    fill(host.log().as_ref(), "cold", payments(16, 100, 1_000));
    let id = VersionId::parse("cold@1.0.0").unwrap();
    let started = Instant::now();
    let report = host
        .deploy(&id, "cold", bytes, Settings::default())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let status = host.version_status(&id).unwrap();
        if status.applied_offsets.iter().sum::<u64>() > 0 {
            break;
        }
        assert!(status.failure.is_none(), "{:?}", status.failure);
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_micros(200));
    }
    (started.elapsed().as_secs_f64(), report)
}

/// Writes `records` framed like the log (length and checksum, then a body of
/// the same length) to a plain file, `sync_data` after every `batch`.
fn plain_append(path: &Path, records: &[NewRecord], batch: usize) {
    let file = std::fs::File::create(path).unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut body = Vec::new();
    for chunk in records.chunks(batch) {
        for (i, r) in chunk.iter().enumerate() {
            body.clear();
            body.extend_from_slice(&(i as u64).to_le_bytes());
            body.extend_from_slice(&r.timestamp.to_le_bytes());
            let key = r.key.as_deref().unwrap_or_default();
            body.extend_from_slice(&(key.len() as i32).to_le_bytes());
            body.extend_from_slice(key);
            body.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
            body.extend_from_slice(&r.value);
            body.extend_from_slice(&0u16.to_le_bytes());
            out.write_all(&(body.len() as u32).to_le_bytes()).unwrap();
            out.write_all(&crc32fast::hash(&body).to_le_bytes())
                .unwrap();
            out.write_all(&body).unwrap();
        }
        out.flush().unwrap();
        out.get_ref().sync_data().unwrap();
    }
}

/// CPU time (user + system) of the calling thread so far, from
/// `/proc/thread-self/stat` (in clock ticks of 10 ms; the replays timed
/// with it last seconds). Zero where that file does not exist.
fn thread_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses: state is
    // field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_bytes() -> u64 {
    status_kb("VmRSS:") * 1024
}

fn peak_bytes() -> u64 {
    status_kb("VmHWM:") * 1024
}

/// Resets the peak resident set (VmHWM) to the current one (Linux).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").ok();
}
