//! The running host: deploys versions, runs one worker thread per active
//! version, moves versions through their lifecycle, and answers queries.
//!
//! Lifecycle of a version: deployed → replaying (from offset 0 of every
//! partition) → caught up (tailing the live log) → promoted (the alias points
//! to it) → retired (worker stopped, view dropped). Or failed: the worker
//! stops at the offending event and records partition, offset and message;
//! other versions are untouched.
//!
//! Each worker owns its plugin instance and its view's writes. It round-robins
//! the partitions, one batch each, so partitions progress evenly, and sleeps
//! on the log's append notification when it has nothing to do. Replays and
//! live tailing are the same loop: a new version simply starts at offset 0.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::diff::{self, DiffOptions, DiffReport};
use crate::error::{Error, Result, io};
use crate::eventlog::{EventLog, LogBackend, LogReader};
use crate::log::{AppendedRange, EmbeddedLog, LogError, LogOptions, NewRecord, Record};
use crate::model::{
    DeployReport, ProcessorStatus, ProduceReport, Row, ScanPage, State, StatusReport, TopicStatus,
    VersionStatus,
};
use crate::registry::{
    DEAD_LETTERS_KEPT, DeadLetter, Failure, OnError, Registry, Settings, Stored, VersionId,
    VersionRecord,
};
use crate::runtime::{CallFailure, Instance, Plugin, Runtime};
use crate::store::{View, ViewOptions, Writes};

/// Tunables of a host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Most events handed to a plugin in one `process` call (a worker's
    /// first batches are smaller, doubling up to it).
    pub batch_size: usize,
    /// Most payload bytes in one batch (at least one event is always sent).
    pub batch_bytes: usize,
    /// Longest time between durable view commits.
    pub view_sync_interval: Duration,
    /// Per view: most bytes of commits held in memory before they are written
    /// to the view file as one transaction (`kappa serve --view-write-buffer-mb`).
    pub view_write_buffer_bytes: usize,
    /// Per view: bytes of the view file's pages cached in memory
    /// (`kappa serve --view-cache-mb`).
    pub view_cache_bytes: usize,
    /// Largest event (key + value + headers) `produce` accepts.
    pub max_event_bytes: usize,
    /// Options of the embedded log.
    pub log: LogOptions,
    /// The log the host runs on: embedded (default) or Kafka.
    pub backend: LogBackend,
    /// The partitions this host processes (scale-out: hosts sharing a Kafka
    /// topic own disjoint sets); `None`: all of them.
    pub partitions: Option<Vec<u32>>,
    /// The other hosts sharing the topic, asked for keys not found here.
    pub peers: Vec<String>,
    /// Bearer token sent to the peers (hosts of one cluster share a token,
    /// which they need when they run with `--auth-reads`).
    pub peer_token: Option<String>,
}

impl HostOptions {
    /// The options every view is opened with.
    pub fn view_options(&self) -> ViewOptions {
        ViewOptions {
            sync_interval: self.view_sync_interval,
            write_buffer_bytes: self.view_write_buffer_bytes,
            cache_bytes: self.view_cache_bytes,
        }
    }
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            // Measured by `cargo bench -p kappa --bench replay` (BENCHMARKS.md):
            // a batch reads and writes each key it touches once, so larger
            // batches amortize the view's reads, writes and commit over more
            // events; 16384 replayed ~2.6x faster than 1024 for 1,000 keys,
            // and the byte limit below still caps batches of large events.
            // Workers reach it by doubling from `FIRST_BATCH`.
            batch_size: 16_384,
            batch_bytes: 4 << 20,
            view_sync_interval: Duration::from_millis(200),
            view_write_buffer_bytes: crate::store::DEFAULT_WRITE_BUFFER_BYTES,
            view_cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
            max_event_bytes: 1 << 20,
            log: LogOptions::default(),
            backend: LogBackend::Embedded,
            partitions: None,
            peers: Vec::new(),
            peer_token: None,
        }
    }
}

/// Size of a worker's first batch; see `run_worker`.
const FIRST_BATCH: usize = 1024;

/// What a worker shares with the rest of the host.
struct Running {
    record: VersionRecord,
    view: Arc<View>,
    stop: AtomicBool,
    /// When set, the worker applies nothing at or past these offsets: the
    /// diff barrier that brings two views to the same log position.
    hold: Mutex<Option<Vec<u64>>>,
    progress: Mutex<Progress>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Live figures of a worker.
#[derive(Debug, Clone, Default)]
struct Progress {
    applied: Vec<u64>,
    /// Where this version started reading each partition (0 on the
    /// embedded log, the low watermark on Kafka); empty until known.
    start: Vec<u64>,
    /// Why the log cannot be read right now (a broker down), while the
    /// worker retries.
    log_error: Option<String>,
    processed: u64,
    /// (when, `processed` then), at most one per `SAMPLE_EVERY`, covering
    /// the last `RATE_WINDOW`: the rate is measured over a sliding window so
    /// it is right both for a sub-second replay and for an idle version.
    samples: std::collections::VecDeque<(Instant, u64)>,
}

const RATE_WINDOW: Duration = Duration::from_secs(1);
/// First and longest wait before retrying an unreachable log.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

impl Progress {
    fn record(&mut self, events: u64) {
        let now = Instant::now();
        if self.samples.is_empty() {
            // The start of this stretch of work.
            self.samples.push_back((now, self.processed));
        }
        self.processed += events;
        if self
            .samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= SAMPLE_EVERY)
        {
            self.samples.push_back((now, self.processed));
        }
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Events per second over the last second or so (zero when idle).
    fn rate(&self) -> f64 {
        let now = Instant::now();
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, n0)), Some(&(_, n1))) if now.duration_since(t0) <= 2 * RATE_WINDOW => {
                let elapsed = now.duration_since(t0).as_secs_f64().max(1e-3);
                (self.processed.max(n1) - n0) as f64 / elapsed
            }
            _ => 0.0,
        }
    }

    fn idle(&mut self) {
        let now = Instant::now();
        if self
            .samples
            .back()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.samples.clear();
        }
    }
}

/// The running host.
pub struct Host {
    data_dir: PathBuf,
    log: Arc<dyn EventLog>,
    registry: Registry,
    runtime: Runtime,
    options: HostOptions,
    running: Mutex<BTreeMap<VersionId, Arc<Running>>>,
    /// Views of versions that are not running but not retired either
    /// (failed ones), still readable.
    stopped_views: Mutex<HashMap<VersionId, Arc<View>>>,
    plugins: Mutex<HashMap<String, Arc<Plugin>>>,
    /// One diff at a time: the barrier holds workers back.
    diff_lock: Mutex<()>,
    /// Serializes deploy, promote, rollback and retire.
    admin_lock: Mutex<()>,
    /// Metrics recorded as the host runs (see `crate::metrics`).
    metrics: crate::metrics::Metrics,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Host {
    /// Opens the data directory (creating it if needed), recovers the log and
    /// restarts every active version where its view left off.
    pub fn open(data_dir: &Path, options: HostOptions) -> Result<Arc<Self>> {
        for sub in ["log", "views", "plugins", "compiled"] {
            std::fs::create_dir_all(data_dir.join(sub))
                .map_err(io(format!("creating {}", data_dir.join(sub).display())))?;
        }
        let log: Arc<dyn EventLog> = match &options.backend {
            LogBackend::Embedded => Arc::new(EmbeddedLog::open(
                &data_dir.join("log"),
                options.log.clone(),
            )?),
            LogBackend::Kafka(config) => Arc::new(crate::kafka::KafkaLog::open(config.clone())?),
        };
        let registry = Registry::open(&data_dir.join("registry.redb"))?;
        let runtime = Runtime::new(&data_dir.join("compiled"))?;
        let host = Arc::new(Host {
            data_dir: data_dir.to_owned(),
            log,
            registry,
            runtime,
            options,
            running: Mutex::new(BTreeMap::new()),
            stopped_views: Mutex::new(HashMap::new()),
            plugins: Mutex::new(HashMap::new()),
            diff_lock: Mutex::new(()),
            admin_lock: Mutex::new(()),
            metrics: crate::metrics::Metrics::default(),
        });
        for record in host.registry.versions()? {
            let id = record.id();
            match &record.stored {
                Stored::Active => {
                    if let Err(e) = host.resume(record) {
                        tracing::error!(version = %id, "could not resume: {e}");
                        host.fail(
                            &id,
                            None,
                            None,
                            format!("could not resume after restart: {e}"),
                        );
                    }
                }
                Stored::Failed(_) => {
                    // A failed version's view is kept for reading; one that
                    // cannot be opened leaves the version failed without a
                    // view, and never keeps the host from starting.
                    match View::open_with(&host.view_path(&id), host.options.view_options()) {
                        Ok(view) => {
                            host.stopped_views.lock().insert(id, Arc::new(view));
                        }
                        Err(e) => {
                            tracing::error!(version = %id, "the view of failed version {id} cannot be opened: {e}");
                        }
                    }
                }
                Stored::Retired { .. } => {}
            }
        }
        Ok(host)
    }

    /// The log the host runs on.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The other hosts sharing the topic (see `crate::peers`).
    pub fn peers(&self) -> &[String] {
        &self.options.peers
    }

    /// The bearer token to send to the peers, if the cluster has one.
    pub fn peer_token(&self) -> Option<&str> {
        self.options.peer_token.as_deref()
    }

    /// Whether this host processes `partition`.
    fn owns(&self, partition: usize) -> bool {
        self.options
            .partitions
            .as_ref()
            .is_none_or(|owned| owned.contains(&(partition as u32)))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The metrics recorded as the host runs.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    fn view_path(&self, id: &VersionId) -> PathBuf {
        self.data_dir
            .join("views")
            .join(&id.name)
            .join(format!("{}.redb", id.version))
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.data_dir.join("plugins").join(format!("{digest}.wasm"))
    }

    fn plugin(&self, digest: &str, bytes: Option<&[u8]>) -> Result<Arc<Plugin>> {
        if let Some(p) = self.plugins.lock().get(digest) {
            return Ok(p.clone());
        }
        let owned;
        let bytes = match bytes {
            Some(b) => b,
            None => {
                let path = self.blob_path(digest);
                owned = std::fs::read(&path)
                    .map_err(io(format!("reading plugin {}", path.display())))?;
                &owned
            }
        };
        let plugin = Arc::new(self.runtime.load(bytes, digest)?);
        tracing::info!(
            digest,
            from_cache = plugin.from_cache,
            ms = plugin.load_time.as_millis() as u64,
            "plugin compiled"
        );
        self.plugins
            .lock()
            .insert(digest.to_owned(), plugin.clone());
        Ok(plugin)
    }

    // ---------------------------------------------------------------- topics

    /// Creates a topic.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicStatus> {
        Ok(self.log.create_topic(name, partitions)?.into())
    }

    /// Every topic with its end offsets.
    pub fn topics(&self) -> Result<Vec<TopicStatus>> {
        Ok(self.log.topics()?.into_iter().map(Into::into).collect())
    }

    /// Appends events to a topic, durably, all or nothing. Each event goes to
    /// its explicit partition, or the key's partition, or round-robin.
    pub fn produce(
        &self,
        topic: &str,
        events: Vec<(Option<u32>, NewRecord)>,
    ) -> Result<ProduceReport> {
        self.produce_request(topic, events, None)
    }

    /// [`produce`](Self::produce) with an optional request id: a request
    /// whose id was stored before is not stored again, and answers with the
    /// offsets it got then (`duplicate` set). Request ids need the embedded
    /// log ([`Error::Unsupported`] on Kafka).
    pub fn produce_request(
        &self,
        topic: &str,
        events: Vec<(Option<u32>, NewRecord)>,
        request: Option<crate::log::RequestTag>,
    ) -> Result<ProduceReport> {
        if request.is_some() && self.log.backend() != "embedded" {
            return Err(Error::Unsupported(format!(
                "request ids (idempotent produce) need the embedded log; this host runs on {}, \
                 where a request is sent without one (see docs/kafka.md); nothing was stored",
                self.log.backend()
            )));
        }
        let partitions = self.log.partitions(topic)?;
        let mut batch = Vec::with_capacity(events.len());
        for (i, (partition, record)) in events.into_iter().enumerate() {
            let size = record.value.len()
                + record.key.as_ref().map_or(0, Vec::len)
                + record
                    .headers
                    .iter()
                    .map(|(n, v)| n.len() + v.len())
                    .sum::<usize>();
            if size > self.options.max_event_bytes {
                return Err(Error::TooLarge(format!(
                    "event {} of the request (counting from 1) is {size} bytes, over the limit \
                     of {} bytes; nothing was appended",
                    i + 1,
                    self.options.max_event_bytes
                )));
            }
            let partition = match partition {
                Some(p) if p >= partitions => {
                    return Err(Error::invalid(format!(
                        "event {} of the request (counting from 1) names partition {p}, but \
                         topic `{topic}` has {} partitions (0..{}); nothing was appended",
                        i + 1,
                        partitions,
                        partitions - 1
                    )));
                }
                Some(p) => p,
                None => self.log.partition_for(topic, record.key.as_deref())?,
            };
            batch.push((partition, record));
        }
        let request_id = request.as_ref().map(|t| t.id.clone());
        let appended = self.log.append_request(topic, batch, request.as_ref())?;
        let ranges: Vec<AppendedRange> = appended.ranges;
        if !appended.duplicate {
            self.metrics
                .appended(topic, ranges.iter().map(|r| r.count).sum());
        }
        Ok(ProduceReport {
            topic: topic.to_owned(),
            appended: ranges.iter().map(|r| r.count).sum(),
            partitions: ranges.into_iter().map(Into::into).collect(),
            request_id,
            duplicate: appended.duplicate,
        })
    }

    /// Reads up to `limit` events of one partition from offset `from`.
    pub fn consume(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: usize,
    ) -> Result<crate::model::ConsumePage> {
        let end = self
            .log
            .end_offsets(topic)?
            .get(partition as usize)
            .copied()
            .ok_or_else(|| {
                Error::not_found(format!("topic `{topic}` has no partition {partition}"))
            })?;
        let start = self
            .log
            .start_offsets(topic)?
            .get(partition as usize)
            .copied()
            .unwrap_or(0);
        let mut reader = self
            .log
            .reader(topic, partition, from.max(start).min(end))?;
        let mut records = Vec::new();
        // A read may come back empty before the end on a remote log (Kafka
        // still fetching), so a few empty reads are allowed.
        let mut empty_reads = 0;
        while records.len() < limit && reader.next_offset() < end && empty_reads < 10 {
            let before = records.len();
            reader.read_batch(limit - records.len(), 4 << 20, &mut records)?;
            if records.len() == before {
                empty_reads += 1;
            }
        }
        Ok(crate::model::ConsumePage {
            topic: topic.to_owned(),
            partition,
            next_offset: reader.next_offset(),
            end_offset: end,
            events: records.into_iter().map(Into::into).collect(),
        })
    }

    // ---------------------------------------------------------------- deploy

    /// Deploys `bytes` as `id`, reading `topic`. Validates the component and
    /// runs its `init` before anything is stored, so a bad plugin or a bad
    /// configuration is refused with nothing changed.
    pub fn deploy(
        self: &Arc<Self>,
        id: &VersionId,
        topic: &str,
        bytes: &[u8],
        settings: Settings,
    ) -> Result<DeployReport> {
        let _admin = self.admin_lock.lock();
        let info = self.log.topic(topic)?;
        let digest = hex::encode(Sha256::digest(bytes));
        if let Some(existing) = self.registry.version(id)? {
            if existing.digest != digest {
                return Err(Error::conflict(format!(
                    "{id} is already deployed with other bytes (sha256 {}, this file is {}); \
                     a version is immutable: deploy the change under a new version",
                    short(&existing.digest),
                    short(&digest)
                )));
            }
            let differing = differing_settings(&existing, topic, &settings);
            if matches!(existing.stored, Stored::Active) && !differing.is_empty() {
                return Err(Error::conflict(format!(
                    "{id} is already deployed with these bytes but other settings ({}); the \
                     settings are part of a version: deploy them under a new version, or \
                     deploy again with the same settings",
                    differing.join(", ")
                )));
            }
            return match existing.stored {
                Stored::Active => Ok(DeployReport {
                    id: id.to_string(),
                    digest,
                    topic: existing.topic,
                    created: false,
                    compiled_from_cache: true,
                    compile_ms: 0,
                    events_to_replay: 0,
                }),
                Stored::Failed(f) => Err(Error::conflict(format!(
                    "{id} failed ({}); fix the plugin and deploy it as a new version",
                    f.message
                ))),
                Stored::Retired { .. } => Err(Error::conflict(format!(
                    "{id} was retired; deploy the plugin as a new version"
                ))),
            };
        }
        if let Some(other) = self.registry.versions()?.into_iter().find(|r| {
            r.name == id.name && r.topic != topic && !matches!(r.stored, Stored::Retired { .. })
        }) {
            return Err(Error::invalid(format!(
                "{} reads topic `{}`; every version of `{}` must read the same topic so that \
                 their views can be compared (asked for `{topic}`)",
                other.id(),
                other.topic,
                id.name
            )));
        }

        let plugin = self.plugin(&digest, Some(bytes)).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{id}: {m}")),
            other => other,
        })?;
        let label = id.to_string();
        let instance = self
            .runtime
            .instantiate(&plugin, &label, &settings)
            .map_err(|f| Error::invalid(format!("{id}: {}", f.message)))?;

        // Bytes first, then the record naming them: a crash in between leaves
        // only an unreferenced file.
        let blob = self.blob_path(&digest);
        if !blob.exists() {
            let tmp = blob.with_extension("tmp");
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, &blob))
                .map_err(io(format!("storing plugin {}", blob.display())))?;
        }
        let record = VersionRecord {
            name: id.name.clone(),
            version: id.version.clone(),
            digest: digest.clone(),
            topic: topic.to_owned(),
            settings,
            deployed_at_ms: now_ms(),
            caught_up: false,
            dead_letters: Vec::new(),
            dead_letter_count: 0,
            stored: Stored::Active,
        };
        self.registry.update(id, |slot, _| {
            *slot = Some(record.clone());
            Ok(())
        })?;
        tracing::info!(version = %id, topic, digest = short(&digest), "deployed");
        self.start(record, plugin.clone(), Some(instance))?;
        Ok(DeployReport {
            id: id.to_string(),
            digest,
            topic: topic.to_owned(),
            created: true,
            compiled_from_cache: plugin.from_cache,
            compile_ms: plugin.load_time.as_millis() as u64,
            events_to_replay: {
                let start = self.log.start_offsets(topic).unwrap_or_default();
                info.end_offsets
                    .iter()
                    .enumerate()
                    .map(|(p, e)| e.saturating_sub(start.get(p).copied().unwrap_or(0)))
                    .sum()
            },
        })
    }

    fn resume(self: &Arc<Self>, record: VersionRecord) -> Result<()> {
        let plugin = self.plugin(&record.digest, None)?;
        self.start(record, plugin, None)
    }

    fn start(
        self: &Arc<Self>,
        record: VersionRecord,
        plugin: Arc<Plugin>,
        instance: Option<Instance>,
    ) -> Result<()> {
        let id = record.id();
        let path = self.view_path(&id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let view = Arc::new(View::open_with(&path, self.options.view_options())?);
        // The worker reads the topic's partitions and start offsets itself,
        // retrying, so that a host restarts even while the log (a Kafka
        // broker) is unreachable.
        let running = Arc::new(Running {
            record,
            view,
            stop: AtomicBool::new(false),
            hold: Mutex::new(None),
            progress: Mutex::new(Progress::default()),
            thread: Mutex::new(None),
        });
        let host = self.clone();
        let worker = running.clone();
        let handle = std::thread::Builder::new()
            .name(format!("kappa-{id}"))
            .spawn(move || host.run_worker(&worker, &plugin, instance))
            .map_err(|e| Error::Internal(format!("starting the worker of {id}: {e}")))?;
        *running.thread.lock() = Some(handle);
        self.running.lock().insert(id, running);
        Ok(())
    }

    // ---------------------------------------------------------------- worker

    fn run_worker(
        self: &Arc<Self>,
        run: &Arc<Running>,
        plugin: &Plugin,
        instance: Option<Instance>,
    ) {
        let id = run.record.id();
        let label = id.to_string();
        let mut instance = match instance {
            Some(i) => i,
            None => match self
                .runtime
                .instantiate(plugin, &label, &run.record.settings)
            {
                Ok(i) => i,
                Err(f) => {
                    self.fail(&id, None, f.offset, f.message);
                    return;
                }
            },
        };
        let topic = run.record.topic.clone();
        let Some(mut applied) = self.initial_offsets(run, &topic) else {
            return;
        };
        let mut readers: HashMap<u32, Box<dyn LogReader>> = HashMap::new();
        let mut caught_up = run.record.caught_up;
        let mut backoff = RETRY_FIRST;
        // Batches start at FIRST_BATCH events and double with each full one
        // up to `batch_size`: a replay shows progress (or meets a failing
        // event) at once, and a long one soon runs at the full batch size.
        // A batch that fails as a whole while each of its events succeeds
        // alone (its writes together over the memory limit, say) lowers the
        // ceiling to half its size, so the next ones fit.
        let mut max_batch = self.options.batch_size.max(1);
        let mut batch_limit = FIRST_BATCH.min(max_batch);
        let mut buf: Vec<Record> = Vec::with_capacity(batch_limit);

        while !run.stop.load(Ordering::Relaxed) {
            let seen = self.log.append_count();
            let ends = match self.log.end_offsets(&topic) {
                Ok(e) => e,
                Err(e) if e.is_unavailable() => {
                    self.log_unavailable(run, &e, &mut backoff);
                    continue;
                }
                Err(e) => {
                    self.fail(&id, None, None, format!("reading topic `{topic}`: {e}"));
                    return;
                }
            };
            // Partitions added to a Kafka topic start at offset 0.
            if applied.len() < ends.len() {
                applied.resize(ends.len(), 0);
            }
            let mut worked = false;
            let mut unavailable: Option<LogError> = None;
            for (p, &end) in ends.iter().enumerate() {
                if !self.owns(p) {
                    continue;
                }
                let partition = p as u32;
                // Read right before each batch: the diff barrier may have
                // been raised since the previous one.
                let hold = run.hold.lock().as_ref().and_then(|h| h.get(p).copied());
                let limit = hold.map_or(end, |h| h.min(end));
                let next = applied[p];
                if next >= limit {
                    continue;
                }
                let reader = match readers.get_mut(&partition) {
                    Some(r) if r.next_offset() == next => r,
                    _ => match self.log.reader(&topic, partition, next) {
                        Ok(r) => readers.entry(partition).insert_entry(r).into_mut(),
                        Err(e) if e.is_unavailable() => {
                            unavailable = Some(e);
                            break;
                        }
                        Err(e) => {
                            self.fail(
                                &id,
                                Some(partition),
                                Some(next),
                                format!("reading the log: {e}"),
                            );
                            return;
                        }
                    },
                };
                buf.clear();
                let want = usize::try_from(limit - next)
                    .unwrap_or(usize::MAX)
                    .min(batch_limit);
                if let Err(e) = reader.read_batch(want, self.options.batch_bytes, &mut buf) {
                    if e.is_unavailable() {
                        // A fresh reader after the outage: librdkafka can
                        // take minutes to fetch from a restarted broker
                        // with the old one.
                        readers.remove(&partition);
                        unavailable = Some(e);
                        break;
                    }
                    self.fail(
                        &id,
                        Some(partition),
                        Some(next),
                        format!("reading the log: {e}"),
                    );
                    return;
                }
                // Offsets may have gaps on Kafka: never apply past the hold.
                if buf.last().is_some_and(|r| r.offset >= limit) {
                    buf.retain(|r| r.offset < limit);
                    readers.remove(&partition);
                }
                let Some(last) = buf.last().map(|r| r.offset) else {
                    continue;
                };
                let count = buf.len() as u64;
                let events = std::mem::take(&mut buf);
                let batch_started = Instant::now();
                let outcome = run
                    .view
                    .snapshot()
                    .map_err(|e| CallFailure {
                        offset: None,
                        message: e.to_string(),
                    })
                    .and_then(|snap| instance.process(snap, events));
                match outcome {
                    Ok(writes) => {
                        if let Err(e) = run.view.commit(partition, last + 1, &writes, false) {
                            self.fail(
                                &id,
                                Some(partition),
                                Some(next),
                                format!("committing the view: {e}"),
                            );
                            return;
                        }
                        applied[p] = last + 1;
                        if count as usize >= batch_limit {
                            batch_limit = (batch_limit * 2).min(max_batch);
                        }
                    }
                    Err(failure) => {
                        // Find the exact event on a fresh instance, applying
                        // the good events before it. The failed instance is
                        // dropped first, so the two never hold memory at once.
                        drop(instance);
                        match self.pinpoint(run, plugin, &topic, partition, next, last, failure) {
                            Ok((fresh, next_offset, every_event_passed)) => {
                                instance = fresh;
                                applied[p] = next_offset;
                                if every_event_passed {
                                    max_batch = (count as usize / 2).max(1);
                                    batch_limit = batch_limit.min(max_batch);
                                }
                            }
                            Err((offset, message)) => {
                                self.fail(&id, Some(partition), offset, message);
                                return;
                            }
                        }
                    }
                }
                self.metrics.batch(&id, count, batch_started.elapsed());
                let mut progress = run.progress.lock();
                progress.record(count);
                progress.applied.clone_from(&applied);
                worked = true;
            }
            if let Some(e) = unavailable {
                self.log_unavailable(run, &e, &mut backoff);
                continue;
            }
            if backoff != RETRY_FIRST {
                backoff = RETRY_FIRST;
                if run.progress.lock().log_error.take().is_some() {
                    tracing::info!(version = %id, "the log is reachable again; resuming");
                }
            }
            if !worked {
                run.progress.lock().idle();
                if let Err(e) = run.view.sync_if_dirty() {
                    tracing::warn!(version = %id, "syncing the view: {e}");
                }
                if !caught_up
                    && applied
                        .iter()
                        .zip(&ends)
                        .enumerate()
                        .all(|(p, (a, e))| a >= e || !self.owns(p))
                {
                    caught_up = true;
                    self.caught_up(run);
                }
                self.log.wait_for_append(seen, Duration::from_millis(100));
            }
        }
        if let Err(e) = run.view.sync() {
            tracing::warn!(version = %id, "syncing the view on stop: {e}");
        }
    }

    /// Where the worker starts: the offsets committed in the view, or the
    /// log's start offsets for partitions this version has not read yet.
    /// Retries while the log is unavailable; `None` when stopped or failed.
    fn initial_offsets(&self, run: &Running, topic: &str) -> Option<Vec<u64>> {
        let id = run.record.id();
        let mut backoff = RETRY_FIRST;
        while !run.stop.load(Ordering::Relaxed) {
            match self.log.start_offsets(topic) {
                Ok(start) => {
                    let offsets = match run.view.offsets() {
                        Ok(o) => o,
                        Err(e) => {
                            self.fail(&id, None, None, format!("reading the view's offsets: {e}"));
                            return None;
                        }
                    };
                    let applied: Vec<u64> = start
                        .iter()
                        .enumerate()
                        .map(|(p, s)| offsets.get(&(p as u32)).copied().unwrap_or(*s))
                        .collect();
                    let mut progress = run.progress.lock();
                    progress.start = start;
                    progress.applied.clone_from(&applied);
                    progress.log_error = None;
                    return Some(applied);
                }
                Err(e) if e.is_unavailable() => self.log_unavailable(run, &e, &mut backoff),
                Err(e) => {
                    self.fail(&id, None, None, format!("reading topic `{topic}`: {e}"));
                    return None;
                }
            }
        }
        None
    }

    /// The log cannot be reached: shows why in the version's status, warns
    /// once, and waits `backoff` (doubling it up to `RETRY_MAX`) before the
    /// caller retries. Nothing was applied, so the retry resumes from the
    /// offsets committed in the view: no event is lost or applied twice.
    fn log_unavailable(&self, run: &Running, e: &LogError, backoff: &mut Duration) {
        let message = e.to_string();
        let first = run
            .progress
            .lock()
            .log_error
            .replace(message.clone())
            .is_none();
        if first {
            tracing::warn!(version = %run.record.id(), "{message}");
        }
        let until = Instant::now() + *backoff;
        while !run.stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        *backoff = (*backoff * 2).min(RETRY_MAX);
    }

    /// After a failed batch `first..=last` of `partition`: replays its events
    /// one at a time on a fresh instance to name the exact event, committing
    /// each one's writes with its offset (so that the host holds the pending
    /// writes of one event at a time, as in any batch within the memory
    /// limit). Under the `stop` policy it returns the failure, the events
    /// before it applied; under `skip` it records the event as a dead letter,
    /// commits past it and goes on. If every event succeeds alone (a time or
    /// memory limit hit by a large batch, say), they are all applied. Returns
    /// the instance to carry on with, the partition's next offset and whether
    /// every event succeeded alone.
    #[allow(clippy::too_many_arguments)]
    fn pinpoint(
        &self,
        run: &Running,
        plugin: &Plugin,
        topic: &str,
        partition: u32,
        first: u64,
        last: u64,
        failure: CallFailure,
    ) -> std::result::Result<(Instance, u64, bool), (Option<u64>, String)> {
        let id = run.record.id();
        let label = id.to_string();
        let settings = &run.record.settings;
        if first == last && settings.on_error == OnError::Stop {
            // A single event: it is the culprit, no need to run it again.
            return Err((Some(failure.offset.unwrap_or(first)), failure.message));
        }
        let instantiate = |context: &str| {
            self.runtime
                .instantiate(plugin, &label, settings)
                .map_err(|f| {
                    (
                        failure.offset.or(Some(first)),
                        format!("{context}; re-instantiating failed: {}", f.message),
                    )
                })
        };
        let mut fresh = instantiate(&failure.message)?;
        let mut reader = self.log.reader(topic, partition, first).map_err(|e| {
            (
                Some(first),
                format!("{}; re-reading the log failed: {e}", failure.message),
            )
        })?;
        let mut events = Vec::new();
        let count = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        let mut empty_reads = 0;
        while events.len() < count && reader.next_offset() <= last && empty_reads < 10 {
            let before = events.len();
            reader
                .read_batch(count - events.len(), usize::MAX, &mut events)
                .map_err(|e| {
                    (
                        Some(first),
                        format!("{}; re-reading the log failed: {e}", failure.message),
                    )
                })?;
            if events.len() == before {
                empty_reads += 1;
            }
        }
        // Kafka may hand back records past `last` (the batch was cut by the
        // diff hold or by gaps); only the failed batch is retried here.
        events.retain(|e| e.offset <= last);
        let commit_err = |next: u64| {
            move |e: crate::store::StoreError| (Some(next), format!("committing the view: {e}"))
        };
        let mut next = first;
        let mut failed_alone = false;
        for event in events {
            let offset = event.offset;
            let snapshot = run
                .view
                .snapshot()
                .map_err(|e| (Some(offset), e.to_string()))?;
            match fresh.process(snapshot, vec![event]) {
                Ok(writes) => {
                    next = offset + 1;
                    run.view
                        .commit(partition, next, &writes, false)
                        .map_err(commit_err(next))?;
                }
                Err(f) => {
                    failed_alone = true;
                    let offset = f.offset.unwrap_or(offset);
                    if settings.on_error == OnError::Stop {
                        run.view.sync().map_err(commit_err(next))?;
                        return Err((Some(offset), f.message));
                    }
                    tracing::warn!(
                        version = %label, partition, offset,
                        "skipping a poison event (dead letter): {}", f.message
                    );
                    self.dead_letter(&id, partition, offset, &f.message);
                    next = offset + 1;
                    run.view
                        .commit(partition, next, &Writes::new(), true)
                        .map_err(commit_err(next))?;
                    drop(fresh);
                    fresh = instantiate(&f.message)?;
                }
            }
        }
        if !failed_alone {
            tracing::warn!(
                version = %label, partition, first, last,
                "a batch failed ({}) but each of its events succeeded alone; continuing",
                failure.message
            );
        }
        Ok((fresh, next, !failed_alone))
    }

    fn dead_letter(&self, id: &VersionId, partition: u32, offset: u64, message: &str) {
        self.metrics.failure(id, true);
        let letter = DeadLetter {
            partition,
            offset,
            message: message.to_owned(),
            at_ms: now_ms(),
        };
        let result = self.registry.update(id, |rec, _| {
            if let Some(rec) = rec {
                // A crash between recording and committing past the event
                // replays it: record each event once.
                if !rec
                    .dead_letters
                    .iter()
                    .any(|d| d.partition == partition && d.offset == offset)
                {
                    rec.dead_letters.push(letter.clone());
                    rec.dead_letter_count += 1;
                    let excess = rec.dead_letters.len().saturating_sub(DEAD_LETTERS_KEPT);
                    rec.dead_letters.drain(..excess);
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(version = %id, "recording a dead letter: {e}");
        }
    }

    fn fail(&self, id: &VersionId, partition: Option<u32>, offset: Option<u64>, message: String) {
        let place = match (partition, offset) {
            (Some(p), Some(o)) => format!(" at partition {p} offset {o}"),
            (Some(p), None) => format!(" at partition {p}"),
            _ => String::new(),
        };
        tracing::error!("plugin {id} failed{place}: {message}");
        self.metrics.failure(id, false);
        let failure = Failure {
            partition,
            offset,
            message,
            at_ms: now_ms(),
        };
        // The view moves to the stopped ones before the state says failed:
        // a status read as failed then shows the view's committed offsets
        // (which include the good events of the failed batch), not the
        // worker's progress from before that batch. Inserted before being
        // removed, so that the view stays readable throughout.
        let run = self.running.lock().get(id).cloned();
        if let Some(run) = run {
            self.stopped_views
                .lock()
                .insert(id.clone(), run.view.clone());
            self.running.lock().remove(id);
        }
        let result = self.registry.update(id, |rec, _| {
            if let Some(rec) = rec {
                rec.stored = Stored::Failed(failure.clone());
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(version = %id, "recording the failure: {e}");
        }
    }

    fn caught_up(&self, run: &Running) {
        let id = run.record.id();
        if let Err(e) = run.view.sync() {
            tracing::warn!(version = %id, "syncing the view: {e}");
        }
        let auto = run.record.settings.auto_promote;
        let result = self.registry.update(&id, |rec, alias| {
            if let Some(rec) = rec {
                rec.caught_up = true;
            }
            if alias.promoted.is_none() || auto {
                swap_alias(alias, &id.version);
                return Ok(true);
            }
            Ok(false)
        });
        match result {
            Ok(true) => tracing::info!(version = %id, "caught up and promoted"),
            Ok(false) => tracing::info!(version = %id, "caught up"),
            Err(e) => tracing::error!(version = %id, "recording catch-up: {e}"),
        }
    }

    /// Stops every worker and makes every view durable.
    pub fn shutdown(&self) {
        let running: Vec<Arc<Running>> = self.running.lock().values().cloned().collect();
        for run in &running {
            run.stop.store(true, Ordering::Relaxed);
        }
        for run in running {
            if let Some(handle) = run.thread.lock().take() {
                let _ = handle.join();
            }
        }
    }

    // ---------------------------------------------------------------- alias

    /// Points the alias `id.name` at `id`. Refuses a version that has not
    /// caught up (its view is partial) unless `force`.
    pub fn promote(&self, id: &VersionId, force: bool) -> Result<ProcessorStatus> {
        let _admin = self.admin_lock.lock();
        let status = self.version_status(id)?;
        self.registry.update(id, |rec, alias| {
            let rec = rec.as_ref().ok_or_else(|| unknown_version(id))?;
            match &rec.stored {
                Stored::Active => {}
                Stored::Failed(f) => {
                    return Err(Error::conflict(format!(
                        "{id} failed ({}); it cannot be promoted",
                        f.message
                    )));
                }
                Stored::Retired { .. } => {
                    return Err(Error::conflict(format!(
                        "{id} was retired; it cannot be promoted"
                    )));
                }
            }
            if !rec.caught_up && !force {
                return Err(Error::conflict(format!(
                    "{id} is still replaying ({:.0}% done{}); promoting it now would serve a \
                     partial view: wait until `kappa status` shows it caught up, or force it \
                     (use --force)",
                    status.progress.unwrap_or(0.0) * 100.0,
                    status
                        .eta_seconds
                        .map(|s| format!(", about {s:.0} s to go"))
                        .unwrap_or_default()
                )));
            }
            if alias.promoted.as_ref() == Some(&id.version) {
                return Ok(());
            }
            swap_alias(alias, &id.version);
            Ok(())
        })?;
        tracing::info!(version = %id, "promoted");
        self.processor_status(&id.name)
    }

    /// Points the alias back at the version promoted before the current one.
    pub fn rollback(&self, name: &str) -> Result<ProcessorStatus> {
        let _admin = self.admin_lock.lock();
        crate::registry::validate_name(name)?;
        self.registry.update_processor(name, |versions, alias| {
            let current = alias.promoted.clone().ok_or_else(|| {
                Error::not_found(format!(
                    "`{name}` has no promoted version to roll back from"
                ))
            })?;
            let previous = alias.previous.clone().ok_or_else(|| {
                Error::conflict(match &alias.retired_previous {
                    Some(retired) => format!(
                        "`{name}` has no previous version to roll back to: {name}@{retired}, \
                         promoted before {name}@{current}, was retired; promote another \
                         version instead (kappa promote {name}@VERSION)"
                    ),
                    None => format!(
                        "`{name}` has no previous version to roll back to ({name}@{current} is \
                         the only one ever promoted)"
                    ),
                })
            })?;
            let prev = versions.get(&format!("{name}@{previous}")).ok_or_else(|| {
                Error::conflict(format!(
                    "the previous version {name}@{previous} no longer exists"
                ))
            })?;
            if !matches!(prev.stored, Stored::Active) {
                return Err(Error::conflict(format!(
                    "the previous version {name}@{previous} is not active (failed or retired); \
                     promote another version instead"
                )));
            }
            alias.promoted = Some(previous);
            alias.previous = Some(current);
            Ok(())
        })?;
        tracing::info!(processor = name, "rolled back");
        self.processor_status(name)
    }

    /// Stops `id` and drops its view. Never the promoted version.
    pub fn retire(&self, id: &VersionId) -> Result<VersionStatus> {
        let _admin = self.admin_lock.lock();
        self.registry.update(id, |rec, alias| {
            let rec = rec.as_ref().ok_or_else(|| unknown_version(id))?;
            if matches!(rec.stored, Stored::Retired { .. }) {
                return Err(Error::conflict(format!("{id} is already retired")));
            }
            if alias.promoted.as_ref() == Some(&id.version) {
                return Err(Error::conflict(format!(
                    "{id} is the promoted version of `{}`; promote another version (or roll \
                     back) before retiring it",
                    id.name
                )));
            }
            Ok(())
        })?;
        let run = self.running.lock().remove(id);
        if let Some(run) = run {
            run.stop.store(true, Ordering::Relaxed);
            if let Some(handle) = run.thread.lock().take() {
                let _ = handle.join();
            }
        }
        self.stopped_views.lock().remove(id);
        self.registry.update(id, |rec, alias| {
            if let Some(rec) = rec {
                rec.stored = Stored::Retired { at_ms: now_ms() };
            }
            if alias.previous.as_ref() == Some(&id.version) {
                alias.previous = None;
                alias.retired_previous = Some(id.version.clone());
            }
            Ok(())
        })?;
        let path = self.view_path(id);
        if path.exists() {
            std::fs::remove_file(&path)
                .map_err(io(format!("dropping the view {}", path.display())))?;
        }
        tracing::info!(version = %id, "retired");
        self.version_status(id)
    }

    // ---------------------------------------------------------------- status

    /// Status of every processor and version, and of every topic.
    pub fn status(&self) -> Result<StatusReport> {
        let mut names: Vec<String> = self
            .registry
            .versions()?
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.dedup();
        let processors = names
            .iter()
            .map(|n| self.processor_status(n))
            .collect::<Result<Vec<_>>>()?;
        // The log being unreachable shows in each version's `log_error`;
        // the topics are then left out rather than failing the status.
        let topics = self.topics().unwrap_or_else(|e| {
            tracing::warn!("listing topics for the status: {e}");
            Vec::new()
        });
        Ok(StatusReport { processors, topics })
    }

    /// Status of one processor.
    pub fn processor_status(&self, name: &str) -> Result<ProcessorStatus> {
        crate::registry::validate_name(name)?;
        let alias = self.registry.processor(name)?;
        let versions: Vec<VersionStatus> = self
            .registry
            .versions()?
            .into_iter()
            .filter(|r| r.name == name)
            .map(|r| self.describe(&r, alias.promoted.as_ref()))
            .collect();
        if versions.is_empty() {
            return Err(Error::not_found(format!("no processor named `{name}`")));
        }
        Ok(ProcessorStatus {
            name: name.to_owned(),
            topic: versions
                .first()
                .map(|v| v.topic.clone())
                .unwrap_or_default(),
            promoted: alias.promoted.map(|v| v.to_string()),
            previous: alias.previous.map(|v| v.to_string()),
            versions,
        })
    }

    /// Status of one version.
    pub fn version_status(&self, id: &VersionId) -> Result<VersionStatus> {
        let rec = self
            .registry
            .version(id)?
            .ok_or_else(|| unknown_version(id))?;
        let alias = self.registry.processor(&id.name)?;
        Ok(self.describe(&rec, alias.promoted.as_ref()))
    }

    fn describe(&self, rec: &VersionRecord, promoted: Option<&semver::Version>) -> VersionStatus {
        let id = rec.id();
        let (ends, mut log_error) = match self.log.end_offsets(&rec.topic) {
            Ok(ends) => (ends, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let running = self.running.lock().get(&id).cloned();
        let (applied, start, rate, processed) = match running {
            Some(run) => {
                let p = run.progress.lock();
                if p.log_error.is_some() {
                    log_error.clone_from(&p.log_error);
                }
                (p.applied.clone(), p.start.clone(), p.rate(), p.processed)
            }
            None => {
                let start = if matches!(rec.stored, Stored::Retired { .. }) {
                    Vec::new()
                } else {
                    self.log.start_offsets(&rec.topic).unwrap_or_default()
                };
                let offsets = self
                    .stopped_views
                    .lock()
                    .get(&id)
                    .and_then(|v| v.offsets().ok())
                    .unwrap_or_default();
                let applied = (0..ends.len() as u32)
                    .map(|p| {
                        offsets
                            .get(&p)
                            .copied()
                            .unwrap_or_else(|| start.get(p as usize).copied().unwrap_or(0))
                    })
                    .collect();
                (applied, start, 0.0, 0)
            }
        };
        let start_of = |p: usize| start.get(p).copied().unwrap_or(0);
        // Progress counts from where the version started reading, over the
        // partitions this host processes.
        let total: u64 = ends
            .iter()
            .enumerate()
            .filter(|(p, _)| self.owns(*p))
            .map(|(p, e)| e.saturating_sub(start_of(p)))
            .sum();
        let done: u64 = applied
            .iter()
            .zip(&ends)
            .enumerate()
            .filter(|(p, _)| self.owns(*p))
            .map(|(p, (a, e))| (*a).min(*e).saturating_sub(start_of(p)))
            .sum();
        let lag = total.saturating_sub(done);
        let state = match &rec.stored {
            Stored::Retired { .. } => State::Retired,
            Stored::Failed(_) => State::Failed,
            Stored::Active if promoted == Some(&rec.version) => State::Promoted,
            Stored::Active if rec.caught_up => State::CaughtUp,
            Stored::Active => State::Replaying,
        };
        let eta_seconds = (state == State::Replaying && rate > 0.0).then(|| lag as f64 / rate);
        // A retired version has no view: no progress, lag or offsets applied.
        let retired = state == State::Retired;
        VersionStatus {
            id: id.to_string(),
            name: rec.name.clone(),
            version: rec.version.to_string(),
            digest: rec.digest.clone(),
            topic: rec.topic.clone(),
            state,
            caught_up: rec.caught_up && !retired,
            applied_offsets: if retired { Vec::new() } else { applied },
            end_offsets: ends,
            lag: (!retired).then_some(lag),
            progress: (!retired).then(|| {
                if total == 0 {
                    1.0
                } else {
                    done as f64 / total as f64
                }
            }),
            events_per_second: if retired { 0.0 } else { rate },
            eta_seconds,
            processed_since_start: processed,
            failure: match &rec.stored {
                Stored::Failed(f) => Some(f.clone()),
                _ => None,
            },
            settings: rec.settings.clone(),
            deployed_at_ms: rec.deployed_at_ms,
            dead_letter_count: rec.dead_letter_count,
            log_error,
            dead_letters: rec
                .dead_letters
                .iter()
                .rev()
                .take(100)
                .rev()
                .cloned()
                .collect(),
        }
    }

    // ---------------------------------------------------------------- queries

    /// Resolves `name` (the promoted version) or `name@version`.
    pub fn resolve(&self, spec: &str) -> Result<VersionId> {
        if spec.contains('@') {
            return VersionId::parse(spec);
        }
        crate::registry::validate_name(spec)?;
        let alias = self.registry.processor(spec)?;
        match alias.promoted {
            Some(version) => Ok(VersionId {
                name: spec.to_owned(),
                version,
            }),
            None => {
                let known = self.registry.versions()?.iter().any(|r| r.name == spec);
                Err(Error::not_found(if known {
                    format!(
                        "`{spec}` has no promoted version yet (its first version is promoted \
                         when it catches up); name a version: {spec}@VERSION"
                    )
                } else {
                    format!("no processor named `{spec}`")
                }))
            }
        }
    }

    fn view(&self, id: &VersionId) -> Result<Arc<View>> {
        if let Some(run) = self.running.lock().get(id) {
            return Ok(run.view.clone());
        }
        if let Some(view) = self.stopped_views.lock().get(id) {
            return Ok(view.clone());
        }
        match self.registry.version(id)? {
            Some(rec) if matches!(rec.stored, Stored::Retired { .. }) => Err(Error::not_found(
                format!("the view of {id} was dropped when the version was retired"),
            )),
            _ => Err(unknown_version(id)),
        }
    }

    /// The value under `key` in the view of `spec`.
    pub fn get(&self, spec: &str, key: &[u8]) -> Result<(VersionId, Option<Vec<u8>>)> {
        let id = self.resolve(spec)?;
        let value = self.view(&id)?.get(key)?;
        Ok((id, value))
    }

    /// A page of rows of the view of `spec`.
    pub fn scan(
        &self,
        spec: &str,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage> {
        let id = self.resolve(spec)?;
        let snap = self.view(&id)?.snapshot()?;
        let mut rows = snap.scan(prefix, start_after, limit.saturating_add(1))?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_after = if more {
            rows.last().map(|(k, _)| crate::model::display_key(k))
        } else {
            None
        };
        Ok(ScanPage {
            id: id.to_string(),
            rows: rows.iter().map(|(k, v)| Row::new(k, v)).collect(),
            next_after,
        })
    }

    /// The digest of the view of `spec`.
    pub fn digest(&self, spec: &str) -> Result<(VersionId, crate::store::ViewDigest)> {
        let id = self.resolve(spec)?;
        let digest = self.view(&id)?.snapshot()?.digest()?;
        Ok((id, digest))
    }

    /// Compares the views of `a` and `b` at the same log position: holds both
    /// workers at the furthest offsets either has applied, waits (up to
    /// `wait`) until both have reached them, and compares the snapshots.
    pub fn diff(
        &self,
        a: &str,
        b: &str,
        options: &DiffOptions,
        wait: Duration,
    ) -> Result<DiffReport> {
        let (ida, idb) = (self.resolve(a)?, self.resolve(b)?);
        if ida.name != idb.name {
            return Err(Error::invalid(format!(
                "{ida} and {idb} are versions of different processors; a diff compares two \
                 versions of one processor"
            )));
        }
        let _one_at_a_time = self.diff_lock.lock();
        let (va, vb) = (self.view(&ida)?, self.view(&idb)?);
        let runs: Vec<Arc<Running>> = {
            let running = self.running.lock();
            [&ida, &idb]
                .iter()
                .filter_map(|id| running.get(*id).cloned())
                .collect()
        };
        for (id, status) in [
            (&ida, self.version_status(&ida)?),
            (&idb, self.version_status(&idb)?),
        ] {
            if status.state == State::Replaying && wait.is_zero() {
                return Err(Error::conflict(format!(
                    "{id} is still replaying ({:.0}% done{}); a diff needs both views at the same \
                     log position: retry when it has caught up, or ask to wait \
                     (use --wait SECONDS)",
                    status.progress.unwrap_or(0.0) * 100.0,
                    status
                        .eta_seconds
                        .map(|s| format!(", about {s:.0} s to go"))
                        .unwrap_or_default()
                )));
            }
        }
        // The barrier: hold both workers at the furthest position either has
        // applied, then wait for both to be exactly there. A batch already in
        // flight when the hold is raised may carry a worker past the target;
        // then the target moves up to that position and the hold with it.
        // Once both workers see the hold, neither moves, so this converges.
        let (oa, ob) = (va.offsets()?, vb.offsets()?);
        let partitions = oa
            .keys()
            .chain(ob.keys())
            .copied()
            .max()
            .map_or(0, |m| m + 1) as usize;
        let offset = |o: &BTreeMap<u32, u64>, p: usize| o.get(&(p as u32)).copied().unwrap_or(0);
        let mut target: Vec<u64> = (0..partitions)
            .map(|p| offset(&oa, p).max(offset(&ob, p)))
            .collect();
        let hold = |target: &Vec<u64>| {
            for run in &runs {
                *run.hold.lock() = Some(target.clone());
            }
        };
        let release = || {
            for run in &runs {
                *run.hold.lock() = None;
            }
        };
        hold(&target);
        let deadline = Instant::now() + wait.max(Duration::from_secs(5));
        let (sa, sb) = loop {
            let snapshots = va.snapshot().and_then(|sa| {
                let sb = vb.snapshot()?;
                let (oa, ob) = (sa.offsets()?, sb.offsets()?);
                Ok((sa, sb, oa, ob))
            });
            let (sa, sb, oa, ob) = match snapshots {
                Ok(s) => s,
                Err(e) => {
                    release();
                    return Err(e.into());
                }
            };
            let parts = partitions.max(oa.len()).max(ob.len());
            target.resize(parts, 0);
            if (0..parts).all(|p| offset(&oa, p) == target[p] && offset(&ob, p) == target[p]) {
                break (sa, sb);
            }
            if (0..parts).any(|p| offset(&oa, p) > target[p] || offset(&ob, p) > target[p]) {
                target = (0..parts)
                    .map(|p| target[p].max(offset(&oa, p)).max(offset(&ob, p)))
                    .collect();
                hold(&target);
            }
            if Instant::now() >= deadline {
                release();
                return Err(Error::conflict(format!(
                    "{ida} and {idb} did not reach the same log position in time (one may have \
                     stopped or failed); applied offsets: {ida} {oa:?}, {idb} {ob:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        release();
        diff::compare(&ida, &idb, &sa, &sb, options)
    }
}

fn swap_alias(alias: &mut crate::registry::ProcessorRecord, version: &semver::Version) {
    if alias.promoted.as_ref() != Some(version) {
        alias.previous = alias.promoted.take();
        alias.promoted = Some(version.clone());
        alias.retired_previous = None;
    }
}

/// The settings of a deploy that differ from those `existing` was deployed
/// with, each as `--flag OLD (asked: NEW)`.
fn differing_settings(existing: &VersionRecord, topic: &str, asked: &Settings) -> Vec<String> {
    let was = &existing.settings;
    let mut out = Vec::new();
    let mut differ = |flag: &str, old: String, new: String| {
        if old != new {
            out.push(format!("{flag} {old} (asked: {new})"));
        }
    };
    differ("--topic", existing.topic.clone(), topic.to_owned());
    differ(
        "--config",
        format!("{:?}", was.config),
        format!("{:?}", asked.config),
    );
    differ(
        "--on-error",
        was.on_error.to_string(),
        asked.on_error.to_string(),
    );
    differ(
        "--auto-promote",
        was.auto_promote.to_string(),
        asked.auto_promote.to_string(),
    );
    differ(
        "--batch-timeout-ms",
        was.batch_timeout_ms.to_string(),
        asked.batch_timeout_ms.to_string(),
    );
    differ(
        "--memory-limit-mb",
        (was.memory_limit_bytes >> 20).to_string(),
        (asked.memory_limit_bytes >> 20).to_string(),
    );
    out
}

fn unknown_version(id: &VersionId) -> Error {
    Error::not_found(format!("no version {id} is deployed"))
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

impl Drop for Host {
    fn drop(&mut self) {
        self.shutdown();
    }
}
