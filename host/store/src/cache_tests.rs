//! Tests of the row cache: a read answered by the cache equals a read of the
//! buffer and the file, whatever the cache's size, evictions, reopens and
//! snapshots older than the latest commit.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{Shards, View, ViewOptions, Writes};

fn options(write_buffer_bytes: usize, row_cache_bytes: usize) -> ViewOptions {
    ViewOptions {
        sync_interval: Duration::from_secs(3600),
        write_buffer_bytes,
        cache_bytes: 1 << 20,
        row_cache_bytes,
    }
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the view should hold.
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

/// Random batches of writes and deletions over 300 keys, each followed by
/// reads through a fresh snapshot, `View::get` and a snapshot kept from two
/// commits before (which must still see its own commit), all checked
/// against a model; the view is reopened now and then (its cache then
/// starts incomplete, the file holding rows). Run with no cache, a cache
/// that holds everything, and caches so small that they evict at every
/// commit, over a buffer that writes the file at every commit, one that
/// writes it often (on the commit's thread or in the background, commits
/// going on meanwhile) and one that never does.
#[test]
fn reads_through_the_cache_equal_the_model_whatever_its_size() {
    let buffers = [
        (0, false),
        (2 << 10, false),
        (2 << 10, true),
        (1 << 30, false),
    ];
    for row_cache_bytes in [0, 1 << 20, 4 << 10, 300] {
        for (write_buffer_bytes, background) in buffers {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("v.redb");
            let options = options(write_buffer_bytes, row_cache_bytes);
            let open = || {
                View::open_with(&path, options.clone())
                    .unwrap()
                    .with_background_writes(background)
            };
            let mut view = open();
            let mut model: Model = BTreeMap::new();
            let mut history: Vec<(crate::Snapshot, Model)> = Vec::new();
            let mut rng =
                Rng(0x9e37_79b9_7f4a_7c15 ^ (row_cache_bytes + write_buffer_bytes) as u64);
            for commit in 1..=120u64 {
                let mut batch = Writes::new();
                for _ in 0..rng.below(40) {
                    let k = key(rng.below(300));
                    if rng.below(5) == 0 {
                        batch.insert(k, None);
                    } else {
                        let v = format!("v{commit}-{}", rng.below(1 << 20)).into_bytes();
                        batch.insert(k, Some(v));
                    }
                }
                // A snapshot of the previous commit reads keys this commit
                // changes, before and after it: the cache must not leak
                // the newer rows into it, nor its reads into the cache.
                let before = view.snapshot().unwrap();
                for k in batch.keys().take(5) {
                    assert_eq!(before.get(k).unwrap(), model.get(k).cloned());
                }
                view.commit(0, commit, &batch, false).unwrap();
                for k in batch.keys().take(5) {
                    assert_eq!(
                        before.get(k).unwrap(),
                        model.get(k).cloned(),
                        "old snapshot"
                    );
                }
                for (k, v) in batch {
                    match v {
                        Some(v) => model.insert(k, v),
                        None => model.remove(&k),
                    };
                }
                let now = view.snapshot().unwrap();
                for _ in 0..60 {
                    let k = key(rng.below(320));
                    assert_eq!(now.get(&k).unwrap(), model.get(&k).cloned(), "{commit}");
                    assert_eq!(view.get(&k).unwrap(), model.get(&k).cloned(), "{commit}");
                }
                history.push((now, model.clone()));
                if history.len() > 2 {
                    let (old, then) = history.remove(0);
                    for _ in 0..20 {
                        let k = key(rng.below(300));
                        assert_eq!(old.get(&k).unwrap(), then.get(&k).cloned(), "kept snapshot");
                    }
                }
                if commit % 37 == 0 {
                    history.clear();
                    drop(view);
                    view = open();
                }
            }
            let rows: BTreeMap<Vec<u8>, Vec<u8>> = view
                .snapshot()
                .unwrap()
                .rows(b"", None)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(rows, model);
        }
    }
}

/// A view opened empty knows every row from its cache until the cache
/// first evicts one; a view opened holding rows does not, and finds them
/// in the file.
#[test]
fn the_cache_is_complete_for_a_new_view_until_it_evicts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    let view = View::open_with(&path, options(0, 4 << 10)).unwrap();
    assert!(view.row_cache_is_complete());
    let batch: Writes = (0..10).map(|i| (key(i), Some(b"x".to_vec()))).collect();
    view.commit(0, 1, &batch, false).unwrap();
    assert!(view.row_cache_is_complete());
    assert!(view.row_cache_bytes() > 0);
    assert_eq!(view.snapshot().unwrap().get(b"absent").unwrap(), None);
    // 200 rows of about 80 bytes do not fit in 4 KiB.
    let batch: Writes = (0..200).map(|i| (key(i), Some(vec![b'y'; 16]))).collect();
    view.commit(0, 2, &batch, false).unwrap();
    assert!(!view.row_cache_is_complete());
    assert!(view.row_cache_bytes() <= 4 << 10);
    let snap = view.snapshot().unwrap();
    for i in 0..200 {
        assert_eq!(snap.get(&key(i)).unwrap(), Some(vec![b'y'; 16]));
    }
    drop(snap);
    drop(view);
    let view = View::open_with(&path, options(0, 1 << 20)).unwrap();
    assert!(!view.row_cache_is_complete());
    assert_eq!(view.get(&key(7)).unwrap(), Some(vec![b'y'; 16]));
    let view = View::open_with(&dir.path().join("w.redb"), options(0, 0)).unwrap();
    assert!(!view.row_cache_is_complete(), "no cache, nothing known");
    assert_eq!(view.row_cache_bytes(), 0);
}

#[test]
fn a_row_rewritten_at_another_size_keeps_the_cache_complete() {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open_with(&dir.path().join("v.redb"), options(1 << 20, 1 << 20)).unwrap();
    for (offset, value) in [&b"9"[..], b"10", b"1000", b"7"].into_iter().enumerate() {
        let batch: Writes = [(key(1), Some(value.to_vec())), (key(2), None)].into();
        view.commit(0, offset as u64 + 1, &batch, false).unwrap();
        assert!(view.row_cache_is_complete(), "after writing {value:?}");
        assert_eq!(view.get(&key(1)).unwrap(), Some(value.to_vec()));
        assert_eq!(view.get(&key(2)).unwrap(), None);
    }
}

/// Keys short enough to be held in the cache's entries and keys too long
/// for it, among them keys that differ only by trailing zero bytes or by
/// one byte at the limit, each read back as written (and the ones not
/// written as absent) by the cache alone.
#[test]
fn keys_of_every_length_read_back_through_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open_with(&dir.path().join("v.redb"), options(1 << 20, 1 << 20)).unwrap();
    let mut keys: Vec<Vec<u8>> = (0..=40).map(|len| vec![b'k'; len]).collect();
    keys.extend((0..=24).map(|len| vec![0; len]));
    keys.push(b"ab\0".to_vec());
    let written: Writes = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 1)
        .map(|(i, k)| (k.clone(), Some(i.to_le_bytes().to_vec())))
        .collect();
    view.commit(0, 1, &written, false).unwrap();
    assert!(view.row_cache_is_complete());
    for key in keys.iter().chain([&b"ab".to_vec()]) {
        assert_eq!(
            view.get(key).unwrap(),
            written.get(key).cloned().flatten(),
            "key {key:?}"
        );
    }
}

/// Values short enough to be held in the cache's entries and values too
/// long for it, each row rewritten through every change of length (within
/// the entry, from the entry to an allocation and back, an allocation of the
/// same length and of another, deleted and written again), read back after
/// each commit by the cache alone, which stays complete throughout.
#[test]
fn values_of_every_length_read_back_through_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open_with(&dir.path().join("v.redb"), options(1 << 20, 1 << 20)).unwrap();
    let lengths = [0, 1, 37, 38, 39, 40, 80, 39, 38, 0, 80, 81, 1];
    let mut model = Model::new();
    for round in 0..lengths.len() {
        let mut batch = Writes::new();
        for row in 0..lengths.len() {
            let k = key(row as u64);
            // Each row walks the lengths from its own place in the list,
            // every third one deleted for one commit on the way.
            if (row + round) % 3 == 2 && round % 2 == 1 {
                batch.insert(k.clone(), None);
                model.remove(&k);
                continue;
            }
            let len = lengths[(row + round) % lengths.len()];
            let value: Vec<u8> = (0..len)
                .map(|i| u8::try_from((i + round * 7 + row) % 256).unwrap())
                .collect();
            batch.insert(k.clone(), Some(value.clone()));
            model.insert(k, value);
        }
        view.commit(0, round as u64 + 1, &batch, false).unwrap();
        assert!(view.row_cache_is_complete(), "after commit {round}");
        for row in 0..lengths.len() as u64 {
            let k = key(row);
            assert_eq!(
                view.get(&k).unwrap(),
                model.get(&k).cloned(),
                "row {row} after commit {round}"
            );
        }
    }
}

/// A crash loses the cache with the buffer: reads after it see the file.
#[test]
fn a_crash_loses_the_cache_with_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open_with(&dir.path().join("v.redb"), options(1 << 30, 1 << 20)).unwrap();
    view.commit(0, 1, &[(key(1), Some(b"kept".to_vec()))].into(), true)
        .unwrap();
    view.commit(0, 2, &[(key(1), Some(b"lost".to_vec()))].into(), false)
        .unwrap();
    assert_eq!(view.get(&key(1)).unwrap().as_deref(), Some(&b"lost"[..]));
    view.lose_buffer();
    assert_eq!(view.get(&key(1)).unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(
        view.snapshot().unwrap().get(&key(1)).unwrap().as_deref(),
        Some(&b"kept"[..])
    );
}

/// Shards check one key, one partition through their caches: a key held by
/// one partition's shard is refused to another, whether the holder's row
/// is cached, evicted or in the file only.
#[test]
fn shards_refuse_a_key_of_another_partition_through_their_caches() {
    for row_cache_bytes in [1 << 20, 200, 0] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("view");
        let shards = Shards::open(
            &path,
            crate::Layout::PerPartition,
            options(1 << 30, row_cache_bytes),
        )
        .unwrap();
        let batch: Writes = (0..50).map(|i| (key(i), Some(b"p0".to_vec()))).collect();
        shards.commit(0, 1, &batch, false).unwrap();
        let refused = shards.commit(1, 1, &[(key(3), Some(b"p1".to_vec()))].into(), false);
        assert!(
            matches!(
                refused,
                Err(crate::StoreError::Conflict {
                    holder: 0,
                    writer: 1,
                    ..
                })
            ),
            "{row_cache_bytes}: {refused:?}"
        );
        assert_eq!(
            shards.snapshot().unwrap().get(&key(3)).unwrap().as_deref(),
            Some(&b"p0"[..])
        );
    }
}

/// An incomplete cache stops taking in rows while fewer than a quarter of
/// its look-ups hit, keeps the rows it holds up to date meanwhile, and
/// takes rows in again once they hit.
#[test]
fn an_incomplete_cache_admits_rows_only_while_they_hit() {
    use crate::cache::{Cached, ENTRY_BYTES, RowCache};
    // Room for about 100 rows of 8-byte keys and 8-byte values.
    let mut cache = RowCache::new(usize::try_from(100 * ENTRY_BYTES).unwrap(), 0, false);
    let value = |i: u64| i.to_le_bytes();
    for i in 0..100 {
        cache.fill(0, &key(i), Some(&value(i)));
    }
    // A uniform read of 10,000 keys: about 1% hit, so admission stops.
    let mut rng = Rng(7);
    for _ in 0..(1 << 16) {
        let k = key(rng.below(10_000));
        if cache.get(0, &k) == Cached::Unknown {
            cache.fill(0, &k, Some(&[0; 8]));
        }
    }
    assert!(!cache.is_admitting());
    cache.fill(0, &key(20_000), Some(&[1; 8]));
    assert_eq!(cache.get(0, &key(20_000)), Cached::Unknown, "not taken in");
    // A cached row written by a commit is updated even so.
    let cached = (0..10_000)
        .map(key)
        .find(|k| matches!(cache.get(0, k), Cached::Known(_)))
        .unwrap();
    cache.commit(1, [(cached.as_slice(), Some(&b"newvalue"[..]))].into_iter());
    assert_eq!(
        cache.get(1, &cached),
        Cached::Known(Some(b"newvalue".to_vec()))
    );
    // Reads of the rows it holds: they hit, and admission resumes.
    for _ in 0..(1 << 16) {
        cache.get(1, &cached);
    }
    assert!(cache.is_admitting());
    cache.fill(1, &key(20_001), Some(&[2; 8]));
    assert_eq!(cache.get(1, &key(20_001)), Cached::Known(Some(vec![2; 8])));
}

/// In a cache that evicts, a row weighs its entry (104 bytes, a short key
/// and a short value held in it), plus, for a key or value too long for
/// the entry, its bytes, an eighth more and 24: the weights the bound and
/// the buffer's borrowing count.
#[test]
fn a_row_weighs_its_entry_and_the_allocations_of_a_long_key_or_value() {
    use crate::cache::RowCache;
    let weight = |key: &[u8], value: Option<&[u8]>| {
        // Incomplete (a view opened holding rows): quick_cache from the start.
        let mut cache = RowCache::new(1 << 20, 0, false);
        assert!(!cache.holds_every_row_in_one_table());
        cache.commit(1, [(key, value)].into_iter());
        cache.bytes()
    };
    assert_eq!(weight(b"key-00000001", Some(&[7; 38])), 104);
    assert_eq!(weight(&[b'k'; 22], Some(b"")), 104);
    assert_eq!(weight(b"key-00000001", Some(&[7; 40])), 104 + 40 + 5 + 24);
    assert_eq!(weight(&[b'k'; 40], Some(&[7; 8])), 104 + 40 + 5 + 24);
    assert_eq!(
        weight(&[b'k'; 40], Some(&[7; 100])),
        104 + 69 + 100 + 12 + 24
    );
}

/// A complete cache keeps its rows in one vector found through a table of
/// slots, and weighs their memory: the vector's allocation (64 bytes a row,
/// room for rows to come included), the slots' (8 bytes each, at most half
/// of them used) and the long values' allocations, within the bound even
/// while the vector or the slots grow (the new allocation beside the old).
/// When a row would not fit there, the rows move into the evicting cache,
/// every one of them still there and the cache still complete until it
/// first evicts.
#[test]
fn a_complete_cache_holds_its_rows_in_one_table_until_they_would_pass_its_bound() {
    use crate::cache::{Cached, RowCache};
    let bound = 1 << 20;
    let mut cache = RowCache::new(bound, 0, true);
    assert!(cache.holds_every_row_in_one_table());
    assert_eq!(cache.bytes(), 0, "nothing allocated before the first row");
    let mut generation = 0;
    let mut commit = |cache: &mut RowCache, key: &[u8], value: Option<&[u8]>| {
        generation += 1;
        cache.commit(generation, [(key, value)].into_iter());
        generation
    };
    commit(&mut cache, &key(0), Some(b"short"));
    assert_eq!(cache.bytes(), 8 * 64 + 16 * 8, "room for 8 rows, 16 slots");
    // A long value's allocation counts, and stops counting when the row is
    // rewritten short or deleted.
    let long = [7u8; 40];
    commit(&mut cache, &key(0), Some(&long));
    assert_eq!(cache.bytes(), 8 * 64 + 16 * 8 + 69);
    commit(&mut cache, &key(0), Some(b"short"));
    assert_eq!(cache.bytes(), 8 * 64 + 16 * 8);
    commit(&mut cache, &key(0), Some(&long));
    let g = commit(&mut cache, &key(0), None);
    assert_eq!(cache.bytes(), 8 * 64 + 16 * 8);
    assert_eq!(cache.get(g, &key(0)), Cached::Known(None));
    // Rows until one no longer fits: the weight within the bound after
    // every commit. The 8,193rd row would double the vector to 16,384 rows
    // (1 MiB) beside its 8,192 (512 KiB) and the slots (16,384: 128 KiB).
    let mut rows = 0;
    let mut weight = 0;
    while cache.holds_every_row_in_one_table() {
        weight = cache.bytes();
        commit(&mut cache, &key(rows), Some(b"v"));
        rows += 1;
        assert!(
            cache.bytes() <= bound as u64,
            "{} after {rows} rows",
            cache.bytes()
        );
    }
    assert_eq!(rows, 8_193);
    assert_eq!(weight, 8_192 * 64 + 16_384 * 8);
    let g = commit(&mut cache, &key(rows), Some(b"v"));
    rows += 1;
    assert!(cache.is_complete(), "nothing evicted yet");
    assert_eq!(cache.bytes(), rows * 104, "each row weighed by its entry");
    for i in 0..rows {
        assert_eq!(cache.get(g, &key(i)), Cached::Known(Some(b"v".to_vec())));
    }
    assert_eq!(cache.get(g, &key(99_999)), Cached::Known(None));
    // 1 MiB holds 10,082 entries: the evictions start past them.
    for i in rows..11_000 {
        commit(&mut cache, &key(i), Some(b"v"));
    }
    assert!(!cache.is_complete());
    assert!(cache.bytes() <= bound as u64);
    // A bound smaller than the smallest table: no table, nothing over it.
    let mut tiny = RowCache::new(100, 0, true);
    tiny.commit(1, [(&b"k"[..], Some(&b"v"[..]))].into_iter());
    assert!(tiny.bytes() <= 100);
    assert!(!tiny.holds_every_row_in_one_table());
}

/// The complete cache's table against a model: random writes, rewrites at
/// other lengths and deletions of a few hundred keys (so that probes
/// collide, slots move back as others are freed, and the last row moves
/// into a deleted one's place), every key read back after each step.
#[test]
fn the_complete_caches_table_reads_back_what_was_written_and_deleted() {
    use crate::cache_whole::Whole;
    let mut table = Whole::new();
    let mut model = Model::new();
    let mut rng = Rng(11);
    for step in 0..20_000 {
        let k = key(rng.below(400));
        if rng.below(3) == 0 {
            table.remove(&k);
            model.remove(&k);
        } else {
            let byte = b"abcdefghijklmnopqrstuvwxyz"[step % 26];
            let value = vec![byte; usize::try_from(rng.below(60)).unwrap()];
            table.put(&k, &value, u64::MAX).unwrap();
            model.insert(k, value);
        }
        if step % 97 == 0 {
            for i in 0..400 {
                let k = key(i);
                assert_eq!(
                    table.get(&k).and_then(|v| v.as_bytes()),
                    model.get(&k).map(Vec::as_slice),
                    "key {i} at step {step}"
                );
            }
            assert_eq!(table.len(), model.len());
        }
    }
    let drained: Model = table
        .drain()
        .map(|row| {
            (
                row.key.as_bytes().to_vec(),
                row.value.as_bytes().unwrap().to_vec(),
            )
        })
        .collect();
    assert_eq!(drained, model);
    assert_eq!(table.bytes(), 0);
}
