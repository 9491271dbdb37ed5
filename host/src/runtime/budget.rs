//! The host memory one plugin instance makes the host hold, counted against
//! its version's memory limit (`--memory-limit-mb`).
//!
//! Two things grow with what a plugin does: its own linear memories and
//! tables (allocated by wasmtime, seen here through [`ResourceLimiter`]), and
//! the view writes of the batch in progress, which the host buffers until the
//! batch commits ([`PendingWrites`]). Both count against one budget, the
//! version's memory limit: a plugin that makes millions of tiny writes fails
//! exactly as one that allocates without bound, instead of taking host memory
//! that no limit covers.
//!
//! Pending writes are counted at their cost in the host's memory: key and
//! value bytes plus [`ENTRY_OVERHEAD`] per distinct key. Overwriting a key
//! replaces its value's bytes (the entry is counted once); a delete is an
//! entry without a value.
//!
//! The rows a range read (contract 0.3.0-rc.1) returns are held by the host
//! until they are copied into the guest: each costs its key and value bytes
//! plus [`ROW_OVERHEAD`], and one read may take what the memories, tables
//! and pending writes leave of the limit ([`InstanceMemory::allowed_for_reads`]).
//! Once copied, they count as the guest's linear memory.
//!
//! Under contract 0.3.0 the host may take back the writes of one call into
//! a batch (to cut the batch where a timer fires): a journal keeps the value
//! each key had before the call's first write of it
//! ([`PendingWrites::begin_journal`]), so it holds at most one old value per
//! pending key, and at most what the pending writes themselves cost.

use std::collections::HashMap;
use std::collections::btree_map::Entry;
use std::ops::Bound;

use wasmtime::ResourceLimiter;

use super::call::{FailureKind, HostTrap};
use crate::store::Writes;

/// Host bytes one pending write takes beyond its key and value bytes: the
/// slot of a `BTreeMap<Vec<u8>, Option<Vec<u8>>>` entry (two 24-byte
/// vectors) in a leaf node of 11 slots, 544 bytes that the allocator rounds
/// to 640, at the worst fill a tree reaches by inserts alone (5 of 11 slots:
/// 128 bytes a slot), its share of the internal nodes above (about 25 bytes),
/// and the allocator's rounding of a small key (up to 7 bytes). A sequential
/// or random fill takes less: one batch of 1 and 5 million distinct
/// 4-byte keys with empty values raised the host's peak resident memory by
/// 117 and 132 bytes a write, its commit included.
pub const ENTRY_OVERHEAD: usize = 160;

/// Host bytes one row returned by a range read takes beyond its key and
/// value bytes while the host holds it: the `row` record's two vectors.
pub const ROW_OVERHEAD: usize = 2 * size_of::<Vec<u8>>();

/// Bytes one table element takes in the host (a pointer, per wasmtime).
const TABLE_ELEMENT_BYTES: usize = size_of::<usize>();

/// The view writes of one batch, not yet committed, with what they cost.
#[derive(Debug, Default)]
pub struct PendingWrites {
    writes: Writes,
    /// Key and value bytes, for the per-batch write cap.
    data_bytes: usize,
    /// Host bytes: data plus [`ENTRY_OVERHEAD`] per entry.
    cost: usize,
    /// While a journal is kept: each key written since it began, with its
    /// pending state then (`None`: not written by the batch).
    journal: Option<Journal>,
}

/// The pending state of each key written since a journal began (`None`: not
/// written by the batch then).
type Journal = HashMap<Vec<u8>, Option<Option<Vec<u8>>>>;

/// A write refused because the pending writes would cost more than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// What the pending writes would cost with this write, in bytes.
    pub cost: usize,
    /// Distinct keys pending before this write.
    pub entries: usize,
}

impl PendingWrites {
    /// No writes.
    pub fn new() -> Self {
        PendingWrites::default()
    }

    /// What an entry for `key` with `value` costs in host memory.
    pub fn entry_cost(key: &[u8], value: Option<&[u8]>) -> usize {
        ENTRY_OVERHEAD + key.len() + value.map_or(0, <[u8]>::len)
    }

    /// Host bytes the pending writes take.
    pub fn cost(&self) -> usize {
        self.cost
    }

    /// Key and value bytes of the pending writes.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    /// Distinct keys written.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The pending value of `key`: `Some(None)` when it was deleted, `None`
    /// when the batch has not written it.
    pub fn get(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.writes.get(key)
    }

    /// The pending writes of the keys at or after `start` and before `end`
    /// (no upper bound when `None`), in key order.
    pub fn range<'a>(
        &'a self,
        start: &'a [u8],
        end: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + 'a {
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        // An empty range (end at or before start) would make BTreeMap panic.
        let empty = end.is_some_and(|end| end <= start);
        let range = (!empty).then(|| {
            self.writes
                .range::<[u8], _>((Bound::Included(start), upper))
        });
        range.into_iter().flatten()
    }

    /// Records `value` (`None`: a delete) under `key`, unless the pending
    /// writes would then cost more than `allowed` bytes; a refused write
    /// changes nothing.
    pub fn set(
        &mut self,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        allowed: usize,
    ) -> Result<(), OverBudget> {
        let value_len = value.as_ref().map_or(0, Vec::len);
        let entries = self.writes.len();
        if let Some(journal) = &mut self.journal
            && !journal.contains_key(&key)
        {
            journal.insert(key.clone(), self.writes.get(&key).cloned());
        }
        match self.writes.entry(key) {
            Entry::Occupied(mut slot) => {
                let old_len = slot.get().as_ref().map_or(0, Vec::len);
                let cost = self.cost - old_len + value_len;
                if cost > allowed {
                    return Err(OverBudget { cost, entries });
                }
                self.cost = cost;
                self.data_bytes = self.data_bytes - old_len + value_len;
                slot.insert(value);
            }
            Entry::Vacant(slot) => {
                let added = ENTRY_OVERHEAD + slot.key().len() + value_len;
                let cost = self.cost + added;
                if cost > allowed {
                    return Err(OverBudget { cost, entries });
                }
                self.cost = cost;
                self.data_bytes += slot.key().len() + value_len;
                slot.insert(value);
            }
        }
        Ok(())
    }

    /// The writes, for the commit.
    pub fn into_writes(self) -> Writes {
        self.writes
    }

    /// Starts keeping what [`rollback`](Self::rollback) needs to take back
    /// the writes from now on (a journal kept already is dropped).
    pub fn begin_journal(&mut self) {
        self.journal = Some(HashMap::new());
    }

    /// Stops keeping the journal: the writes since it began stay.
    pub fn end_journal(&mut self) {
        self.journal = None;
    }

    /// Takes back every write since [`begin_journal`](Self::begin_journal),
    /// costs included, and stops keeping the journal.
    pub fn rollback(&mut self) {
        for (key, before) in self.journal.take().unwrap_or_default() {
            // A refused write is in the journal too, and changed nothing.
            if let Some(now) = self.writes.remove(&key) {
                let len = key.len() + now.map_or(0, |v| v.len());
                self.data_bytes -= len;
                self.cost -= ENTRY_OVERHEAD + len;
            }
            if let Some(value) = before {
                let len = key.len() + value.as_ref().map_or(0, Vec::len);
                self.data_bytes += len;
                self.cost += ENTRY_OVERHEAD + len;
                self.writes.insert(key, value);
            }
        }
    }
}

/// The memory a plugin instance holds outside its pending writes: every
/// linear memory and table it has, as wasmtime allocates them.
#[derive(Debug)]
pub struct InstanceMemory {
    /// The version's memory limit, bytes.
    pub limit: usize,
    /// Bytes of all linear memories of the instance.
    pub linear: usize,
    /// Bytes of all tables of the instance.
    pub tables: usize,
    /// Cost of the pending writes of the batch in progress, kept in step
    /// by the caller so that growing memory counts them too.
    pub pending: usize,
}

impl InstanceMemory {
    /// Nothing allocated yet, under `limit` bytes.
    pub fn new(limit: usize) -> Self {
        InstanceMemory {
            limit,
            linear: 0,
            tables: 0,
            pending: 0,
        }
    }

    /// What the rows of a range read may cost, given the memories, tables
    /// and pending writes.
    pub fn allowed_for_reads(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }

    /// What pending writes may cost, given the memories and tables.
    pub fn allowed_for_writes(&self) -> usize {
        self.limit.saturating_sub(self.linear + self.tables)
    }

    fn used(&self) -> usize {
        self.linear + self.tables + self.pending
    }
}

/// Mebibytes, for messages.
pub fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

impl ResourceLimiter for InstanceMemory {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let added = desired.saturating_sub(current);
        if self.used() + added > self.limit {
            return Err(HostTrap::new(
                FailureKind::MemoryLimit,
                format!(
                    "exceeded its memory limit of {} (raise it with --memory-limit-mb): growing \
                     linear memory by {} to {} in all, beside {} of pending view writes",
                    mib(self.limit),
                    mib(added),
                    mib(self.linear + added),
                    mib(self.pending)
                ),
            )
            .into());
        }
        // Counted once permitted: a growth the system then fails to make
        // (out of address space) stays counted, which errs on the safe side.
        self.linear += added;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let added = desired
            .saturating_sub(current)
            .saturating_mul(TABLE_ELEMENT_BYTES);
        if self.used().saturating_add(added) > self.limit {
            return Err(HostTrap::new(
                FailureKind::MemoryLimit,
                format!(
                    "exceeded its memory limit of {} (raise it with --memory-limit-mb): growing \
                     a table by {}",
                    mib(self.limit),
                    mib(added)
                ),
            )
            .into());
        }
        self.tables += added;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    const E: usize = ENTRY_OVERHEAD;

    #[test]
    fn inserts_overwrites_and_deletes_are_counted_once_per_key() {
        let mut w = PendingWrites::new();
        w.set(b"key1".to_vec(), Some(b"abc".to_vec()), usize::MAX)
            .unwrap();
        assert_eq!((w.cost(), w.data_bytes(), w.len()), (E + 7, 7, 1));
        // Overwriting the same key replaces the value's bytes, not the entry.
        w.set(b"key1".to_vec(), Some(b"abcdef".to_vec()), usize::MAX)
            .unwrap();
        assert_eq!((w.cost(), w.data_bytes(), w.len()), (E + 10, 10, 1));
        w.set(b"key1".to_vec(), Some(Vec::new()), usize::MAX)
            .unwrap();
        assert_eq!((w.cost(), w.data_bytes()), (E + 4, 4));
        // A delete is an entry without a value: of a written key, it frees
        // the value; of a new key, it costs an entry.
        w.set(b"key1".to_vec(), Some(b"xyz".to_vec()), usize::MAX)
            .unwrap();
        w.set(b"key1".to_vec(), None, usize::MAX).unwrap();
        assert_eq!((w.cost(), w.len()), (E + 4, 1));
        assert_eq!(w.get(b"key1"), Some(&None));
        w.set(b"k2".to_vec(), None, usize::MAX).unwrap();
        assert_eq!((w.cost(), w.data_bytes(), w.len()), (2 * E + 6, 6, 2));
        assert_eq!(w.get(b"k3"), None);
        let writes = w.into_writes();
        assert_eq!(writes.len(), 2);
    }

    #[test]
    fn a_write_over_the_allowance_is_refused_and_changes_nothing() {
        let mut w = PendingWrites::new();
        let allowed = 3 * E + 12;
        for key in [b"aaaa", b"bbbb", b"cccc"] {
            w.set(key.to_vec(), Some(Vec::new()), allowed).unwrap();
        }
        assert_eq!(w.cost(), allowed);
        let refused = w.set(b"dddd".to_vec(), Some(Vec::new()), allowed);
        assert_eq!(
            refused,
            Err(OverBudget {
                cost: 4 * E + 16,
                entries: 3
            })
        );
        assert_eq!((w.cost(), w.len()), (allowed, 3));
        assert_eq!(w.get(b"dddd"), None);
        // Growing an existing value past it is refused too, and keeps the
        // old value; shrinking one is always allowed.
        assert!(w.set(b"aaaa".to_vec(), Some(vec![1]), allowed).is_err());
        assert_eq!(w.get(b"aaaa"), Some(&Some(Vec::new())));
        w.set(b"aaaa".to_vec(), None, allowed).unwrap();
        assert_eq!(w.cost(), allowed);
        assert_eq!(
            PendingWrites::entry_cost(b"aaaa", Some(b"v")),
            ENTRY_OVERHEAD + 5
        );
    }

    #[test]
    fn a_rollback_takes_back_the_writes_since_the_journal_began() {
        let mut w = PendingWrites::new();
        w.set(b"kept".to_vec(), Some(b"1".to_vec()), usize::MAX)
            .unwrap();
        w.set(b"changed".to_vec(), Some(b"22".to_vec()), usize::MAX)
            .unwrap();
        w.set(b"gone".to_vec(), None, usize::MAX).unwrap();
        let before = (w.cost(), w.data_bytes(), w.writes.clone());
        w.begin_journal();
        w.set(b"changed".to_vec(), Some(b"333".to_vec()), usize::MAX)
            .unwrap();
        w.set(b"changed".to_vec(), None, usize::MAX).unwrap();
        w.set(b"gone".to_vec(), Some(b"back".to_vec()), usize::MAX)
            .unwrap();
        w.set(b"new".to_vec(), Some(b"4444".to_vec()), usize::MAX)
            .unwrap();
        w.rollback();
        assert_eq!((w.cost(), w.data_bytes(), w.writes.clone()), before);
        // The journal ended with the rollback: later writes stay.
        w.set(b"new".to_vec(), Some(b"5".to_vec()), usize::MAX)
            .unwrap();
        w.rollback();
        assert_eq!(w.get(b"new"), Some(&Some(b"5".to_vec())));
        // Ended without a rollback, the writes stay too.
        w.begin_journal();
        w.set(b"kept".to_vec(), None, usize::MAX).unwrap();
        w.end_journal();
        w.rollback();
        assert_eq!(w.get(b"kept"), Some(&None));
    }

    #[test]
    fn a_range_of_pending_writes_is_half_open_and_may_be_empty() {
        let mut w = PendingWrites::new();
        for key in [&b"a"[..], b"b", b"b\0", b"c"] {
            w.set(key.to_vec(), Some(key.to_vec()), usize::MAX).unwrap();
        }
        w.set(b"bb".to_vec(), None, usize::MAX).unwrap();
        let keys = |start: &[u8], end: Option<&[u8]>| -> Vec<Vec<u8>> {
            w.range(start, end).map(|(k, _)| k.clone()).collect()
        };
        assert_eq!(keys(b"b", Some(b"c")), [&b"b"[..], b"b\0", b"bb"]);
        assert_eq!(keys(b"", None).len(), 5);
        assert_eq!(keys(b"b\x01", None), [&b"bb"[..], b"c"]);
        assert!(keys(b"c", Some(b"c")).is_empty());
        assert!(keys(b"c", Some(b"a")).is_empty());
    }

    #[test]
    fn reads_may_take_what_memories_tables_and_writes_leave() {
        let mut m = InstanceMemory::new(100);
        m.linear = 30;
        m.tables = 10;
        m.pending = 20;
        assert_eq!(m.allowed_for_reads(), 40);
        m.pending = 90;
        assert_eq!(m.allowed_for_reads(), 0);
    }

    #[test]
    fn memories_tables_and_pending_writes_share_the_limit() {
        let mib = 1 << 20;
        let mut m = InstanceMemory::new(10 * mib);
        assert!(m.memory_growing(0, 4 * mib, None).unwrap());
        assert!(m.table_growing(0, 1000, None).unwrap());
        assert_eq!(m.tables, 1000 * TABLE_ELEMENT_BYTES);
        assert_eq!(m.allowed_for_writes(), 6 * mib - m.tables);
        m.pending = 5 * mib;
        let err = m.memory_growing(4 * mib, 6 * mib, None).unwrap_err();
        assert!(err.to_string().contains("--memory-limit-mb"), "{err}");
        assert_eq!(m.linear, 4 * mib);
        m.pending = 0;
        // Growth past the memory's own maximum is refused, not counted.
        assert!(!m.memory_growing(4 * mib, 6 * mib, Some(5 * mib)).unwrap());
        assert_eq!(m.linear, 4 * mib);
        assert!(m.memory_growing(4 * mib, 6 * mib, None).unwrap());
        assert_eq!(m.allowed_for_writes(), 4 * mib - m.tables);
    }
}
