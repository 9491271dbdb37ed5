//! The write buffer's commits as sorted runs: each commit's rows become one
//! run, a sorted vector, and runs of similar size are merged.
//!
//! The buffer was one B-tree map into which every commit inserted its rows.
//! At many keys that insert is a walk from the root to a leaf per row, with
//! a comparison of keys at each level, each key behind a pointer in cold
//! memory: at 1M keys, 1.0 of the 1.4 microseconds a replay into a fresh
//! view spent per event in its commits (`-- fresh-replay` of the store's
//! benchmark, BENCHMARKS.md "The view store at many keys"). A batch's
//! writes arrive sorted, so a run is made without a comparison, and merging
//! two sorted runs costs one comparison and one move per row, in order.
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

use std::sync::Arc;

use crate::{ROW_OVERHEAD, Writes};

/// A buffered row: `None` is a deletion not yet written to the file.
pub(crate) type Row = (Vec<u8>, Option<Vec<u8>>);

/// The bytes a buffered row is counted at.
fn row_bytes((key, value): &Row) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ROW_OVERHEAD
}

/// One commit's rows, or several merged: sorted by key, each key once.
#[derive(Debug, Default)]
pub(crate) struct Run {
    rows: Vec<Row>,
    /// Bytes the rows are counted at.
    bytes: usize,
}

impl Run {
    fn new(rows: Vec<Row>) -> Self {
        let bytes = rows.iter().map(row_bytes).sum();
        Run { rows, bytes }
    }

    /// The buffered state of `key`, if the run holds it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.rows
            .binary_search_by(|(k, _)| k.as_slice().cmp(key))
            .ok()
            .map(|i| &self.rows[i].1)
    }

    /// The rows, in key order.
    pub(crate) fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Merges `older` and `newer` (whose value of a key in both wins), each
    /// taken whole if no snapshot shares it, else copied.
    fn merge(older: Arc<Run>, newer: Arc<Run>) -> Run {
        let owned =
            |run: Arc<Run>| Arc::try_unwrap(run).map_or_else(|r| r.rows.clone(), |r| r.rows);
        let (older, newer) = (owned(older), owned(newer));
        let mut rows = Vec::with_capacity(older.len() + newer.len());
        let (mut older, mut newer) = (older.into_iter().peekable(), newer.into_iter().peekable());
        loop {
            let next = match (older.peek(), newer.peek()) {
                (Some(o), Some(n)) => match o.0.cmp(&n.0) {
                    std::cmp::Ordering::Less => older.next(),
                    std::cmp::Ordering::Greater => newer.next(),
                    std::cmp::Ordering::Equal => {
                        older.next();
                        newer.next()
                    }
                },
                (Some(_), None) => older.next(),
                (None, Some(_)) => newer.next(),
                (None, None) => break,
            };
            rows.extend(next);
        }
        Run::new(rows)
    }
}

/// Sorted runs, oldest first: a key's buffered value is its newest run's.
#[derive(Debug, Default, Clone)]
pub(crate) struct Runs {
    runs: Vec<Arc<Run>>,
}

impl Runs {
    /// Bytes of the rows of every run (a key in two runs counted twice,
    /// until they merge).
    pub(crate) fn bytes(&self) -> usize {
        self.runs.iter().map(|run| run.bytes).sum()
    }

    /// Adds the rows of a commit, newer than every run, then merges the
    /// newest run into the one before it while it holds at least a quarter
    /// as many rows.
    pub(crate) fn push(&mut self, writes: &Writes) {
        if writes.is_empty() {
            return;
        }
        let rows = writes.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        self.runs.push(Arc::new(Run::new(rows)));
        while let [.., older, newer] = self.runs.as_slice()
            && newer.rows.len() * 4 >= older.rows.len()
        {
            let (Some(newer), Some(older)) = (self.runs.pop(), self.runs.pop()) else {
                break;
            };
            self.runs.push(Arc::new(Run::merge(older, newer)));
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
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.runs.iter().rev().find_map(|run| run.get(key))
    }

    /// The runs, newest first, each shared.
    pub(crate) fn layers(&self) -> impl Iterator<Item = Arc<Run>> + '_ {
        self.runs.iter().rev().map(Arc::clone)
    }

    /// Every buffered row once, in key order, with its newest value.
    pub(crate) fn merged(&self) -> Merged<'_> {
        Merged {
            heads: self
                .runs
                .iter()
                .map(|run| (run.rows.as_slice(), 0))
                .collect(),
        }
    }
}

/// The rows of all runs merged in key order, the newest run's winning a key
/// held by several.
pub(crate) struct Merged<'a> {
    /// Per run, oldest first: its rows and the position of the next one.
    heads: Vec<(&'a [Row], usize)>,
}

impl<'a> Iterator for Merged<'a> {
    type Item = &'a Row;

    fn next(&mut self) -> Option<Self::Item> {
        // The smallest key; on a tie the newest (last) run's row.
        let mut best: Option<(usize, &'a Row)> = None;
        for (i, &(rows, at)) in self.heads.iter().enumerate() {
            if let Some(row) = rows.get(at)
                && best.is_none_or(|(_, best)| row.0 <= best.0)
            {
                best = Some((i, row));
            }
        }
        let (_, row) = best?;
        for (rows, at) in &mut self.heads {
            if rows.get(*at).is_some_and(|r| r.0 == row.0) {
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
                    assert_eq!(runs.get(key), Some(value), "key {key:?}");
                }
                assert_eq!(runs.get(b"absent"), None);
                let merged: Vec<_> = runs.merged().cloned().collect();
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
        assert_eq!(runs.get(b"a"), Some(&Some(b"2".to_vec())));
        assert_eq!(shared[0].get(b"a"), Some(&Some(b"1".to_vec())));
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
        assert_eq!(newer.get(b"a"), Some(&Some(b"new".to_vec())));
        assert_eq!(newer.get(b"b"), Some(&None));
        assert_eq!(newer.merged().count(), 2);
    }
}
