//! The running host: deploys versions, runs one worker thread per active
//! version, moves versions through their lifecycle, and answers queries.
//!
//! Lifecycle of a version: deployed → replaying (from offset 0 of every
//! partition) → caught up (tailing the live log) → promoted (the alias points
//! to it) → retired (worker stopped, view dropped). Or failed: the worker
//! stops at the offending event and records partition, offset and message;
//! other versions are untouched.
//!
//! This module owns [`Host`] itself: its options, opening a data directory
//! (restarting every active version where its view left off) and the plugin
//! cache. The rest is split by concern:
//! - `topics`: creating topics, producing and consuming events;
//! - `admin`: deploy, promote, rollback, retire;
//! - `running`: starting and stopping a version's workers (one thread per
//!   lane of its partitions), recording their outcome;
//! - `worker`: the read–process–commit loop of one lane; `env`: what it uses
//!   of the host, and what it records there; `inputs`: the merge of several
//!   input topics;
//! - `priority`: replaying threads below live ones;
//! - `pacing`: a worker's batch size and its backoff from an unreachable log;
//! - `progress`: a worker's live figures (rate, applied offsets);
//! - `status`: what `kappa status` shows;
//! - `query`: get, scan, digest and diff of views;
//! - `barrier`: the hold that brings two views to one log position.

mod admin;
mod barrier;
mod env;
mod inputs;
mod pacing;
mod priority;
mod progress;
mod query;
mod running;
mod status;
mod topics;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result, io};
use crate::eventlog::{EventLog, LogBackend};
use crate::log::{EmbeddedLog, LogOptions};
use crate::registry::{Registry, Stored, VersionId};
use crate::runtime::{Plugin, Runtime};
use crate::store::{Layout, Shards, ViewOptions};

use running::Running;
use worker::Fault;

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
    /// Per view: bytes of rows in its row cache
    /// (`kappa serve --view-row-cache-mb`; zero: none).
    pub view_row_cache_bytes: usize,
    /// Most threads one version processes its partitions on, when its state
    /// is per partition (contract 0.3.0-rc.1 and later; versions of earlier
    /// contracts use one): one per partition this host processes, at most
    /// this many (`kappa serve --threads-per-version`; default: the cores).
    pub threads_per_version: usize,
    /// Whether a replaying version's threads run at a lower scheduling
    /// priority than caught-up ones (default: yes; see `lifecycle::priority`).
    /// Off, a replay competes with live work as an equal (the benchmark
    /// measures what the difference is).
    pub lower_replay_priority: bool,
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
            row_cache_bytes: self.view_row_cache_bytes,
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
            view_row_cache_bytes: crate::store::DEFAULT_ROW_CACHE_BYTES,
            threads_per_version: std::thread::available_parallelism().map_or(1, usize::from),
            lower_replay_priority: true,
            max_event_bytes: 1 << 20,
            log: LogOptions::default(),
            backend: LogBackend::Embedded,
            partitions: None,
            peers: Vec::new(),
            peer_token: None,
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
    stopped_views: Mutex<HashMap<VersionId, Arc<Shards>>>,
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
                            Fault::unplaced(format!("could not resume after restart: {e}")),
                        );
                    }
                }
                Stored::Failed(_) => {
                    // A failed version's view is kept for reading; one that
                    // cannot be opened leaves the version failed without a
                    // view, and never keeps the host from starting.
                    // Its layout is that of the files it left (its plugin
                    // is not compiled just to read its view).
                    let layout = if host.view_path(&id, Layout::PerPartition).is_dir() {
                        Layout::PerPartition
                    } else {
                        Layout::Shared
                    };
                    let path = host.view_path(&id, layout);
                    match Shards::open(&path, layout, host.options.view_options()) {
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
        owns(self.options.partitions.as_deref(), partition)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The metrics recorded as the host runs.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Where the view of `id` lives: one file for a shared view, a
    /// directory of one file per partition when the state is per partition.
    fn view_path(&self, id: &VersionId, layout: Layout) -> PathBuf {
        let name = match layout {
            Layout::Shared => format!("{}.redb", id.version),
            Layout::PerPartition => format!("{}.shards", id.version),
        };
        self.data_dir.join("views").join(&id.name).join(name)
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
            ms = crate::clock::millis(plugin.load_time),
            "plugin compiled"
        );
        self.plugins
            .lock()
            .insert(digest.to_owned(), plugin.clone());
        Ok(plugin)
    }
}

/// Whether a host that processes `partitions` (`None`: all) processes
/// `partition`.
#[expect(
    clippy::cast_possible_truncation,
    reason = "`partition` indexes the topic's partitions, which a u32 counts"
)]
fn owns(partitions: Option<&[u32]>, partition: usize) -> bool {
    partitions.is_none_or(|owned| owned.contains(&(partition as u32)))
}

/// The rank of `partition` among `partitions` (`None`: all, so its number),
/// or none if it is not one of them: which lane of a version processes it.
fn rank(partitions: Option<&[u32]>, partition: usize) -> Option<usize> {
    match partitions {
        None => Some(partition),
        Some(owned) => {
            let partition = u32::try_from(partition).ok()?;
            owned
                .contains(&partition)
                .then(|| owned.iter().filter(|p| **p < partition).count())
        }
    }
}

fn unknown_version(id: &VersionId) -> Error {
    Error::not_found(format!("no version {id} is deployed"))
}

impl Drop for Host {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_host_given_some_partitions_ranks_them_so_lanes_share_them_evenly() {
        assert_eq!(super::rank(None, 3), Some(3));
        let owned = [0, 2];
        assert_eq!(super::rank(Some(&owned), 0), Some(0));
        assert_eq!(super::rank(Some(&owned), 1), None);
        assert_eq!(super::rank(Some(&owned), 2), Some(1));
        let unordered = [3, 1];
        assert_eq!(super::rank(Some(&unordered), 3), Some(1));
        assert_eq!(super::rank(Some(&unordered), 1), Some(0));
    }
}
