//! View storage: the keyed table that one processor version materializes.
//!
//! Each version gets a database file of its own (redb: an embedded, ACID,
//! copy-on-write B-tree store). One file per version, rather than one table per
//! version in a shared file, because versions commit independently and in
//! parallel (redb has one writer per file), and because retiring a version is
//! then just deleting its file.
//!
//! The exactly-once guarantee lives here: a batch's row writes and the
//! partition's next offset are committed in one transaction, so after a crash
//! the view and its offsets always agree, and the worker resumes from exactly
//! the first event the view has not seen.
//!
//! Durability is decoupled from atomicity: most commits use
//! `Durability::None` (atomic and visible, but not fsynced) and every
//! `sync_interval` one commit is `Immediate`. A crash loses only the commits
//! since the last durable one, and since offsets roll back with the rows, the
//! worker simply replays those events from the log. That keeps fsyncs off the
//! per-batch path without weakening exactly-once.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use sha2::{Digest, Sha256};

/// Rows of the view: key bytes to value bytes, ordered bytewise.
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
/// Per input partition, the offset of the next event to apply.
const OFFSETS: TableDefinition<u32, u64> = TableDefinition::new("offsets");
/// Format marker, checked on open.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Version of the layout above. Bump it (and keep reading the old one) on change.
const FORMAT_VERSION: u64 = 1;

/// Errors of the view store.
#[derive(Debug, thiserror::Error)]
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
    /// The file was written by an incompatible version of kappa.
    #[error("view store {path} has format {found}, this kappa reads format {FORMAT_VERSION}")]
    Format {
        /// The view file.
        path: PathBuf,
        /// The format found in the file.
        found: u64,
    },
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

/// The view of one processor version.
#[derive(Debug)]
pub struct View {
    db: Database,
    path: PathBuf,
    sync: Mutex<SyncState>,
}

#[derive(Debug)]
struct SyncState {
    last_durable: Instant,
    interval: Duration,
    /// Whether commits were made since the last durable one.
    dirty: bool,
}

/// Creates a new view file whole or not at all: redb writes its header and
/// first commit at a temporary path, which is renamed into place once durable.
/// A crash in between leaves only the temporary file, removed by the next
/// creation, never a file at `path` that is not a database.
fn create_whole(path: &Path) -> Result<Database, redb::Error> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    {
        let db = Database::create(&temporary)?;
        // An empty commit, durable: the file is a whole database from here on.
        db.begin_write()?.commit()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(Database::create(path)?)
}

impl View {
    /// Opens (creating if needed) the view file at `path`. `sync_interval` is
    /// the longest time between durable commits (zero makes every commit durable).
    pub fn open(path: &Path, sync_interval: Duration) -> Result<Self, StoreError> {
        let err = |e: redb::Error| StoreError::Db {
            path: path.to_owned(),
            source: Box::new(e),
        };
        let db = if path.exists() {
            Database::create(path).map_err(|e| err(e.into()))?
        } else {
            create_whole(path).map_err(err)?
        };
        let view = View {
            db,
            path: path.to_owned(),
            sync: Mutex::new(SyncState {
                last_durable: Instant::now(),
                interval: sync_interval,
                dirty: false,
            }),
        };
        // Create the tables and the format marker so readers never meet a
        // file without them.
        let txn = view.db.begin_write().map_err(|e| err(e.into()))?;
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
        Ok(view)
    }

    /// Path of the view file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// Applies one processed batch: the row writes and the partition's next
    /// offset, atomically. Durable if the sync interval has passed (or
    /// `force_durable`), otherwise made durable by a later commit.
    pub fn commit(
        &self,
        partition: u32,
        next_offset: u64,
        writes: &Writes,
        force_durable: bool,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let durable = {
            let mut sync = self.sync.lock();
            let due = force_durable || sync.last_durable.elapsed() >= sync.interval;
            if due {
                sync.last_durable = Instant::now();
            }
            sync.dirty = !due;
            due
        };
        if !durable {
            txn.set_durability(Durability::None)
                .map_err(|e| self.err(e))?;
        }
        {
            let mut rows = txn.open_table(ROWS).map_err(|e| self.err(e))?;
            for (key, value) in writes {
                match value {
                    Some(v) => {
                        rows.insert(key.as_slice(), v.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    None => {
                        rows.remove(key.as_slice()).map_err(|e| self.err(e))?;
                    }
                }
            }
            let mut offsets = txn.open_table(OFFSETS).map_err(|e| self.err(e))?;
            offsets
                .insert(partition, next_offset)
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Makes every commit so far durable (used on clean shutdown and before a
    /// version reports itself caught up).
    pub fn sync(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        let mut sync = self.sync.lock();
        sync.last_durable = Instant::now();
        sync.dirty = false;
        Ok(())
    }

    /// Makes the commits so far durable if some are not yet: called when a
    /// worker runs out of events, so that a quiet view is on disk whole.
    pub fn sync_if_dirty(&self) -> Result<(), StoreError> {
        if self.sync.lock().dirty {
            self.sync()?;
        }
        Ok(())
    }

    /// A consistent read-only snapshot: rows and offsets as of one commit.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let rows = txn.open_table(ROWS).map_err(|e| self.err(e))?;
        let offsets = txn.open_table(OFFSETS).map_err(|e| self.err(e))?;
        Ok(Snapshot {
            rows,
            offsets,
            path: self.path.clone(),
        })
    }

    /// The value under `key` in the latest commit.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.snapshot()?.get(key)
    }

    /// Next offset to apply, per partition (absent = 0).
    pub fn offsets(&self) -> Result<BTreeMap<u32, u64>, StoreError> {
        self.snapshot()?.offsets()
    }
}

/// A read-only snapshot of a view, consistent across rows and offsets.
pub struct Snapshot {
    rows: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    offsets: redb::ReadOnlyTable<u32, u64>,
    path: PathBuf,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.path)
            .finish()
    }
}

/// A row: key and value bytes.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An iterator over the rows of a snapshot, in key order.
pub type RowIter = Box<dyn Iterator<Item = Result<KeyValue, StoreError>>>;

impl Snapshot {
    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .rows
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Next offset to apply, per partition that has seen events.
    pub fn offsets(&self) -> Result<BTreeMap<u32, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for entry in self.offsets.iter().map_err(|e| self.err(e))? {
            let (p, o) = entry.map_err(|e| self.err(e))?;
            out.insert(p.value(), o.value());
        }
        Ok(out)
    }

    /// Number of rows.
    pub fn len(&self) -> Result<u64, StoreError> {
        self.rows.len().map_err(|e| self.err(e))
    }

    /// Whether the view has no rows.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Rows whose key starts with `prefix`, after `start_after` (exclusive)
    /// when given, in key order.
    pub fn rows(&self, prefix: &[u8], start_after: Option<&[u8]>) -> Result<RowIter, StoreError> {
        let lower: Bound<&[u8]> = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let range = self
            .rows
            .range::<&[u8]>((lower, Bound::Unbounded))
            .map_err(|e| self.err(e))?;
        let prefix = prefix.to_vec();
        let path = self.path.clone();
        Ok(Box::new(
            range
                .map(move |entry| {
                    entry
                        .map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                        .map_err(|e| StoreError::Db {
                            path: path.clone(),
                            source: Box::new(e.into()),
                        })
                })
                .take_while(move |entry| match entry {
                    Ok((k, _)) => k.starts_with(&prefix),
                    Err(_) => true,
                }),
        ))
    }

    /// Up to `limit` rows with `prefix`, after `start_after`.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.rows(prefix, start_after)?.take(limit).collect()
    }

    /// The digest of the whole snapshot.
    pub fn digest(&self) -> Result<ViewDigest, StoreError> {
        let mut hasher = Sha256::new();
        let mut rows = 0u64;
        for entry in self.rows(b"", None)? {
            let (k, v) = entry?;
            hasher.update((k.len() as u64).to_le_bytes());
            hasher.update(&k);
            hasher.update((v.len() as u64).to_le_bytes());
            hasher.update(&v);
            rows += 1;
        }
        Ok(ViewDigest {
            sha256: hex::encode(hasher.finalize()),
            rows,
            offsets: self.offsets()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn writes(pairs: &[(&str, Option<&str>)]) -> Writes {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    /// A crash while a view file was being created leaves only its
    /// temporary file: the next creation removes it and opens a whole view,
    /// and no file that is not a database ever stands at the view's path.
    #[test]
    fn a_creation_cut_by_a_crash_leaves_no_broken_view() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.redb");
        let temporary = dir.path().join("v.redb.new");
        std::fs::write(&temporary, b"half a redb header").unwrap();
        assert!(!path.exists());
        let view = View::open(&path, Duration::ZERO).unwrap();
        assert!(!temporary.exists(), "the leftover is removed");
        view.commit(0, 1, &writes(&[("a", Some("1"))]), true)
            .unwrap();
        drop(view);
        let again = View::open(&path, Duration::ZERO).unwrap();
        assert_eq!(again.offsets().unwrap().get(&0), Some(&1));
    }

    #[test]
    fn commit_applies_rows_and_offsets_together() {
        let dir = tempfile::tempdir().unwrap();
        let view = View::open(&dir.path().join("v.redb"), Duration::ZERO).unwrap();
        assert!(view.offsets().unwrap().is_empty());
        view.commit(0, 3, &writes(&[("a", Some("1")), ("b", Some("2"))]), false)
            .unwrap();
        view.commit(1, 7, &writes(&[("a", None), ("c", Some("3"))]), false)
            .unwrap();
        let snap = view.snapshot().unwrap();
        assert_eq!(snap.get(b"a").unwrap(), None);
        assert_eq!(snap.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(snap.len().unwrap(), 2);
        assert_eq!(snap.offsets().unwrap(), BTreeMap::from([(0, 3), (1, 7)]));
    }

    #[test]
    fn survives_reopen_including_non_durable_commits_after_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.redb");
        {
            let view = View::open(&path, Duration::from_secs(3600)).unwrap();
            view.commit(0, 1, &writes(&[("k", Some("v"))]), false)
                .unwrap();
            view.sync().unwrap();
        }
        let view = View::open(&path, Duration::ZERO).unwrap();
        assert_eq!(view.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 1)]));
    }

    #[test]
    fn snapshot_is_isolated_from_later_commits() {
        let dir = tempfile::tempdir().unwrap();
        let view = View::open(&dir.path().join("v.redb"), Duration::ZERO).unwrap();
        view.commit(0, 1, &writes(&[("k", Some("old"))]), false)
            .unwrap();
        let snap = view.snapshot().unwrap();
        view.commit(0, 2, &writes(&[("k", Some("new"))]), false)
            .unwrap();
        assert_eq!(snap.get(b"k").unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(snap.offsets().unwrap()[&0], 1);
        assert_eq!(view.get(b"k").unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn scan_honours_prefix_cursor_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let view = View::open(&dir.path().join("v.redb"), Duration::ZERO).unwrap();
        let w = writes(&[
            ("a/1", Some("x")),
            ("a/2", Some("x")),
            ("a/3", Some("x")),
            ("b/1", Some("x")),
        ]);
        view.commit(0, 4, &w, false).unwrap();
        let snap = view.snapshot().unwrap();
        let keys = |rows: Vec<(Vec<u8>, Vec<u8>)>| {
            rows.into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(snap.scan(b"a/", None, 10).unwrap()),
            ["a/1", "a/2", "a/3"]
        );
        assert_eq!(keys(snap.scan(b"a/", Some(b"a/1"), 1).unwrap()), ["a/2"]);
        assert_eq!(keys(snap.scan(b"", Some(b"a/3"), 10).unwrap()), ["b/1"]);
        assert!(snap.scan(b"c", None, 10).unwrap().is_empty());
    }

    #[test]
    fn digest_depends_on_rows_only_and_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let a = View::open(&dir.path().join("a.redb"), Duration::ZERO).unwrap();
        let b = View::open(&dir.path().join("b.redb"), Duration::ZERO).unwrap();
        a.commit(
            0,
            2,
            &writes(&[("k1", Some("v")), ("k2", Some("w"))]),
            false,
        )
        .unwrap();
        // Same rows reached through other batches and offsets.
        b.commit(1, 1, &writes(&[("k2", Some("w"))]), false)
            .unwrap();
        b.commit(0, 9, &writes(&[("k1", Some("v"))]), false)
            .unwrap();
        let (da, db) = (
            a.snapshot().unwrap().digest().unwrap(),
            b.snapshot().unwrap().digest().unwrap(),
        );
        assert_eq!(da.sha256, db.sha256);
        assert_eq!(da.rows, 2);
        // Framing: moving a byte from key to value changes the digest.
        b.commit(0, 10, &writes(&[("k1", None), ("k", Some("1v"))]), false)
            .unwrap();
        assert_ne!(b.snapshot().unwrap().digest().unwrap().sha256, da.sha256);
    }
}
