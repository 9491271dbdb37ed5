//! The view of one version as the host uses it: one file shared by every
//! partition, or one file (a *shard*) per input partition.
//!
//! Contracts 0.1.0 and 0.2.0 give every partition one shared state, so a
//! version's partitions are processed one after another into one view file.
//! From contract 0.3.0-rc.1 on, a batch of partition P reads and writes P's
//! shard only. A shard per file lets the host process partitions on several
//! threads at once: redb has one writer per file, so shards in one file would
//! serialize the commits again, and each shard commits its rows with its own
//! partition's offset, so exactly-once holds per shard exactly as it holds
//! for one view file (a crash loses a shard's buffered commits with their
//! offsets, and that partition resumes from the first event its shard lacks).
//!
//! Users still query one view: reads of the whole view merge the shards
//! ([`Snapshot::merge`]), and a view kept in shards digests equal to a view of
//! one file holding the same rows, which is how two thread counts are shown
//! to build the same view.
//!
//! That union is only a table if a key belongs to one partition. The rule is
//! enforced at commit without a lock over the shards: a commit looks up the
//! keys it adds to its shard in every other shard *after* committing. Of two
//! shards adding one key at the same moment, each commits before it looks,
//! so at least one of them sees the other's row, and a duplicate is always
//! reported ([`StoreError::Conflict`]) and its batch undone. Merged reads
//! report a duplicate too, so it can never be read as if it were one row.
//!
//! Finding the keys a commit adds costs a look-up of each key it writes in
//! its own shard; the keys a shard is known to hold (written by its earlier
//! commits, up to [`KNOWN_KEYS`] per shard) are kept in memory and need none,
//! so a partition that keeps writing the same rows (an account's total)
//! pays a hash look-up per key instead. A batch that adds keys first reads
//! the values it overwrites, and commits them back when it is refused; it
//! keeps no snapshot across its commit, which would make the commit copy the
//! shard's whole write buffer.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::{Snapshot, StoreError, View, ViewOptions, Writes};

/// How a version's view is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One file shared by every partition (contracts 0.1.0, 0.2.0).
    Shared,
    /// One file per input partition (0.3.0-rc.1 and later).
    PerPartition,
}

/// The view of one version, as the host uses it: one [`View`] when
/// [`Layout::Shared`], one per partition when [`Layout::PerPartition`].
/// Shared by the threads that process the version's partitions.
#[derive(Debug)]
pub struct Shards {
    path: PathBuf,
    layout: Layout,
    options: ViewOptions,
    /// The view file, when shared.
    shared: Option<Arc<View>>,
    /// The shards by partition, when per partition. Read on every commit,
    /// written only when a partition commits for the first time.
    shards: RwLock<BTreeMap<u32, Arc<View>>>,
    /// The keys each shard is known to hold, by partition.
    known: RwLock<BTreeMap<u32, Arc<Known>>>,
}

/// Most keys a shard is remembered to hold (about 100 bytes each for keys of
/// some 20 bytes): past it the memory is cleared and refills with the keys
/// written next, so hot keys stay known whatever the number of cold ones.
pub const KNOWN_KEYS: usize = 1 << 17;

/// The keys one shard is known to hold: each was in a commit of the shard
/// that succeeded, and was not deleted since. Hashed with foldhash (seeded
/// per process, as the row cache's keys are): every key of every commit is
/// hashed here, and the standard library's SipHash cost a replay 1.4–1.7% of
/// its worker's time.
type Known = Mutex<HashSet<Vec<u8>, foldhash::fast::RandomState>>;

/// The file of `partition`'s shard in the directory of a view kept per partition.
fn shard_file(partition: u32) -> String {
    format!("partition-{partition}.redb")
}

/// The partition whose shard `name` is, if it is a shard's file name.
fn shard_of(name: &str) -> Option<u32> {
    let partition = name
        .strip_prefix("partition-")?
        .strip_suffix(".redb")?
        .parse()
        .ok()?;
    // `partition-01.redb` is not partition 1's file: it would be opened twice.
    (shard_file(partition) == name).then_some(partition)
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Db {
        path: path.to_owned(),
        source: Box::new(e.into()),
    }
}

impl Shards {
    /// Opens the view of a version. Shared: `path` is the view file (exactly
    /// the file of a [`View`], so existing data directories keep working).
    /// Per partition: `path` is a directory holding one view file per
    /// partition (`partition-<N>.redb`), created if needed; the shards found
    /// there are opened.
    pub fn open(path: &Path, layout: Layout, options: ViewOptions) -> Result<Self, StoreError> {
        let mut shards = BTreeMap::new();
        let shared = match layout {
            Layout::Shared => Some(Arc::new(View::open_with(path, options.clone())?)),
            Layout::PerPartition => {
                if !path.is_dir() {
                    std::fs::create_dir_all(path).map_err(|e| io_error(path, e))?;
                    // The directory's entry durable, as a view file's is.
                    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                        std::fs::File::open(parent)
                            .and_then(|dir| dir.sync_all())
                            .map_err(|e| io_error(parent, e))?;
                    }
                }
                for entry in std::fs::read_dir(path).map_err(|e| io_error(path, e))? {
                    let entry = entry.map_err(|e| io_error(path, e))?;
                    let partition = entry.file_name().to_str().and_then(shard_of);
                    if let Some(partition) = partition {
                        let view = View::open_with(&entry.path(), options.clone())?;
                        shards.insert(partition, Arc::new(view));
                    }
                }
                None
            }
        };
        Ok(Shards {
            path: path.to_owned(),
            layout,
            options,
            shared,
            shards: RwLock::new(shards),
            known: RwLock::new(BTreeMap::new()),
        })
    }

    /// How the view is laid out.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The view file (shared) or the directory of the shards (per partition).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store a batch of `partition` reads (through its snapshot) and
    /// writes: the one view when shared; that partition's shard when per
    /// partition, created on first use, since a Kafka topic can gain
    /// partitions while a version runs.
    pub fn shard(&self, partition: u32) -> Result<Arc<View>, StoreError> {
        if let Some(shared) = &self.shared {
            return Ok(Arc::clone(shared));
        }
        if let Some(shard) = self.shards.read().get(&partition) {
            return Ok(Arc::clone(shard));
        }
        let mut shards = self.shards.write();
        // Another thread may have created it since the read.
        if let Some(shard) = shards.get(&partition) {
            return Ok(Arc::clone(shard));
        }
        let file = self.path.join(shard_file(partition));
        let shard = Arc::new(View::open_with(&file, self.options.clone())?);
        shards.insert(partition, Arc::clone(&shard));
        Ok(shard)
    }

    /// The shards that exist, in partition order (the shared view as
    /// partition 0 when shared).
    fn all(&self) -> Vec<(u32, Arc<View>)> {
        match &self.shared {
            Some(shared) => vec![(0, Arc::clone(shared))],
            None => self
                .shards
                .read()
                .iter()
                .map(|(p, v)| (*p, Arc::clone(v)))
                .collect(),
        }
    }

    /// Commits a processed batch of `partition`: its row writes and the
    /// partition's next offset, atomically, exactly as [`View::commit`], to
    /// [`Shards::shard`]`(partition)`.
    ///
    /// Per partition, a key belongs to one partition: a put of a key that
    /// another partition's shard holds is refused with
    /// [`StoreError::Conflict`]. The check takes no lock over the shards: the
    /// keys new to the shard are looked up in every other shard after the
    /// commit (one read per shard, for all the keys), so of two partitions
    /// adding one key at once at least one sees the other's row. A refused
    /// batch is then undone in the shard (its keys' values and the
    /// partition's offset as before, an offset the shard lacked as 0), so a
    /// version that retries it meets the same refusal. Readers may have seen
    /// it meanwhile, and a crash before the undo keeps it; merged reads
    /// report such a key, so a duplicate is never read as one row.
    pub fn commit(
        &self,
        partition: u32,
        next_offset: u64,
        writes: &Writes,
        force_durable: bool,
    ) -> Result<(), StoreError> {
        let shard = self.shard(partition)?;
        if self.shared.is_some() || !writes.values().any(Option::is_some) {
            shard.commit(partition, next_offset, writes, force_durable)?;
            if self.shared.is_none() {
                self.remember(partition, writes);
            }
            return Ok(());
        }
        let unknown: Vec<&[u8]> = {
            let known = self.known(partition);
            let known = known.lock();
            writes
                .iter()
                .filter(|(key, value)| value.is_some() && !known.contains(*key))
                .map(|(key, _)| key.as_slice())
                .collect()
        };
        let found = shard.get_many(&unknown)?;
        let added: Vec<&[u8]> = unknown
            .iter()
            .zip(&found)
            .filter(|(_, old)| old.is_none())
            .map(|(key, _)| *key)
            .collect();
        if added.is_empty() {
            shard.commit(partition, next_offset, writes, force_durable)?;
            self.remember(partition, writes);
            return Ok(());
        }
        // The batch adds keys, so it may be refused: what it overwrites, to
        // undo it then. Read now, as values: only this partition's batches
        // write this shard, so they hold until the commit below. A snapshot
        // kept across the commit would make the commit copy the shard's
        // whole write buffer (`View::commit` writes into a buffer no reader
        // shares), which cost more than the batch at millions of rows.
        let undo = overwritten(&shard, partition, writes, &unknown, found)?;
        shard.commit(partition, next_offset, writes, force_durable)?;
        if let Some(conflict) = self.held_elsewhere(partition, &added)? {
            let (undo, offset_before) = undo;
            shard.commit(partition, offset_before, &undo, force_durable)?;
            return Err(conflict);
        }
        self.remember(partition, writes);
        Ok(())
    }

    /// The keys `partition`'s shard is known to hold.
    fn known(&self, partition: u32) -> Arc<Known> {
        if let Some(known) = self.known.read().get(&partition) {
            return Arc::clone(known);
        }
        Arc::clone(self.known.write().entry(partition).or_default())
    }

    /// Notes what a commit of `partition` that succeeded leaves its shard
    /// holding: the keys it wrote, less those it deleted.
    fn remember(&self, partition: u32, writes: &Writes) {
        let known = self.known(partition);
        let mut known = known.lock();
        for (key, value) in writes {
            if value.is_some() {
                if !known.contains(key) {
                    known.insert(key.clone());
                }
            } else {
                known.remove(key);
            }
        }
        if known.len() > KNOWN_KEYS {
            known.clear();
        }
    }

    /// The first of `keys` (new to `partition`'s shard) that another shard
    /// holds, as the conflict to report.
    fn held_elsewhere(
        &self,
        partition: u32,
        keys: &[&[u8]],
    ) -> Result<Option<StoreError>, StoreError> {
        // Listed after the commit: a shard missing from the list is created
        // after it, and its own commits' check will look here.
        for (holder, other) in self.all() {
            if holder == partition {
                continue;
            }
            let found = other.get_many(keys)?;
            if let Some(i) = found.iter().position(Option::is_some) {
                return Ok(Some(StoreError::Conflict {
                    key: keys[i].to_vec(),
                    holder,
                    writer: partition,
                }));
            }
        }
        Ok(None)
    }

    /// A read of the whole view: the view's snapshot when shared; one
    /// snapshot per shard, merged, when per partition.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        if let Some(shared) = &self.shared {
            return shared.snapshot();
        }
        let mut parts = Vec::new();
        for (partition, shard) in self.all() {
            parts.push((partition, shard.snapshot()?));
        }
        Ok(Snapshot::merge(parts))
    }

    /// The latest value of `key`. `hint` names the shard most likely to hold
    /// it (the partition the log's partitioner gives the key): it is read
    /// first, and the others only if it does not hold the key.
    pub fn get(&self, key: &[u8], hint: Option<u32>) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(shared) = &self.shared {
            return shared.get(key);
        }
        let hinted = hint.and_then(|p| self.shards.read().get(&p).cloned());
        if let Some(shard) = hinted
            && let Some(value) = shard.get(key)?
        {
            return Ok(Some(value));
        }
        for (partition, shard) in self.all() {
            if Some(partition) == hint {
                continue;
            }
            if let Some(value) = shard.get(key)? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// Next offset to apply, per partition (the union over the shards).
    pub fn offsets(&self) -> Result<BTreeMap<u32, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for (_, shard) in self.all() {
            out.extend(shard.offsets()?);
        }
        Ok(out)
    }

    /// Makes every commit so far durable, in every shard.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.each(View::sync)
    }

    /// Makes the commits so far durable in every shard that has some not yet
    /// durable.
    pub fn sync_if_dirty(&self) -> Result<(), StoreError> {
        self.each(View::sync_if_dirty)
    }

    /// Runs `f` on every shard, all of them even if one fails; the first
    /// error is returned.
    fn each(&self, f: impl Fn(&View) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut first = Ok(());
        for (_, shard) in self.all() {
            let result = f(&shard);
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

/// What a commit of `writes` to `partition`'s `shard` overwrites: each
/// key's value before it (`found` for the keys of `unknown`, read already)
/// and the partition's next offset (0 when the shard has none), which
/// committed back undo the batch.
fn overwritten(
    shard: &View,
    partition: u32,
    writes: &Writes,
    unknown: &[&[u8]],
    found: Vec<Option<Vec<u8>>>,
) -> Result<(Writes, u64), StoreError> {
    let mut undo: Writes = unknown.iter().map(|key| key.to_vec()).zip(found).collect();
    let rest: Vec<&[u8]> = writes
        .keys()
        .filter(|key| !undo.contains_key(*key))
        .map(Vec::as_slice)
        .collect();
    for (key, old) in rest.iter().zip(shard.get_many(&rest)?) {
        undo.insert(key.to_vec(), old);
    }
    let offset = shard.offsets()?.get(&partition).copied().unwrap_or(0);
    Ok((undo, offset))
}

#[cfg(test)]
#[path = "shards_tests.rs"]
mod tests;
