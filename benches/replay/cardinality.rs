//! Section 8: key cardinality. A plain per-key aggregation (`key-totals`:
//! one view read and one write per event, serde_json rows) replayed over
//! logs with 1 k to 1 M distinct keys (10 M on request) and a skewed
//! (Zipf-like) mix, as the Wasm plugin and as its native twin, each into a
//! fresh view: events/s, bytes written to storage per event and the view's
//! size on disk, each as a ratio to the same figure at the fewest keys.
//!
//! Each mix has a log of its own (one partition, in a directory deleted
//! when the mix is measured), so the biggest sizes need disk only one at a
//! time.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kappa::HostOptions;
use kappa::log::{EmbeddedLog, LogOptions, NewRecord, Record};
use kappa::runtime::Plugin;
use kappa::store::{Snapshot, Writes};

use super::bench::{Bench, NativeView, Processor, replay};
use super::common::{
    check_same, median, pair_order, paired_ratio, process_cpu_seconds, sha256,
    storage_written_bytes,
};
use super::report::Section;

const TOPIC: &str = "keys";

/// How the events of a log pick their keys.
#[derive(Debug, Clone, Copy)]
enum Mix {
    /// Every one of `keys` keys equally often: rounds over all the keys,
    /// each round in an order of its own (a seeded shuffle), so that every
    /// key is in the view once the log has as many events as keys.
    Uniform { keys: u64 },
    /// Key of rank `r` (from 1) with weight `1 / r^exponent`; ranks are
    /// spread over the key space, so hot keys are not neighbours.
    Zipf { keys: u64, exponent: f64 },
}

impl Mix {
    fn label(&self) -> String {
        match self {
            Mix::Uniform { keys } => format!("{} keys", count(*keys)),
            Mix::Zipf { keys, exponent } => {
                format!("Zipf s={exponent} over {} keys", count(*keys))
            }
        }
    }
}

/// `1000` as `1 k`, `10000000` as `10 M`.
fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{} M", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{} k", n / 1_000),
        n => n.to_string(),
    }
}

/// The keys of a mix, one per event, reproducibly (SplitMix64).
struct Keys {
    mix: Mix,
    state: u64,
    /// Uniform: the current round's order of the keys, and the next index.
    order: Vec<u32>,
    next: usize,
    /// Zipf: cumulative weights of ranks 1..=keys, normalized to end at 1.
    cdf: Vec<f64>,
}

impl Keys {
    fn new(mix: Mix, seed: u64) -> Self {
        let mut keys = Keys {
            mix,
            state: seed,
            order: Vec::new(),
            next: 0,
            cdf: Vec::new(),
        };
        match mix {
            Mix::Uniform { keys: n } => {
                let n = u32::try_from(n).expect("at most 4,294,967,295 keys");
                keys.order = (0..n).collect();
                keys.next = keys.order.len();
            }
            Mix::Zipf { keys: n, exponent } => {
                let mut sum = 0.0;
                keys.cdf = (1..=n)
                    .map(|r| {
                        sum += (r as f64).powf(-exponent);
                        sum
                    })
                    .collect();
                keys.cdf.iter_mut().for_each(|c| *c /= sum);
            }
        }
        keys
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// The key of the next event, in `0..keys`.
    fn next_key(&mut self) -> u64 {
        match self.mix {
            Mix::Uniform { .. } => {
                if self.next == self.order.len() {
                    // A new round: Fisher-Yates.
                    for i in (1..self.order.len()).rev() {
                        let j = self.below(i as u64 + 1) as usize;
                        self.order.swap(i, j);
                    }
                    self.next = 0;
                }
                self.next += 1;
                u64::from(self.order[self.next - 1])
            }
            Mix::Zipf { keys, .. } => {
                let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let rank = self
                    .cdf
                    .partition_point(|&c| c <= u)
                    .min(self.cdf.len() - 1);
                // A prime above any key count: multiplying by it modulo
                // `keys` is a bijection of the key space.
                const SPREAD: u128 = 2_305_843_009_213_693_951;
                (rank as u128 * SPREAD % u128::from(keys)) as u64
            }
        }
    }
}

/// Appends `events` payments keyed by `mix` to the one partition of
/// `TOPIC`.
fn fill(log: &EmbeddedLog, mix: Mix, events: usize, seed: u64) {
    let mut keys = Keys::new(mix, seed);
    let mut batch = Vec::with_capacity(50_000);
    for i in 0..events {
        let key = format!("key-{:08}", keys.next_key());
        let amount_cents = 100 + keys.below(25_000);
        let merchant = keys.below(40);
        let value = format!(
            r#"{{"txn":"t-{i:08}","account":"{key}","amount_cents":{amount_cents},"merchant":"m-{merchant:02}"}}"#
        );
        batch.push((
            0,
            NewRecord {
                timestamp: 1_767_225_600_000 + i as i64 * 10,
                key: Some(key.into_bytes()),
                value: value.into_bytes(),
                headers: Vec::new(),
            },
        ));
        if batch.len() == batch.capacity() {
            log.append(TOPIC, std::mem::take(&mut batch)).unwrap();
            batch.reserve(50_000);
        }
    }
    if !batch.is_empty() {
        log.append(TOPIC, batch).unwrap();
    }
}

/// The per-key aggregation compiled for the host: the plugin's own code.
struct NativeTotals;

impl Processor for NativeTotals {
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
        key_totals::process_batch(&mut view, inputs).unwrap();
        view.writes
    }
}

/// What one replay of a mix measured.
struct Replay {
    seconds: f64,
    /// CPU-seconds of the process over the replay and its final sync (one
    /// thread replays; waiting for a core does not count).
    cpu: f64,
    written: f64,
    on_disk: f64,
    /// Bytes of rows in the view's row cache at the end of the replay.
    row_cache: f64,
    rows: u64,
    digest: String,
}

/// The figures of one mix, median over the runs.
struct Measured {
    label: String,
    events: f64,
    native: Vec<Replay>,
    wasm: Vec<Replay>,
    /// The Wasm replays into views without a row cache.
    uncached: Vec<Replay>,
    /// The replays of the first mix's log made beside this mix's, one
    /// before each of its runs (none for the first mix itself).
    native_beside: Vec<Replay>,
    wasm_beside: Vec<Replay>,
}

fn median_of(side: &[Replay], f: impl Fn(&Replay) -> f64) -> f64 {
    median(side.iter().map(f).collect())
}

impl Bench {
    pub(crate) fn cardinality(&self) -> Section {
        let mut s = Section::new(
            8,
            "key cardinality, a per-key aggregation (one view read and one write per event)",
            "the figure / the same figure at the fewest keys (same side, same run)",
        );
        let mut mixes: Vec<Mix> = self
            .options
            .card_keys
            .iter()
            .map(|&keys| Mix::Uniform { keys })
            .collect();
        if self.options.zipf_keys > 0 {
            mixes.push(Mix::Zipf {
                keys: self.options.zipf_keys,
                exponent: self.options.zipf_exponent,
            });
        }
        let bytes = kappa_plugins::KEY_TOTALS.bytes;
        let plugin = self.runtime.load(bytes, &sha256(bytes)).unwrap();
        let mut measured = Vec::new();
        // The first mix's log stays until the end: each later mix's runs
        // replay it beside them, for ratios paired in time.
        let mut baseline: Option<(EmbeddedLog, PathBuf)> = None;
        for (i, mix) in mixes.iter().enumerate() {
            let keys = match *mix {
                Mix::Uniform { keys } => keys,
                Mix::Zipf { .. } => 0,
            };
            let events = self.options.card_events.max(keys as usize);
            let dir = self.dir.path().join(format!("cardinality-{i}"));
            let log = EmbeddedLog::open(&dir, LogOptions::default()).unwrap();
            log.create_topic(TOPIC, 1).unwrap();
            let started = Instant::now();
            fill(&log, *mix, events, 17 + i as u64);
            println!(
                "section 8: {} events over {} in {:.1} s",
                events,
                mix.label(),
                started.elapsed().as_secs_f64()
            );
            let m = self.measure_mix(
                &mut s,
                *mix,
                events,
                &log,
                &plugin,
                baseline.as_ref().map(|(log, _)| log),
            );
            measured.push(m);
            if baseline.is_none() && mixes.len() > 1 {
                baseline = Some((log, dir));
            } else {
                remove_log(log, &dir);
            }
        }
        if let Some((log, dir)) = baseline {
            remove_log(log, &dir);
        }
        cardinality_figures(&mut s, &measured);
        s.note(
            "each replay: one partition, batches of the host's default size, a fresh view, one \
             thread, as the version's worker does (section 1); bytes written are the process's \
             write_bytes in /proc/self/io over the replay and its final sync; the view on disk \
             is the redb file's allocated blocks after it",
        );
        s
    }

    /// Replays the log of a mix, natively and as Wasm with and without the
    /// row cache, `card_runs` times in turns, and notes what the section
    /// reports of it beside the figures. With a `baseline` log (the fewest
    /// keys), each run first replays it natively and as Wasm, so that the
    /// mix's rate can be set against a baseline measured right beside it.
    fn measure_mix(
        &self,
        s: &mut Section,
        mix: Mix,
        events: usize,
        log: &EmbeddedLog,
        plugin: &Plugin,
        baseline: Option<&EmbeddedLog>,
    ) -> Measured {
        let (mut native, mut wasm, mut uncached) = (Vec::new(), Vec::new(), Vec::new());
        let (mut native_beside, mut wasm_beside) = (Vec::new(), Vec::new());
        for run in 0..self.options.card_runs {
            if let Some(baseline) = baseline {
                wasm_beside.push(self.measure_keys(baseline, &mut self.wasm(plugin), true));
                native_beside.push(self.measure_keys(baseline, &mut NativeTotals, true));
            }
            for wasm_side in pair_order(run) {
                if wasm_side {
                    // The Wasm replay with the row cache and without it,
                    // back to back (in turns first), so their ratio is
                    // paired in time as the Wasm/native one is.
                    for cached in pair_order(run) {
                        let replay = self.measure_keys(log, &mut self.wasm(plugin), cached);
                        if cached {
                            wasm.push(replay);
                        } else {
                            uncached.push(replay);
                        }
                    }
                } else {
                    native.push(self.measure_keys(log, &mut NativeTotals, true));
                }
            }
        }
        let digests: Vec<(&str, String)> = native
            .iter()
            .map(|r| ("native", r.digest.clone()))
            .chain(wasm.iter().map(|r| ("wasm", r.digest.clone())))
            .chain(
                uncached
                    .iter()
                    .map(|r| ("wasm without row cache", r.digest.clone())),
            )
            .collect();
        let time = |side: &[Replay]| side.iter().map(|r| r.seconds).collect::<Vec<_>>();
        s.note(format!(
            "{}: {events} events, {} keys in the view, {:.1} bytes on disk per key, Wasm \
             time / native time {:.2}",
            mix.label(),
            native[0].rows,
            median_of(&native, |r| r.on_disk) / native[0].rows.max(1) as f64,
            paired_ratio(&time(&wasm), &time(&native)),
        ));
        s.note(format!(
            "{}: Wasm time without the row cache / with it {:.2} (paired)",
            mix.label(),
            paired_ratio(&time(&uncached), &time(&wasm)),
        ));
        check_same(s, &digests);
        Measured {
            label: mix.label(),
            events: events as f64,
            native,
            wasm,
            uncached,
            native_beside,
            wasm_beside,
        }
    }

    /// Replays the log of a mix into a fresh view, with the configured row
    /// cache (`cached`) or none.
    fn measure_keys(
        &self,
        log: &EmbeddedLog,
        processor: &mut dyn Processor,
        cached: bool,
    ) -> Replay {
        let batch = HostOptions::default().batch_size;
        let (view, path) = if cached {
            self.fresh_view("cardinality")
        } else {
            self.fresh_view_with("cardinality", 0)
        };
        let written = storage_written_bytes();
        let cpu = process_cpu_seconds();
        let started = Instant::now();
        replay(log, TOPIC, &[0], &view, batch, processor);
        let seconds = started.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds() - cpu;
        let written = storage_written_bytes().saturating_sub(written) as f64;
        let snapshot = view.snapshot().unwrap();
        let (rows, digest) = (snapshot.len().unwrap(), snapshot.digest().unwrap().sha256);
        drop(snapshot);
        let row_cache = view.row_cache_bytes() as f64;
        drop(view);
        let on_disk = allocated(&path);
        std::fs::remove_file(&path).ok();
        Replay {
            seconds,
            cpu,
            written,
            on_disk,
            row_cache,
            rows,
            digest,
        }
    }
}

/// A mix's log closed and its directory deleted.
fn remove_log(log: EmbeddedLog, dir: &Path) {
    drop(log);
    std::fs::remove_dir_all(dir).ok();
}

/// A replay's events per second of the process's CPU.
fn per_cpu_second(r: &Replay, events: f64) -> f64 {
    events / r.cpu.max(1e-9)
}

/// Bytes allocated on disk for the file at `path`.
fn allocated(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.blocks() as f64 * 512.0)
}

/// The rows of the section: events/s, bytes written per event and the
/// view's size, native then Wasm, each mix's figure with its ratio to the
/// first mix's.
fn cardinality_figures(s: &mut Section, measured: &[Measured]) {
    type Metric = (&'static str, &'static str, fn(&Replay, f64) -> f64);
    let metrics: [Metric; 5] = [
        ("events/s", "events/s", |r, events| events / r.seconds),
        ("events per CPU-second", "events/CPU-s", per_cpu_second),
        ("written per event", "B/event", |r, events| {
            r.written / events
        }),
        ("view on disk", "MB", |r, _| r.on_disk / 1e6),
        ("row cache", "MB", |r, _| r.row_cache / 1e6),
    ];
    for m in measured {
        let rate = |r: &Replay| m.events / r.seconds;
        let base = median_of(&measured[0].uncached, |r| measured[0].events / r.seconds);
        let v = median_of(&m.uncached, rate);
        s.figure(
            format!("Wasm without row cache, {}, events/s", m.label),
            v,
            "events/s",
            (base > 0.0).then(|| v / base),
        );
    }
    paired_figures(s, measured);
    for (what, unit, metric) in metrics {
        for (side, pick) in [
            (
                "native",
                (|m: &Measured| &m.native) as fn(&Measured) -> &Vec<Replay>,
            ),
            ("Wasm", |m: &Measured| &m.wasm),
        ] {
            let value = |m: &Measured| median_of(pick(m), |r| metric(r, m.events));
            let base = value(&measured[0]);
            for m in measured {
                let v = value(m);
                let ratio = (base > 0.0).then(|| v / base);
                s.figure(format!("{side}, {}, {what}", m.label), v, unit, ratio);
            }
        }
    }
}

/// For each mix after the first, its events per CPU-second over those of
/// the first mix's replay made right before each of its runs: the median
/// of these per-run ratios, native and Wasm. Unlike the ratio of medians
/// beside the figures, it does not move with the machine's pace between
/// one mix's runs and another's.
fn paired_figures(s: &mut Section, measured: &[Measured]) {
    let Some(first) = measured.first() else {
        return;
    };
    for m in &measured[1..] {
        for (side, mix, beside) in [
            ("native", &m.native, &m.native_beside),
            ("Wasm", &m.wasm, &m.wasm_beside),
        ] {
            let rate = |runs: &[Replay], events: f64| {
                runs.iter()
                    .map(|r| per_cpu_second(r, events))
                    .collect::<Vec<_>>()
            };
            let ratio = paired_ratio(&rate(mix, m.events), &rate(beside, first.events));
            s.figure(
                format!(
                    "{side}, {}, events per CPU-second, paired with {} beside each run",
                    m.label, first.label
                ),
                ratio,
                "ratio",
                Some(ratio),
            );
        }
    }
}
