//! The write buffer's commits as sorted runs: each commit's rows become one
//! run, its keys and values in key order in one allocation, and runs of
//! similar size are merged.
//!
//! The buffer was one B-tree map into which every commit inserted its rows.
//! At many keys that insert is a walk from the root to a leaf per row, with
//! a comparison of keys at each level, each key behind a pointer in cold
//! memory: at 1M keys, 1.0 of the 1.4 microseconds a replay into a fresh
//! view spent per event in its commits (`-- fresh-replay` of the store's
//! benchmark, BENCHMARKS.md "The view store at many keys"). A batch's
//! writes arrive sorted, so a run is made without a comparison, and merging
//! two sorted runs costs one comparison and one copy of its bytes per row,
//! in order.
//! Merging the newest run into the one before it whenever it holds at least
//! a quarter as many rows keeps the runs few (about log4 of the buffer's
//! rows over a batch's) and makes each row take part in about as many
//! merges.
//!
//! The writer's reads are answered by the row cache; the runs are searched
//! (newest first, a binary search each) only by a query's snapshot of an
//! earlier commit and for a key the row cache does not hold. A run is
//! immutable and shared with the snapshots taken while it is buffered, so a
//! snapshot costs a reference per run and a commit never copies rows for a
//! snapshot's sake.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::Writes;

/// A buffered row as a run holds it: key and value (`None`: a deletion not
/// yet written to the file), borrowed from the run.
pub(crate) type RowRef<'a> = (&'a [u8], Option<&'a [u8]>);

/// Where a row of a run lies in the run's bytes: its key from `start`, then
/// its value; `value_len` is [`DELETED`] for a deletion.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: usize,
    key_len: usize,
    value_len: usize,
}

/// The `value_len` of a deletion.
const DELETED: usize = usize::MAX;

/// Bytes a row costs a run beside its key and value: its slot.
const SLOT_BYTES: usize = size_of::<Slot>();

/// One commit's rows, or several merged: sorted by key, each key once, the
/// keys and values back to back in one allocation and a slot per row.
///
/// Two vectors rather than a vector of rows each owning its key and value:
/// a row then costs its bytes and 24 more instead of two allocations and 48
/// more (so a buffer of the same bound holds about 1.7 times the rows of
/// `key-totals` at 1M keys, and spills to the file less often), and a
/// merge copies bytes instead of moving allocations that must later be
/// freed one by one.
#[derive(Debug, Default)]
pub(crate) struct Run {
    bytes: Vec<u8>,
    slots: Vec<Slot>,
}

impl Run {
    /// An empty run with room for `rows` rows of `bytes` bytes in all.
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        Run {
            bytes: Vec::with_capacity(bytes),
            slots: Vec::with_capacity(rows),
        }
    }

    /// Appends a row, whose key must sort after every key of the run.
    fn push(&mut self, (key, value): RowRef<'_>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        if let Some(value) = value {
            self.bytes.extend_from_slice(value);
        }
        self.slots.push(Slot {
            start,
            key_len: key.len(),
            value_len: value.map_or(DELETED, <[u8]>::len),
        });
    }

    fn from_writes(writes: &Writes) -> Self {
        let bytes = writes
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        let mut run = Run::with_capacity(writes.len(), bytes);
        for (key, value) in writes {
            run.push((key, value.as_deref()));
        }
        run
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The memory the run holds: its allocations, used or not.
    fn memory(&self) -> usize {
        self.bytes.capacity() + self.slots.capacity() * SLOT_BYTES
    }

    fn key_at(&self, slot: Slot) -> &[u8] {
        &self.bytes[slot.start..slot.start + slot.key_len]
    }

    /// The `i`th row in key order.
    pub(crate) fn row(&self, i: usize) -> Option<RowRef<'_>> {
        let slot = *self.slots.get(i)?;
        let value_at = slot.start + slot.key_len;
        let value =
            (slot.value_len != DELETED).then(|| &self.bytes[value_at..value_at + slot.value_len]);
        Some((self.key_at(slot), value))
    }

    /// The number of rows whose keys `is_before` holds for, given that it
    /// holds for a prefix of the run's keys (as [`slice::partition_point`]).
    pub(crate) fn partition_point(&self, mut is_before: impl FnMut(&[u8]) -> bool) -> usize {
        self.slots
            .partition_point(|&slot| is_before(self.key_at(slot)))
    }

    /// The buffered state of `key`, if the run holds it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        let i = self
            .slots
            .binary_search_by(|&slot| self.key_at(slot).cmp(key))
            .ok()?;
        self.row(i).map(|(_, value)| value)
    }

    /// Merges `older` and `newer`, whose value of a key in both wins.
    fn merge(older: &Run, newer: &Run) -> Run {
        let mut out = Run::with_capacity(
            older.len() + newer.len(),
            older.bytes.len() + newer.bytes.len(),
        );
        let (mut o, mut n) = (0, 0);
        loop {
            let next = match (older.row(o), newer.row(n)) {
                (Some(old), Some(new)) => match old.0.cmp(new.0) {
                    Ordering::Less => {
                        o += 1;
                        old
                    }
                    Ordering::Greater => {
                        n += 1;
                        new
                    }
                    Ordering::Equal => {
                        o += 1;
                        n += 1;
                        new
                    }
                },
                (Some(old), None) => {
                    o += 1;
                    old
                }
                (None, Some(new)) => {
                    n += 1;
                    new
                }
                (None, None) => break,
            };
            out.push(next);
        }
        out
    }
}

/// Sorted runs, oldest first: a key's buffered value is its newest run's.
#[derive(Debug, Default, Clone)]
pub(crate) struct Runs {
    runs: Vec<Arc<Run>>,
}

impl Runs {
    /// The memory the runs hold (a key in two runs counted twice, until
    /// they merge).
    pub(crate) fn bytes(&self) -> usize {
        self.runs.iter().map(|run| run.memory()).sum()
    }

    /// Adds the rows of a commit, newer than every run, then merges the
    /// newest run into the one before it while it holds at least a quarter
    /// as many rows.
    pub(crate) fn push(&mut self, writes: &Writes) {
        if writes.is_empty() {
            return;
        }
        self.runs.push(Arc::new(Run::from_writes(writes)));
        while let [.., older, newer] = self.runs.as_slice()
            && newer.len() * 4 >= older.len()
        {
            let (Some(newer), Some(older)) = (self.runs.pop(), self.runs.pop()) else {
                break;
            };
            // A run a snapshot shares is read, not changed: the snapshot
            // keeps its own reference until it is dropped.
            self.runs.push(Arc::new(Run::merge(&older, &newer)));
        }
    }

    /// Puts `older` under these runs (the rows of a write of the buffer that
    /// failed, older than every commit made since).
    pub(crate) fn put_under(&mut self, older: Runs) {
        let newer = std::mem::replace(&mut self.runs, older.runs);
        self.runs.extend(newer);
    }

    /// The buffered state of `key`: `Some(None)` for a deletion not yet in
    /// the file, `None` if no run holds the key.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.runs.iter().rev().find_map(|run| run.get(key))
    }

    /// The runs, newest first, each shared.
    pub(crate) fn layers(&self) -> impl Iterator<Item = Arc<Run>> + '_ {
        self.runs.iter().rev().map(Arc::clone)
    }

    /// Every buffered row once, in key order, with its newest value.
    pub(crate) fn merged(&self) -> Merged<'_> {
        Merged {
            heads: self.runs.iter().map(|run| (&**run, 0)).collect(),
        }
    }
}

/// The rows of all runs merged in key order, the newest run's winning a key
/// held by several.
pub(crate) struct Merged<'a> {
    /// Per run, oldest first: the run and the position of its next row.
    heads: Vec<(&'a Run, usize)>,
}

impl<'a> Iterator for Merged<'a> {
    type Item = RowRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        // The smallest key; on a tie the newest (last) run's row.
        let mut best: Option<RowRef<'a>> = None;
        for &(run, at) in &self.heads {
            if let Some(row) = run.row(at)
                && best.is_none_or(|best| row.0 <= best.0)
            {
                best = Some(row);
            }
        }
        let row = best?;
        for (run, at) in &mut self.heads {
            if run.row(*at).is_some_and(|(k, _)| k == row.0) {
                *at += 1;
            }
        }
        Some(row)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::Runs;
    use crate::Writes;

    /// A commit of `n` writes to keys drawn from `keys`, some deletions.
    fn commit(seed: &mut u64, keys: u64, n: usize) -> Writes {
        let mut writes = Writes::new();
        for _ in 0..n {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let key = format!("k{:05}", (*seed >> 33) % keys).into_bytes();
            let value = (!seed.is_multiple_of(7)).then(|| seed.to_le_bytes().to_vec());
            writes.insert(key, value);
        }
        writes
    }

    #[test]
    fn runs_read_as_the_commits_applied_in_order() {
        for (keys, batch) in [(10, 4), (1_000, 100), (50_000, 1_000)] {
            let (mut runs, mut expected) = (Runs::default(), BTreeMap::new());
            let mut seed = keys;
            for _ in 0..60 {
                let writes = commit(&mut seed, keys, batch);
                runs.push(&writes);
                expected.extend(writes);
                // Newest wins for every key, deletions kept as `None`.
                for (key, value) in &expected {
                    assert_eq!(runs.get(key), Some(value.as_deref()), "key {key:?}");
                }
                assert_eq!(runs.get(b"absent"), None);
                let merged: Vec<_> = runs
                    .merged()
                    .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                    .collect();
                let want: Vec<_> = expected.clone().into_iter().collect();
                assert_eq!(merged, want);
            }
            // Merging keeps the runs few: about log4 of rows over a batch.
            assert!(
                runs.runs.len() <= 8,
                "{} runs for {keys} keys",
                runs.runs.len()
            );
        }
    }

    #[test]
    fn a_run_shared_with_a_snapshot_is_left_as_it_was() {
        let mut runs = Runs::default();
        let first: Writes = [(b"a".to_vec(), Some(b"1".to_vec()))].into();
        runs.push(&first);
        let shared: Vec<_> = runs.layers().collect();
        let second: Writes = [(b"a".to_vec(), Some(b"2".to_vec()))].into();
        runs.push(&second);
        assert_eq!(runs.get(b"a"), Some(Some(&b"2"[..])));
        assert_eq!(shared[0].get(b"a"), Some(Some(&b"1"[..])));
    }

    #[test]
    fn rows_put_under_are_older_than_the_runs_above_them() {
        let (mut older, mut newer) = (Runs::default(), Runs::default());
        older.push(
            &[
                (b"a".to_vec(), Some(b"old".to_vec())),
                (b"b".to_vec(), None),
            ]
            .into(),
        );
        newer.push(&[(b"a".to_vec(), Some(b"new".to_vec()))].into());
        newer.put_under(older);
        assert_eq!(newer.get(b"a"), Some(Some(&b"new"[..])));
        assert_eq!(newer.get(b"b"), Some(None));
        assert_eq!(newer.merged().count(), 2);
    }
}
