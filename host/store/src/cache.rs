//! The row cache: the latest committed value of a view's rows, in a hash
//! table bounded in bytes, in front of the write buffer and the file.
//!
//! At many keys a point read was the largest cost of a replay: a key rarely
//! in the write buffer costs a search of the buffer's B-tree map and then of
//! the file's B-tree, a binary search per level over cold memory each
//! (BENCHMARKS.md, "The view store at many keys"). A hash table finds a row
//! in a few memory accesses.
//!
//! Every commit puts the rows it writes (*write-through*), from the first
//! commit on, so the writer's reads never search the write buffer: its
//! sorted runs (`runs.rs`) are for a query's snapshot of an earlier commit
//! and for rows the cache does not hold. A commit also updates every row
//! the cache holds, so the cache never answers with an old value.
//!
//! What the cache holds is always the view as of one commit, its
//! *generation* (the view's count of commits), moved on by each commit once
//! it is in the buffer (after the buffer's lock, so that readers do not
//! wait for the cache's update). A read uses the cache only if it is of the
//! reader's commit: the writer's own snapshot always is; a query's snapshot
//! taken before a later commit is not, and reads the buffer and the file. So
//! a snapshot never sees a row of a commit after it.
//!
//! A view that was empty when opened starts *complete*: every row of the
//! view is in the cache, so a key not found there is absent, known without
//! a read of the buffer or the file. That is the common case of a Kappa replay, a new version
//! filling a new view from the log. The first row evicted (the cache full)
//! makes it incomplete for the life of the view; a key then found nowhere
//! in memory is read from the file and cached (an absent key as absent).
//!
//! Eviction is quick_cache's (S3-FIFO, weighted by the memory of each row):
//! a well-kept library, and one whose policy keeps the hot keys of a skewed
//! mix while a scan of cold keys passes through.
//!
//! A complete cache has nothing to evict, so until its rows no longer fit
//! it keeps them in a table of its own instead ([`Whole`], `cache_whole.rs`):
//! the rows dense in one vector, found through 8-byte slots that hold a
//! row's index and part of its hash. A look-up reads a slot and then the
//! row, where quick_cache reads its control bytes, an index and then the
//! entry; a commit finds or places a row in one probe where quick_cache
//! makes two for a new key; and no eviction order is kept. A replay into a
//! new view, the common case of a Kappa deploy, runs in this table until
//! the view outgrows the bound (BENCHMARKS.md, section 8). When a row no
//! longer fits there, the rows move into quick_cache, once, and eviction
//! starts.

use parking_lot::Mutex;
use quick_cache::Lifecycle;

pub(crate) use crate::cache_row::ENTRY_BYTES;
use crate::cache_row::{RowKey, RowWeight, Value};
use crate::cache_whole::Whole;

/// Look-ups of an incomplete cache over which its hit ratio is measured.
const WINDOW: u32 = 1 << 16;

/// Reports whether an insert evicted a row (or was refused as too large).
#[derive(Clone, Copy)]
struct Evictions;

impl Lifecycle<RowKey, Value> for Evictions {
    type RequestState = bool;

    fn begin_request(&self) -> bool {
        false
    }

    fn on_evict(&self, evicted: &mut bool, _key: RowKey, _value: Value) {
        *evicted = true;
    }
}

type Table =
    quick_cache::unsync::Cache<RowKey, Value, RowWeight, foldhash::fast::RandomState, Evictions>;

/// The cached rows: every row of the view while they fit in a [`Whole`]
/// table, then the rows quick_cache keeps.
enum Rows {
    Whole(Whole),
    Bounded(Table),
}

/// An empty quick_cache of `bound` bytes, sized for `rows` rows at first.
fn bounded(bound: u64, rows: usize) -> Table {
    let estimated_rows = usize::try_from(bound / ENTRY_BYTES).unwrap_or(usize::MAX);
    Table::with(
        estimated_rows.min(rows.max(1 << 16)),
        bound,
        RowWeight,
        foldhash::fast::RandomState::default(),
        Evictions,
    )
}

/// What the cache knows of a key, as of its generation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cached {
    /// The key's value (`None`: the key is absent from the view).
    Known(Option<Vec<u8>>),
    /// Not known: read the buffer, then the file.
    Unknown,
}

/// The cache of one view file.
pub(crate) struct RowCache {
    rows: Rows,
    /// Most bytes of rows held.
    bound: u64,
    /// The commit count the cached rows are as of.
    generation: u64,
    /// Whether every row of the view is in the cache.
    complete: bool,
    /// Whether rows not cached are taken in (by commits writing through and
    /// by reads of the file): always while complete; once incomplete, only
    /// while at least a quarter of the look-ups of the last window hit. A
    /// view many times larger than its cache, read uniformly, would
    /// otherwise pay an insert and an eviction per row written for a few
    /// hits (10 M keys: 0.84× the speed without the cache); rows cached stay
    /// and are kept up to date, so a skew that makes them hot again turns
    /// admission back on.
    admitting: bool,
    /// Look-ups and hits in the current window (counted while incomplete).
    window_lookups: u32,
    window_hits: u32,
}

impl std::fmt::Debug for RowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows = match &self.rows {
            Rows::Whole(whole) => whole.len(),
            Rows::Bounded(table) => table.len(),
        };
        f.debug_struct("RowCache")
            .field("rows", &rows)
            .field("bytes", &self.bytes())
            .field("generation", &self.generation)
            .field("complete", &self.complete)
            .finish()
    }
}

/// What `cache` knows of `key` for a reader of commit `generation`,
/// without waiting for a commit that is updating it (the cache is then of
/// that next commit, so the reader could not use it anyway).
pub(crate) fn lookup(cache: &Mutex<RowCache>, generation: u64, key: &[u8]) -> Cached {
    cache
        .try_lock()
        .map_or(Cached::Unknown, |mut cache| cache.get(generation, key))
}

/// Caches a row read from the file ([`RowCache::fill`]) unless a commit is
/// updating the cache.
pub(crate) fn try_fill(cache: &Mutex<RowCache>, generation: u64, key: &[u8], value: Option<&[u8]>) {
    if let Some(mut cache) = cache.try_lock() {
        cache.fill(generation, key, value);
    }
}

impl RowCache {
    /// A cache of at most `bytes`, as of commit `generation`, complete if
    /// the view holds no rows.
    pub(crate) fn new(bytes: usize, generation: u64, view_is_empty: bool) -> Self {
        let bound = bytes as u64;
        // Start small and grow: most views hold far fewer rows than fit.
        let rows = if view_is_empty {
            Rows::Whole(Whole::new())
        } else {
            Rows::Bounded(bounded(bound, 0))
        };
        RowCache {
            rows,
            bound,
            generation,
            complete: view_is_empty,
            admitting: true,
            window_lookups: 0,
            window_hits: 0,
        }
    }

    /// What the cache knows of `key` for a reader of commit `generation`.
    pub(crate) fn get(&mut self, generation: u64, key: &[u8]) -> Cached {
        if generation != self.generation {
            return Cached::Unknown;
        }
        let found = match &mut self.rows {
            Rows::Whole(whole) => whole.get(key),
            Rows::Bounded(table) => table.get(key),
        }
        .map(|value| value.as_bytes().map(<[u8]>::to_vec));
        if !self.complete {
            self.count(found.is_some());
        }
        match found {
            Some(value) => Cached::Known(value),
            None if self.complete => Cached::Known(None),
            None => Cached::Unknown,
        }
    }

    /// Counts a look-up of an incomplete cache; ends a window when full.
    fn count(&mut self, hit: bool) {
        self.window_lookups += 1;
        self.window_hits += u32::from(hit);
        if self.window_lookups == WINDOW {
            self.admitting = self.window_hits * 4 >= self.window_lookups;
            self.window_lookups = 0;
            self.window_hits = 0;
        }
    }

    /// Caches `value`, read from the file by a reader of commit
    /// `generation`, if that is still the cache's and it admits rows.
    pub(crate) fn fill(&mut self, generation: u64, key: &[u8], value: Option<&[u8]>) {
        if generation == self.generation && !self.complete && self.admitting {
            self.put(key, value);
        }
    }

    /// Applies commit number `generation`'s writes (`None` deletes) to the
    /// rows cached, and caches the others while the cache admits rows.
    pub(crate) fn commit<'a>(
        &mut self,
        generation: u64,
        writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) {
        for (key, value) in writes {
            self.update(key, value);
        }
        self.generation = generation;
    }

    /// Applies one write, to a row cached or, admitting, to any.
    fn update(&mut self, key: &[u8], value: Option<&[u8]>) {
        let table = match &mut self.rows {
            Rows::Whole(whole) => {
                let Some(value) = value else {
                    whole.remove(key);
                    return;
                };
                if let Err(value) = whole.put(key, value, self.bound) {
                    self.evict_from_now_on();
                    self.put(key, Some(value));
                }
                return;
            }
            Rows::Bounded(table) => table,
        };
        if let Some(mut cached) = table.get_mut(key) {
            match value {
                // Overwritten in place where it fits, else replaced in its
                // entry; either way the entry is weighed again when the
                // guard drops. An insert over the key would report the old
                // value to `Evictions` as evicted, and so make a complete
                // cache incomplete for no row lost.
                Some(new) => {
                    if !cached.overwrite(new) {
                        *cached = Value::new(Some(new));
                    }
                }
                None => {
                    drop(cached);
                    self.delete(key);
                }
            }
            return;
        }
        if !self.admitting {
            return;
        }
        match value {
            None => self.delete(key),
            Some(_) => self.put(key, value),
        }
    }

    /// Caches `key` as absent; complete, an absent key needs no row.
    fn delete(&mut self, key: &[u8]) {
        let table = match &mut self.rows {
            Rows::Whole(whole) => {
                whole.remove(key);
                return;
            }
            Rows::Bounded(table) => table,
        };
        if self.complete {
            table.remove(key);
        } else if let Some(mut cached) = table.get_mut(key) {
            *cached = Value::Absent;
        } else {
            self.put(key, None);
        }
    }

    /// Moves the rows of a [`Whole`] table into quick_cache, which evicts
    /// from then on: a row no longer fitted in the bound there. Once in the
    /// life of a cache; the rows are in both for the moment of the move.
    fn evict_from_now_on(&mut self) {
        let Rows::Whole(whole) = &mut self.rows else {
            return;
        };
        let mut table = bounded(self.bound, whole.len());
        let mut evicted = false;
        for row in whole.drain() {
            evicted |= table.insert_with_lifecycle(row.key, row.value);
        }
        self.rows = Rows::Bounded(table);
        if evicted {
            self.complete = false;
        }
    }

    #[cfg(test)]
    /// Forgets everything, as after a crash: the cache is then of commit
    /// `generation` and incomplete.
    pub(crate) fn forget(&mut self, generation: u64) {
        self.rows = Rows::Bounded(bounded(self.bound, 0));
        self.generation = generation;
        self.complete = false;
    }

    /// Caches a row in quick_cache (a [`Whole`] table takes its rows in
    /// [`RowCache::update`]).
    fn put(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Rows::Bounded(table) = &mut self.rows else {
            return;
        };
        let evicted = table.insert_with_lifecycle(RowKey::new(key), Value::new(value));
        if evicted {
            self.complete = false;
        }
    }

    /// Whether every row of the view is in the buffer or the cache.
    #[cfg(test)]
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether the rows are in a [`Whole`] table, not yet in quick_cache.
    #[cfg(test)]
    pub(crate) fn holds_every_row_in_one_table(&self) -> bool {
        matches!(self.rows, Rows::Whole(_))
    }

    /// Whether rows not cached are taken in.
    #[cfg(test)]
    pub(crate) fn is_admitting(&self) -> bool {
        self.admitting
    }

    /// Bytes of rows cached, as weighed.
    pub(crate) fn bytes(&self) -> u64 {
        match &self.rows {
            Rows::Whole(whole) => whole.bytes(),
            Rows::Bounded(table) => table.weight(),
        }
    }
}
