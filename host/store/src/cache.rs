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

use parking_lot::Mutex;
use quick_cache::{Lifecycle, Weighter};

/// Look-ups of an incomplete cache over which its hit ratio is measured.
const WINDOW: u32 = 1 << 16;

/// Bytes counted per cached row for its entry: the table's slot and the
/// entry itself, which holds a key of up to [`INLINE_KEY`] bytes and a
/// value of up to [`INLINE_VALUE`] bytes whatever their lengths, with room
/// for the table's growth (`-- row-cache-memory` of the store's benchmark:
/// 96.7 bytes a row resident at 1M rows held in their entries).
pub(crate) const ENTRY_BYTES: u64 = 104;

/// Bytes counted for a key or a value too long for the entry, in an
/// allocation of its own: its bytes, plus an eighth and 24 bytes for the
/// allocator's size classes and bookkeeping (mimalloc's classes are an
/// eighth apart; glibc's chunks add 8 bytes and round to 16).
fn allocation_bytes(len: usize) -> u64 {
    (len + len / 8 + 24) as u64
}

/// `bytes` with their length, in an array of `N` bytes for an entry, if
/// they fit.
fn inline<const N: usize>(bytes: &[u8]) -> Option<(u8, [u8; N])> {
    let len = u8::try_from(bytes.len())
        .ok()
        .filter(|_| bytes.len() <= N)?;
    let mut array = [0; N];
    array[..bytes.len()].copy_from_slice(bytes);
    Some((len, array))
}

/// Values up to this many bytes are held in the table's entry itself: a
/// short key and such a value fill one 64-byte cache line between them.
const INLINE_VALUE: usize = 38;

/// A cached row's value, or the knowledge that its key is absent. A short
/// value (a counter, a small JSON record) is in the entry, so that a read
/// which found the entry copies the value without a further access to cold
/// memory and a new row costs no allocation; a longer one has an allocation
/// of its own.
#[derive(Clone)]
enum Value {
    Absent,
    Inline(u8, [u8; INLINE_VALUE]),
    Heap(Box<[u8]>),
}

impl Value {
    fn new(value: Option<&[u8]>) -> Self {
        let Some(value) = value else {
            return Value::Absent;
        };
        match inline(value) {
            Some((len, bytes)) => Value::Inline(len, bytes),
            None => Value::Heap(Box::from(value)),
        }
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Absent => None,
            Value::Inline(len, bytes) => Some(&bytes[..usize::from(*len)]),
            Value::Heap(bytes) => Some(bytes),
        }
    }

    /// Overwrites the value in place when it has room for `new`'s bytes
    /// (an inline value of any length up to the limit, a heap value of the
    /// same length, as a counter's often is): no allocation, and the same
    /// weight. Reports whether it did.
    fn overwrite(&mut self, new: &[u8]) -> bool {
        match self {
            Value::Inline(len, bytes) => match inline(new) {
                Some(fits) => {
                    (*len, *bytes) = fits;
                    true
                }
                None => false,
            },
            Value::Heap(old) if old.len() == new.len() => {
                old.copy_from_slice(new);
                true
            }
            _ => false,
        }
    }
}

/// Keys up to this many bytes are held in the table's entry itself.
const INLINE_KEY: usize = 22;

/// A cached row's key: in the entry when short (most keys are), so that a
/// look-up which finds the entry compares the key without a second access
/// to cold memory (at 1M keys that access was a fifth of the cache's cost
/// in `-- fresh-replay`), and in an allocation of its own when longer.
#[derive(Clone)]
enum RowKey {
    Inline(u8, [u8; INLINE_KEY]),
    Heap(Box<[u8]>),
}

impl RowKey {
    fn new(key: &[u8]) -> Self {
        match inline(key) {
            Some((len, bytes)) => RowKey::Inline(len, bytes),
            None => RowKey::Heap(Box::from(key)),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            RowKey::Inline(len, bytes) => &bytes[..usize::from(*len)],
            RowKey::Heap(bytes) => bytes,
        }
    }
}

// Hashed and compared as the bytes it holds, so that a look-up by `&[u8]`
// finds it (`Borrow` promises that both hash alike).
impl std::hash::Hash for RowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for RowKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for RowKey {}

impl std::borrow::Borrow<[u8]> for RowKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Weighs a row by the memory it takes: its entry, and the allocations of
/// a key or value too long to be held in it.
#[derive(Clone, Copy)]
struct RowWeight;

impl Weighter<RowKey, Value> for RowWeight {
    fn weight(&self, key: &RowKey, value: &Value) -> u64 {
        let key = match key {
            RowKey::Inline(..) => 0,
            RowKey::Heap(bytes) => allocation_bytes(bytes.len()),
        };
        let value = match value {
            Value::Absent | Value::Inline(..) => 0,
            Value::Heap(bytes) => allocation_bytes(bytes.len()),
        };
        ENTRY_BYTES + key + value
    }
}

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
    table: Table,
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
        f.debug_struct("RowCache")
            .field("rows", &self.table.len())
            .field("bytes", &self.table.weight())
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
        let bytes = bytes as u64;
        let estimated_rows = usize::try_from(bytes / ENTRY_BYTES).unwrap_or(usize::MAX);
        // Start small and grow: most views hold far fewer rows than fit.
        let table = Table::with(
            estimated_rows.min(1 << 16),
            bytes,
            RowWeight,
            foldhash::fast::RandomState::default(),
            Evictions,
        );
        RowCache {
            table,
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
        let found = self
            .table
            .get(key)
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
        if let Some(mut cached) = self.table.get_mut(key) {
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
        if self.complete {
            self.table.remove(key);
        } else if let Some(mut cached) = self.table.get_mut(key) {
            *cached = Value::Absent;
        } else {
            self.put(key, None);
        }
    }

    #[cfg(test)]
    /// Forgets everything, as after a crash: the cache is then of commit
    /// `generation` and incomplete.
    pub(crate) fn forget(&mut self, generation: u64) {
        self.table.clear();
        self.generation = generation;
        self.complete = false;
    }

    fn put(&mut self, key: &[u8], value: Option<&[u8]>) {
        let evicted = self
            .table
            .insert_with_lifecycle(RowKey::new(key), Value::new(value));
        if evicted {
            self.complete = false;
        }
    }

    /// Whether every row of the view is in the buffer or the cache.
    #[cfg(test)]
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether rows not cached are taken in.
    #[cfg(test)]
    pub(crate) fn is_admitting(&self) -> bool {
        self.admitting
    }

    /// Bytes of rows cached, as weighed.
    pub(crate) fn bytes(&self) -> u64 {
        self.table.weight()
    }
}
