//! View storage: the keyed table that one processor version materializes.
//!
//! Each version gets a database file of its own (redb: an embedded, ACID,
//! copy-on-write B-tree store). One file per version, rather than one table per
//! version in a shared file, because versions commit independently and in
//! parallel (redb has one writer per file), and because retiring a version is
//! then just deleting its file.
//!
//! Under contract 0.3.0-rc.1 and later each input partition has a state of
//! its own, so such a version's view is a directory of such files, one per
//! partition, read together as one view ([`Shards`], `shards.rs`).
//!
//! The exactly-once guarantee lives here: a batch's row writes and the
//! partition's next offset are committed together, so after a crash the view
//! and its offsets always agree, and the worker resumes from exactly the first
//! event the view has not seen.
//!
//! A commit first lands in the view's write buffer, in memory: it is atomic and
//! visible to every snapshot taken after it. The buffer keeps each commit's
//! rows as a sorted run, merged with the runs before it as they grow
//! (`runs.rs`), which absorbs repeated writes to a key. The buffer reaches
//! the file as one redb transaction, rows and offsets of every buffered
//! commit together, when it holds [`ViewOptions::write_buffer_bytes`] (more
//! while the row cache leaves room unused, [`ViewOptions::buffer_bound`]),
//! and whenever the view is synced (a version running out of events,
//! shutdown). A copy-on-write B-tree rewrites
//! every page a transaction touches, so one transaction per batch at many keys
//! rewrote most of the tree at every batch; one per buffer rewrites it once per
//! buffer (BENCHMARKS.md, "The view store at many keys"). A crash loses the
//! buffered commits, rows and offsets alike, and the worker processes those
//! events again from the log: exactly-once holds.
//!
//! Durability is decoupled from atomicity: a buffer written to the file is
//! fsynced when `sync_interval` has passed since the last durable write (or on
//! sync), otherwise written with `Durability::None`, made durable by a later
//! one. That keeps fsyncs off the per-batch path without weakening exactly-once.
//!
//! Point reads ask the row cache first (`cache.rs`): a hash table of the
//! latest committed value of rows, bounded in bytes
//! ([`ViewOptions::row_cache_bytes`]), which takes every row committed, so
//! that the writer's reads search neither the buffer's runs nor the file's
//! B-tree.
//!
//! A full buffer can be written in the background (`write.rs`,
//! [`View::with_background_writes`], off by default: it did not make replays
//! measurably faster, BENCHMARKS.md, "Writing the buffer in the background"): the commit
//! that fills it hands it to a writing thread and returns, and the next
//! commits fill a fresh buffer meanwhile. Readers see the fresh buffer, then
//! the one being written, then the file, so a commit is visible from the
//! moment it returns whatever is being written. One buffer is written at a
//! time: a commit that fills the next one while the last is still being
//! written waits for it, so a view holds at most two buffers.

// Strict lints for product code (not tests or benches): documented items, explained allows, no silent lossy casts.
#![warn(
    missing_docs,
    clippy::allow_attributes_without_reason,
    clippy::too_many_lines,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

mod cache;
mod cache_row;
#[cfg(test)]
mod cache_tests;
mod cache_whole;
#[cfg(test)]
mod hooks;
mod options;
mod runs;
mod shards;
mod snapshot;
#[cfg(test)]
mod tests;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::{Builder, Database, ReadableDatabase, ReadableTable, TableDefinition};
use runs::Probe;

pub use options::{
    DEFAULT_CACHE_BYTES, DEFAULT_ROW_CACHE_BYTES, DEFAULT_WRITE_BUFFER_BYTES, ViewOptions,
    WRITE_BUFFER_BORROW_LIMIT,
};
pub use shards::{KNOWN_KEYS, Layout, Shards};
pub use snapshot::{KeyValue, RowIter, Snapshot};

/// Rows of the view: key bytes to value bytes, ordered bytewise.
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
/// Per input partition, the offset of the next event to apply.
const OFFSETS: TableDefinition<u32, u64> = TableDefinition::new("offsets");
/// Format marker, checked on open.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Version of the layout above. Bump it (and keep reading the old one) on change.
/// The write buffer lives in memory only, so it left the layout unchanged.
pub const FORMAT_VERSION: u64 = 1;

/// Errors of the view store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The underlying database failed.
    #[error("view store {path}: {source}")]
    Db {
        /// The view file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: Box<redb::Error>,
    },
    /// Writing a full buffer to the file in the background failed. Nothing
    /// of that buffer reached the file: its rows and offsets are kept in
    /// memory, under the commits made since, and written by the next write
    /// of the buffer (the next time it fills, or a sync).
    #[error(
        "writing a full buffer to the file in the background failed (its commits are kept in \
         memory and written again by the next write): {source}"
    )]
    Background {
        /// The view file.
        path: PathBuf,
        /// Why the write failed.
        #[source]
        source: Box<StoreError>,
    },
    /// The file was written by an incompatible version of kappa.
    #[error("view store {path} has format {found}, this kappa reads format {FORMAT_VERSION}")]
    Format {
        /// The view file.
        path: PathBuf,
        /// The format found in the file.
        found: u64,
    },
    /// A key held by two partitions' shards of a view kept per partition:
    /// refused when a batch of `writer` writes a key that `holder`'s shard
    /// holds, and reported by a read of the whole view that meets a key in
    /// two shards.
    #[error(
        "key {} is written by partition {writer} but partition {holder}'s shard holds it: \
         under contract 0.3.0 a key belongs to one partition (keep one row per partition, \
         such as `count/{writer}`, and add them up when reading)",
        shown_key(.key)
    )]
    Conflict {
        /// The key.
        key: Vec<u8>,
        /// The partition whose shard already holds the key.
        holder: u32,
        /// The partition that writes it too.
        writer: u32,
    },
}

/// A key as a user reads it in a message: as text between backticks when it
/// is printable UTF-8, else in hex.
fn shown_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.is_empty() && !text.chars().any(char::is_control) => {
            format!("`{text}`")
        }
        _ => format!("0x{}", hex::encode(key)),
    }
}

/// A pending change to one key, as buffered while a batch is processed.
pub type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Summary of a view's content, for comparing versions and checking replays.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ViewDigest {
    /// sha256 over every (key, value) pair in key order, each framed by its
    /// length, so that two views digest equal exactly when their rows are
    /// byte-identical.
    pub sha256: String,
    /// Number of rows.
    pub rows: u64,
    /// Next offset to apply, per partition, at the moment of the digest.
    pub offsets: BTreeMap<u32, u64>,
}

/// Commits not yet in the file.
#[derive(Debug, Default)]
struct Buffer {
    /// Commits since the last write, as sorted runs (`runs.rs`), shared with
    /// the snapshots taken since.
    active: runs::Runs,
    /// The runs being written to the file, still read by snapshots until the
    /// write has committed.
    writing: Option<runs::Runs>,
    /// Next offset per partition, as of the last buffered commit.
    offsets: BTreeMap<u32, u64>,
    /// Offsets being written with `writing`.
    writing_offsets: BTreeMap<u32, u64>,
    /// Commits made since the view was opened.
    commits: u64,
}

impl Buffer {
    /// The buffered state of `key` (`Some(None)`: a deletion not yet in the
    /// file): the runs since the last write first, then those being written.
    fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        let probe = Probe::new(key);
        self.active
            .get(probe)
            .or_else(|| self.writing.as_ref().and_then(|w| w.get(probe)))
    }
}

/// The view of one processor version.
#[derive(Debug)]
pub struct View {
    core: Arc<Core>,
    /// The write of a full buffer running in the background, if one was
    /// started and not yet waited for. Whoever writes the buffer (a commit
    /// that fills it, a sync) holds this lock, so writes of the buffer run
    /// one at a time and reach the file in the order of their commits.
    writer: Mutex<Option<write::Background>>,
    /// Whether a full buffer is written in the background
    /// ([`View::with_background_writes`]).
    background: bool,
}

/// What a view shares with the thread writing its full buffer.
#[derive(Debug)]
struct Core {
    db: Database,
    path: PathBuf,
    options: ViewOptions,
    buffer: Mutex<Buffer>,
    /// The row cache, shared with the snapshots (`None`: none configured).
    /// Locked after `buffer` when both are, never the other way round.
    row_cache: Option<Arc<Mutex<cache::RowCache>>>,
    sync: Mutex<SyncState>,
    /// Test hooks into background writes.
    #[cfg(test)]
    hooks: hooks::Hooks,
}

#[derive(Debug)]
struct SyncState {
    last_durable: Instant,
    /// How many of the view's commits (counted by `Buffer::commits`) are in
    /// the file durably: the view is dirty while fewer than all.
    durable_commits: u64,
}

/// Creates a new view file whole or not at all: redb writes its header and
/// first commit at a temporary path, which is renamed into place once durable.
/// A crash in between leaves only the temporary file, removed by the next
/// creation, never a file at `path` that is not a database.
fn create_whole(path: &Path, builder: &Builder) -> Result<Database, redb::Error> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    {
        let db = builder.create(&temporary)?;
        // An empty commit, durable: the file is a whole database from here on.
        db.begin_write()?.commit()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(builder.create(path)?)
}

impl View {
    /// Opens (creating if needed) the view file at `path` with the default
    /// options but `sync_interval`, the longest time between durable writes
    /// (zero makes every write durable).
    pub fn open(path: &Path, sync_interval: Duration) -> Result<Self, StoreError> {
        Self::open_with(
            path,
            ViewOptions {
                sync_interval,
                ..ViewOptions::default()
            },
        )
    }

    /// Opens (creating if needed) the view file at `path`.
    pub fn open_with(path: &Path, options: ViewOptions) -> Result<Self, StoreError> {
        let err = |e: redb::Error| StoreError::Db {
            path: path.to_owned(),
            source: Box::new(e),
        };
        let mut builder = Builder::new();
        builder.set_cache_size(options.cache_bytes);
        let db = if path.exists() {
            builder.create(path).map_err(|e| err(e.into()))?
        } else {
            create_whole(path, &builder).map_err(err)?
        };
        let empty = {
            let txn = db.begin_read().map_err(|e| err(e.into()))?;
            match txn.open_table(ROWS) {
                Ok(rows) => rows.first().map_err(|e| err(e.into()))?.is_none(),
                Err(redb::TableError::TableDoesNotExist(_)) => true,
                Err(e) => return Err(err(e.into())),
            }
        };
        let row_cache = (options.row_cache_bytes > 0).then(|| {
            Arc::new(Mutex::new(cache::RowCache::new(
                options.row_cache_bytes,
                0,
                empty,
            )))
        });
        let core = Core {
            db,
            path: path.to_owned(),
            options,
            buffer: Mutex::new(Buffer::default()),
            row_cache,
            sync: Mutex::new(SyncState {
                last_durable: Instant::now(),
                durable_commits: 0,
            }),
            #[cfg(test)]
            hooks: hooks::Hooks::default(),
        };
        // Create the tables and the format marker so readers never meet a
        // file without them.
        let txn = core.db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            let found = meta
                .get("format")
                .map_err(|e| err(e.into()))?
                .map(|v| v.value());
            match found {
                None => {
                    meta.insert("format", FORMAT_VERSION)
                        .map_err(|e| err(e.into()))?;
                }
                Some(FORMAT_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::Format {
                        path: path.to_owned(),
                        found,
                    });
                }
            }
            txn.open_table(ROWS).map_err(|e| err(e.into()))?;
            txn.open_table(OFFSETS).map_err(|e| err(e.into()))?;
        }
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(View {
            core: Arc::new(core),
            writer: Mutex::new(None),
            background: false,
        })
    }

    /// Whether a full write buffer is written to the file in the background
    /// (`true`: the commit that fills it returns at once) or on the thread of
    /// the commit that fills it, which returns once it is written (`false`,
    /// the default). Either way, reads, durability and exactly-once are the
    /// same. Off by default because, measured at 1M keys on two shared
    /// cores, it removed the commit's stall (the longest commit 2–3.5 s →
    /// 0.16–0.31 s) but did not make the replay measurably faster: elapsed
    /// time and CPU-seconds moved either way within the machine's noise
    /// (BENCHMARKS.md, "Writing the buffer in the background").
    #[must_use]
    pub fn with_background_writes(mut self, background: bool) -> Self {
        self.background = background;
        self
    }

    /// Path of the view file.
    pub fn path(&self) -> &Path {
        &self.core.path
    }

    /// Bytes of rows in the row cache, as weighed against
    /// [`ViewOptions::row_cache_bytes`] (zero without a cache).
    pub fn row_cache_bytes(&self) -> u64 {
        self.core
            .row_cache
            .as_ref()
            .map_or(0, |cache| cache.lock().bytes())
    }

    /// Whether the row cache holds every row of the view.
    #[cfg(test)]
    pub(crate) fn row_cache_is_complete(&self) -> bool {
        self.core
            .row_cache
            .as_ref()
            .is_some_and(|cache| cache.lock().is_complete())
    }

    /// The options the view was opened with.
    pub fn options(&self) -> &ViewOptions {
        &self.core.options
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        self.core.err(e)
    }

    /// Applies one processed batch: the row writes and the partition's next
    /// offset, atomically, to the write buffer; the buffer goes to the file
    /// when full (in the background if [`View::with_background_writes`]),
    /// durably if the sync interval has passed; `force_durable` writes the
    /// buffer now, durably, and returns once it is.
    ///
    /// An error means that a write of the buffer to the file failed (this
    /// commit's or an earlier background one's): the batch is applied to
    /// the buffer all the same, and every buffered commit is kept for the
    /// next write.
    pub fn commit(
        &self,
        partition: u32,
        next_offset: u64,
        writes: &Writes,
        force_durable: bool,
    ) -> Result<(), StoreError> {
        let (buffered, generation) = {
            let mut buffer = self.core.buffer.lock();
            buffer.active.push(writes);
            buffer.offsets.insert(partition, next_offset);
            buffer.commits += 1;
            // The bytes of every run: a key in several counts once per run
            // until they merge, as it takes memory once per run.
            (buffer.active.bytes(), buffer.commits)
        };
        // After the buffer's lock, so that readers do not wait for it: until
        // the cache is of this commit, reads skip it (`cache.rs`).
        let cached = self.core.row_cache.as_ref().map(|cache| {
            let mut cache = cache.lock();
            cache.commit(
                generation,
                writes
                    .iter()
                    .map(|(key, value)| (key.as_slice(), value.as_deref())),
            );
            cache.bytes()
        });
        let full = buffered >= self.core.options.buffer_bound(cached);
        if force_durable {
            self.write_now(true)
        } else if full {
            self.write_full()
        } else {
            Ok(())
        }
    }

    /// Makes every commit so far durable (used on clean shutdown and before a
    /// version reports itself caught up): waits for a background write in
    /// progress, then writes the rest of the buffer, durably. An error of the
    /// background write is returned (its commits kept in memory, written by
    /// the next sync).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.write_now(true)
    }

    /// Makes the commits so far durable if some are not yet: called when a
    /// worker runs out of events, so that a quiet view is on disk whole.
    pub fn sync_if_dirty(&self) -> Result<(), StoreError> {
        let commits = self.core.buffer.lock().commits;
        if self.core.sync.lock().durable_commits < commits {
            self.sync()?;
        }
        Ok(())
    }

    /// A consistent read-only snapshot: rows and offsets as of one commit.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        // Under the buffer's lock, so the file's state and the buffer's are
        // of one moment: a write of the buffer commits between two snapshots,
        // never inside one.
        let buffer = self.core.buffer.lock();
        let txn = self.core.db.begin_read().map_err(|e| self.err(e))?;
        let mut layers: Vec<_> = buffer.active.layers().collect();
        if let Some(writing) = &buffer.writing {
            layers.extend(writing.layers());
        }
        let mut offsets = buffer.writing_offsets.clone();
        offsets.extend(buffer.offsets.iter().map(|(p, o)| (*p, *o)));
        let cache = self
            .core
            .row_cache
            .as_ref()
            .map(|cache| (Arc::clone(cache), buffer.commits));
        drop(buffer);
        let rows = txn.open_table(ROWS).map_err(|e| self.err(e))?;
        let file_offsets = txn.open_table(OFFSETS).map_err(|e| self.err(e))?;
        Ok(Snapshot::new(snapshot::Part {
            shard: None,
            rows,
            offsets: file_offsets,
            layers,
            buffered_offsets: offsets,
            cache,
            path: self.core.path.clone(),
        }))
    }

    /// The value under `key` in the latest commit. Unlike a snapshot, shares
    /// nothing with the writer afterwards, so a reader never makes the next
    /// commit copy the buffer.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let (txn, generation) = {
            let buffer = self.core.buffer.lock();
            let known = match &self.core.row_cache {
                Some(cache) => cache::lookup(cache, buffer.commits, key),
                None => cache::Cached::Unknown,
            };
            if let cache::Cached::Known(value) = known {
                return Ok(value);
            }
            if let Some(value) = buffer.get(key) {
                return Ok(value.map(<[u8]>::to_vec));
            }
            // Begun under the lock: the file as of the buffer just read.
            let txn = self.core.db.begin_read().map_err(|e| self.err(e))?;
            (txn, buffer.commits)
        };
        let rows = txn.open_table(ROWS).map_err(|e| self.err(e))?;
        let value = rows
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec());
        if let Some(cache) = &self.core.row_cache {
            cache::try_fill(cache, generation, key, value.as_deref());
        }
        Ok(value)
    }

    /// Next offset to apply, per partition (absent = 0).
    pub fn offsets(&self) -> Result<BTreeMap<u32, u64>, StoreError> {
        self.snapshot()?.offsets()
    }

    /// The values of `keys` (in the order given) in the latest commit, read
    /// in one transaction. Like [`View::get`], it keeps no share of the write
    /// buffer, so the view's next commit never copies its buffer because of
    /// it; the price is holding the buffer's lock while the keys are looked up
    /// in the buffer (not in the file).
    pub(crate) fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut found = vec![None; keys.len()];
        let mut in_file = Vec::new();
        let (txn, generation) = {
            let buffer = self.core.buffer.lock();
            // As `get`, not waiting for a commit updating the cache (another
            // partition's, when a shard checks its keys against the others).
            let mut cache = self
                .core
                .row_cache
                .as_ref()
                .and_then(|cache| cache.try_lock());
            for (i, key) in keys.iter().enumerate() {
                if let Some(cache::Cached::Known(value)) =
                    cache.as_mut().map(|c| c.get(buffer.commits, key))
                {
                    found[i] = value;
                    continue;
                }
                match buffer.get(key) {
                    Some(value) => found[i] = value.map(<[u8]>::to_vec),
                    None => in_file.push(i),
                }
            }
            if in_file.is_empty() {
                return Ok(found);
            }
            // Begun under the lock: the file as of the buffer just read.
            let txn = self.core.db.begin_read().map_err(|e| self.err(e))?;
            (txn, buffer.commits)
        };
        let rows = txn.open_table(ROWS).map_err(|e| self.err(e))?;
        for &i in &in_file {
            found[i] = rows
                .get(keys[i])
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_vec());
        }
        if let Some(cache) = &self.core.row_cache
            && let Some(mut cache) = cache.try_lock()
        {
            for i in in_file {
                cache.fill(generation, keys[i], found[i].as_deref());
            }
        }
        Ok(found)
    }
}

impl Drop for View {
    /// A view closed in an orderly way keeps its buffered commits (a crash,
    /// which runs no code, loses them with their offsets).
    fn drop(&mut self) {
        self.write_on_drop();
    }
}
