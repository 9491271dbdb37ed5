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
//! rows over a batch's), at the price of rewriting the largest run every few
//! commits (about 8 copies a row over 122 commits of new rows). Merging runs
//! of a size four at a time copies a row 2.4 times there, but with three
//! times the runs to search it was no faster (BENCHMARKS.md, "The buffer as
//! sorted runs").
//!
//! The writer's reads are answered by the row cache; the runs are searched
//! (newest first: the run's key filter, then a binary search if the filter
//! lets the key through) only by a query's snapshot of an
//! earlier commit and for a key the row cache does not hold. A run is
//! immutable and shared with the snapshots taken while it is buffered, so a
//! snapshot costs a reference per run and a commit never copies rows for a
//! snapshot's sake.

use std::cmp::Ordering;
use std::sync::{Arc, OnceLock};

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
/// a row then costs its bytes and 24 more (and its share of the filter)
/// instead of two allocations and 48
/// more (so a buffer of the same bound holds about 1.7 times the rows of
/// `key-totals` at 1M keys, and spills to the file less often), and a
/// merge copies bytes instead of moving allocations that must later be
/// freed one by one.
#[derive(Debug, Default)]
pub(crate) struct Run {
    bytes: Vec<u8>,
    slots: Vec<Slot>,
    /// A Bloom filter of the run's keys: a key found absent in it is not
    /// in the run, without a binary search over the run's cold slots. A read
    /// of a key the row cache does not hold tries every run before the
    /// file, and most such keys are in none of them. Built by the run's
    /// first read, not with the run: most runs are merged away unread (the
    /// writer's reads go to the row cache), and building a filter with each
    /// run and each merge (a write to a random word of it per row) cost a
    /// replay at 1M keys more than it saved.
    filter: OnceLock<Vec<u64>>,
}

/// Keys per 64-bit word of a run's filter: about 10.7 bits a key, four of
/// them set, for about 2% of absent keys let through.
const KEYS_PER_FILTER_WORD: usize = 6;

/// The hash of a key for the runs' filters: fixed, so that a run's filter
/// and a reader agree (foldhash, as the row cache's table).
fn filter_hash(key: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x6b61_7070_6172_756e).hash_one(key)
}

/// A key to look up in runs, hashed once for all their filters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe<'a> {
    key: &'a [u8],
    hash: u64,
}

impl<'a> Probe<'a> {
    pub(crate) fn new(key: &'a [u8]) -> Self {
        Probe {
            key,
            hash: filter_hash(key),
        }
    }
}

/// The words of the filter of a run of `rows` rows.
fn filter_words(rows: usize) -> usize {
    rows.div_ceil(KEYS_PER_FILTER_WORD).max(1)
}

/// The word of a filter of `words` words for hash `h`, and the four bits
/// `h` sets in it.
fn filter_bits(h: u64, words: usize) -> (usize, u64) {
    // The high half picks the word, as a fraction of `words` (no division).
    let word = ((h >> 32) * words as u64) >> 32;
    let bits = (0..4).fold(0, |bits, i| bits | 1 << ((h >> (6 * i)) & 63));
    (usize::try_from(word).unwrap_or(0), bits)
}

impl Run {
    /// An empty run with room for `rows` rows of `bytes` bytes in all.
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        Run {
            bytes: Vec::with_capacity(bytes),
            slots: Vec::with_capacity(rows),
            filter: OnceLock::new(),
        }
    }

    /// Whether the run's filter lets the probe's key through: false only
    /// for a key the run does not hold.
    fn may_hold(&self, probe: Probe<'_>) -> bool {
        let filter = self.filter.get_or_init(|| {
            let mut filter = vec![0; filter_words(self.len())];
            for &slot in &self.slots {
                let (word, bits) = filter_bits(filter_hash(self.key_at(slot)), filter.len());
                filter[word] |= bits;
            }
            filter
        });
        let (word, bits) = filter_bits(probe.hash, filter.len());
        filter[word] & bits == bits
    }

    /// Appends a row, whose key must sort after every key of the run.
    fn push(&mut self, (key, value): RowRef<'_>) {
        // The filter, once built, is not updated: a run is complete before
        // it is read.
        debug_assert!(self.filter.get().is_none(), "a row pushed to a read run");
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

    /// The memory the run holds: its allocations, used or not, and its
    /// filter's whether built or not (so that the buffer's bound does not
    /// depend on what was read).
    fn memory(&self) -> usize {
        self.bytes.capacity()
            + self.slots.capacity() * SLOT_BYTES
            + filter_words(self.slots.capacity()) * 8
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

    /// The buffered state of the probe's key, if the run holds it.
    pub(crate) fn get(&self, probe: Probe<'_>) -> Option<Option<&[u8]>> {
        if !self.may_hold(probe) {
            return None;
        }
        let i = self
            .slots
            .binary_search_by(|&slot| self.key_at(slot).cmp(probe.key))
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

    /// The buffered state of the probe's key: `Some(None)` for a deletion
    /// not yet in the file, `None` if no run holds the key.
    pub(crate) fn get(&self, probe: Probe<'_>) -> Option<Option<&[u8]>> {
        self.runs.iter().rev().find_map(|run| run.get(probe))
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

    use super::{Probe, Runs};
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
                    assert_eq!(
                        runs.get(Probe::new(key)),
                        Some(value.as_deref()),
                        "key {key:?}"
                    );
                }
                assert_eq!(runs.get(Probe::new(b"absent")), None);
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
    fn a_runs_filter_holds_its_keys_and_lets_few_others_through() {
        let mut runs = Runs::default();
        for c in 0..4 {
            let writes: Writes = (0..10_000)
                .map(|i| (format!("k{:09}", i * 4 + c).into_bytes(), Some(vec![1])))
                .collect();
            runs.push(&writes);
        }
        // Merged into one run: its filter was built by the merge.
        assert_eq!(runs.runs.len(), 1);
        let run = &runs.runs[0];
        for i in 0..40_000 {
            let key = format!("k{i:09}").into_bytes();
            assert!(
                run.may_hold(Probe::new(&key)),
                "key {i} held but filtered out"
            );
        }
        let through = (0..100_000)
            .filter(|i| run.may_hold(Probe::new(format!("absent{i}").as_bytes())))
            .count();
        // About 2% expected; over 5% means the filter is not doing its job.
        assert!(
            through < 5_000,
            "{through} of 100000 absent keys let through"
        );
    }

    #[test]
    fn a_run_shared_with_a_snapshot_is_left_as_it_was() {
        let mut runs = Runs::default();
        let first: Writes = [(b"a".to_vec(), Some(b"1".to_vec()))].into();
        runs.push(&first);
        let shared: Vec<_> = runs.layers().collect();
        let second: Writes = [(b"a".to_vec(), Some(b"2".to_vec()))].into();
        runs.push(&second);
        assert_eq!(runs.get(Probe::new(b"a")), Some(Some(&b"2"[..])));
        assert_eq!(shared[0].get(Probe::new(b"a")), Some(Some(&b"1"[..])));
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
        assert_eq!(newer.get(Probe::new(b"a")), Some(Some(&b"new"[..])));
        assert_eq!(newer.get(Probe::new(b"b")), Some(None));
        assert_eq!(newer.merged().count(), 2);
    }
}
