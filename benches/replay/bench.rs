//! The processors (the Wasm plugin and its native twin), the replay loop
//! they share, and [`Bench`]: the host, the generated logs and the compiled
//! plugin that every section measures with.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kappa::eventlog::EventLog;
use kappa::log::Record;
use kappa::registry::{Settings, VersionId};
use kappa::runtime::{Instance, Plugin, Runtime};
use kappa::store::{Shards, Snapshot, View, ViewOptions, Writes};
use kappa::{Host, HostOptions};

use super::common::{
    fill, payments, process_cpu_seconds, sha256, thread_cpu_seconds, wait_applied,
};
use super::options::Options;

// ------------------------------------------------------------------ processors

/// What a replay loop runs on each batch: the plugin, or its native twin.
pub(crate) trait Processor: Send {
    fn process(&mut self, snapshot: Snapshot, events: Vec<Record>) -> Writes;
}

/// The payments v2 rules compiled for the host.
pub(crate) struct Native {
    config: payments_v2::Config,
}

impl Native {
    pub(crate) fn new() -> Self {
        Native {
            config: payments_v2::Config::default(),
        }
    }
}

/// The view as the native rules see it: the same read-your-writes overlay of
/// the batch's writes on a snapshot that the Wasm host functions implement.
pub(crate) struct NativeView {
    pub(crate) snapshot: Snapshot,
    pub(crate) writes: Writes,
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

pub(crate) struct Wasm(Instance);

impl Processor for Wasm {
    fn process(&mut self, snapshot: Snapshot, events: Vec<Record>) -> Writes {
        match self.0.process(snapshot, events) {
            Ok(writes) => writes,
            Err(failure) => panic!("the plugin failed: {}", failure.message),
        }
    }
}

/// Where a replay loop reads its snapshots and commits: one view, or the
/// shards of a view whose state is per partition.
pub(crate) trait Target: Sync {
    fn snapshot(&self, partition: u32) -> Snapshot;
    fn commit(&self, partition: u32, next: u64, writes: &Writes);
    fn sync(&self);
}

impl Target for View {
    fn snapshot(&self, _: u32) -> Snapshot {
        View::snapshot(self).unwrap()
    }
    fn commit(&self, partition: u32, next: u64, writes: &Writes) {
        View::commit(self, partition, next, writes, false).unwrap();
    }
    fn sync(&self) {
        View::sync(self).unwrap();
    }
}

impl Target for Shards {
    fn snapshot(&self, partition: u32) -> Snapshot {
        self.shard(partition).unwrap().snapshot().unwrap()
    }
    fn commit(&self, partition: u32, next: u64, writes: &Writes) {
        Shards::commit(self, partition, next, writes, false).unwrap();
    }
    fn sync(&self) {
        Shards::sync(self).unwrap();
    }
}

/// Replays `partitions` of `topic` from offset 0 into `view` exactly as a
/// version's worker does: round-robin over the partitions, one batch of up to
/// `batch` events each, a snapshot per batch, the batch's writes committed
/// with the partition's next offset (not fsynced), one sync at the end.
/// Returns the events replayed.
pub(crate) fn replay(
    log: &dyn EventLog,
    topic: &str,
    partitions: &[u32],
    view: &impl Target,
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
            let writes = processor.process(view.snapshot(*partition), events);
            view.commit(*partition, last + 1, &writes);
            worked = true;
        }
        if !worked {
            break;
        }
    }
    view.sync();
    total
}

// ------------------------------------------------------------------ the bench

pub(crate) struct Bench {
    pub(crate) options: Options,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) host: Arc<Host>,
    pub(crate) runtime: Runtime,
    pub(crate) rust: Arc<Plugin>,
    pub(crate) settings: Settings,
    /// Numbers the views and versions the sections create.
    pub(crate) counter: AtomicU64,
    /// The options of every view the benchmark's own replays write: those
    /// of the host's views.
    pub(crate) view_options: ViewOptions,
}

pub(crate) const ONE: &str = "one";

impl Bench {
    /// The payments v2 components to measure: Rust, plus Python and
    /// JavaScript when `--polyglot` names a directory holding them.
    pub(crate) fn plugins(&self) -> Vec<(String, Vec<u8>)> {
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

    pub(crate) fn new(options: &Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host_options = HostOptions {
            view_write_buffer_bytes: options.view_write_buffer_bytes,
            view_row_cache_bytes: options.view_row_cache_bytes,
            ..HostOptions::default()
        };
        let host = Host::open(&dir.path().join("host"), host_options.clone()).unwrap();
        let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
        let bytes = kappa_plugins::PAYMENTS_V2.bytes;
        let rust = Arc::new(runtime.load(bytes, &sha256(bytes)).unwrap());
        let started = Instant::now();
        host.create_topic(ONE, 1).unwrap();
        let records = payments(11, options.keys, options.events);
        let bytes: usize = records
            .iter()
            .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.len())
            .sum();
        fill(host.log().as_ref(), ONE, records);
        println!(
            "generated {} payments ({:.1} bytes of key + value each, {:.0} bytes on disk with \
             the record framing) into a 1-partition topic in {:.1} s",
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
            view_options: host_options.view_options(),
        }
    }

    pub(crate) fn fresh_view(&self, label: &str) -> (View, PathBuf) {
        self.fresh_view_with(label, self.view_options.row_cache_bytes)
    }

    /// A fresh view with a row cache of `row_cache_bytes` (0: none).
    pub(crate) fn fresh_view_with(&self, label: &str, row_cache_bytes: usize) -> (View, PathBuf) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("view-{label}-{n}.redb"));
        let options = ViewOptions {
            row_cache_bytes,
            ..self.view_options.clone()
        };
        (View::open_with(&path, options).unwrap(), path)
    }

    pub(crate) fn wasm(&self, plugin: &Plugin) -> Wasm {
        Wasm(
            self.runtime
                .instantiate(plugin, "bench@1.0.0", &self.settings)
                .map_err(|f| f.message)
                .unwrap(),
        )
    }

    /// Seconds to replay `partitions` of `topic` with one thread, and the
    /// view's digest.
    pub(crate) fn timed_replay(
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
    pub(crate) fn cpu_timed_replay(
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
    /// to replay all of `topic`, from the deploy call to the version caught
    /// up, and its view's digest.
    pub(crate) fn host_replay(&self, name: &str, topic: &str, bytes: &[u8]) -> (f64, String) {
        self.host_replay_with(name, topic, bytes, self.settings.clone())
    }

    /// [`host_replay`](Self::host_replay) with the deploy's `settings`.
    pub(crate) fn host_replay_with(
        &self,
        name: &str,
        topic: &str,
        bytes: &[u8],
        settings: Settings,
    ) -> (f64, String) {
        let r = self.host_replay_measured(name, topic, bytes, settings);
        (r.seconds, r.digest)
    }

    /// [`host_replay_with`](Self::host_replay_with), measured more closely.
    pub(crate) fn host_replay_measured(
        &self,
        name: &str,
        topic: &str,
        bytes: &[u8],
        settings: Settings,
    ) -> HostReplay {
        let id = VersionId::parse(&format!(
            "{name}@1.0.{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ))
        .unwrap();
        let total: u64 = self.host.log().end_offsets(topic).unwrap().iter().sum();
        let started = Instant::now();
        let cpu = process_cpu_seconds();
        self.host.deploy(&id, topic, bytes, settings).unwrap();
        wait_applied(&self.host, &id, total, Duration::from_millis(1));
        let applied = started.elapsed().as_secs_f64();
        // Then caught up, which the version reports once its view is written
        // whole (its last buffer written and synced): timed, as the
        // benchmark's own loops time their final sync, and so that this write
        // never runs beside the next measurement.
        wait_applied(&self.host, &id, 0, Duration::from_millis(1));
        let seconds = started.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds() - cpu;
        let digest = self.host.digest(&id.to_string()).unwrap().1.sha256;
        HostReplay {
            seconds,
            applied,
            cpu,
            digest,
        }
    }
}

/// A replay by the product's worker, measured.
pub(crate) struct HostReplay {
    /// From the deploy call to the version caught up.
    pub(crate) seconds: f64,
    /// From the deploy call to its last event applied: the rest, up to
    /// `seconds`, is its view's last buffer written to the file and synced.
    pub(crate) applied: f64,
    /// CPU-seconds the whole process used meanwhile (the version's threads,
    /// and the benchmark's own polling them): more CPU per event on more
    /// threads is contention; the same CPU in more time is waiting.
    pub(crate) cpu: f64,
    pub(crate) digest: String,
}
