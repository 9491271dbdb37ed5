//! Tests of the view kept per partition: merged reads, digests equal to a
//! view of one file, the one-partition-per-key rule, reopening and crashes.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::*;

fn writes(pairs: &[(&str, Option<&str>)]) -> Writes {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
        .collect()
}

/// Buffers large enough that nothing reaches the file unless synced.
fn options() -> ViewOptions {
    ViewOptions {
        sync_interval: Duration::from_secs(3600),
        write_buffer_bytes: 1 << 30,
        cache_bytes: 1 << 20,
        row_cache_bytes: 1 << 20,
    }
}

fn keys(rows: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<String> {
    rows.into_iter()
        .map(|(k, _)| String::from_utf8(k).unwrap())
        .collect()
}

/// Rows `<group>/<i>` for groups a, b, c and i below 10, each in the shard
/// of partition `i % 3`: every shard holds keys of every prefix.
fn fill(shards: &Shards, single: &View) {
    for partition in 0..3u32 {
        let mut w = Writes::new();
        for group in ["a", "b", "c"] {
            for i in (0..10).filter(|i| i % 3 == partition) {
                let key = format!("{group}/{i}");
                w.insert(key.into_bytes(), Some(format!("v{i}").into_bytes()));
            }
        }
        shards
            .commit(partition, 10 + u64::from(partition), &w, false)
            .unwrap();
        single
            .commit(partition, 10 + u64::from(partition), &w, false)
            .unwrap();
    }
}

/// A merged scan walks the three shards in key order, honouring prefix,
/// cursor and limit exactly as a scan of one view file holding the rows,
/// with some shards' rows in their files and others' in their buffers.
#[test]
fn a_merged_scan_is_in_key_order_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    let shards = Shards::open(&dir.path().join("view"), Layout::PerPartition, options()).unwrap();
    let single = View::open_with(&dir.path().join("one.redb"), options()).unwrap();
    fill(&shards, &single);
    shards.shard(1).unwrap().sync().unwrap();
    let (merged, one) = (shards.snapshot().unwrap(), single.snapshot().unwrap());
    let all = keys(merged.scan(b"", None, 100).unwrap());
    assert_eq!(all.len(), 30);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    assert_eq!(
        keys(merged.scan(b"b/", Some(b"b/2"), 4).unwrap()),
        ["b/3", "b/4", "b/5", "b/6"]
    );
    for prefix in ["", "a/", "b/1", "c/9", "d"] {
        for after in [None, Some("a/2"), Some("b/15"), Some("c/8"), Some("z")] {
            for limit in [1, 5, 100] {
                let after = after.map(str::as_bytes);
                assert_eq!(
                    merged.scan(prefix.as_bytes(), after, limit).unwrap(),
                    one.scan(prefix.as_bytes(), after, limit).unwrap(),
                    "prefix {prefix:?} after {after:?} limit {limit}"
                );
            }
        }
    }
    assert_eq!(merged.len().unwrap(), 30);
    assert_eq!(
        merged.offsets().unwrap(),
        BTreeMap::from([(0, 10), (1, 11), (2, 12)])
    );
    assert_eq!(merged.get(b"c/7").unwrap().as_deref(), Some(&b"v7"[..]));
    assert_eq!(merged.get(b"c/70").unwrap(), None);
}

/// A view kept per partition digests equal to a shared view and to one
/// view file holding the same rows: the digest is over the rows only.
#[test]
fn shards_digest_equal_to_a_shared_view_of_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let per = Shards::open(&dir.path().join("per"), Layout::PerPartition, options()).unwrap();
    let shared = Shards::open(&dir.path().join("shared.redb"), Layout::Shared, options()).unwrap();
    let single = View::open_with(&dir.path().join("one.redb"), options()).unwrap();
    // Empty, they digest equal too.
    assert_eq!(
        per.snapshot().unwrap().digest().unwrap(),
        single.snapshot().unwrap().digest().unwrap()
    );
    fill(&per, &single);
    fill(
        &shared,
        &View::open_with(&dir.path().join("scratch.redb"), options()).unwrap(),
    );
    per.shard(2).unwrap().sync().unwrap();
    let d = per.snapshot().unwrap().digest().unwrap();
    assert_eq!(d, shared.snapshot().unwrap().digest().unwrap());
    assert_eq!(d, single.snapshot().unwrap().digest().unwrap());
    assert_eq!(d.rows, 30);
    assert_eq!(per.offsets().unwrap(), shared.offsets().unwrap());
    // One row more in one shard changes it.
    per.commit(0, 20, &writes(&[("d", Some("x"))]), false)
        .unwrap();
    assert_ne!(per.snapshot().unwrap().digest().unwrap().sha256, d.sha256);
}

/// A put of a key another partition's shard holds is refused, the error
/// naming the key and both partitions.
#[test]
fn a_key_of_another_partition_is_refused_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let shards = Shards::open(dir.path(), Layout::PerPartition, options()).unwrap();
    shards
        .commit(0, 1, &writes(&[("count", Some("1"))]), false)
        .unwrap();
    let err = shards
        .commit(
            1,
            1,
            &writes(&[("own", Some("1")), ("count", Some("2"))]),
            false,
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { key, holder: 0, writer: 1 } if key == b"count"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message
            .starts_with("key `count` is written by partition 1 but partition 0's shard holds it"),
        "{message}"
    );
    assert!(message.contains("one row per partition"), "{message}");
    // The refused batch is undone: its rows and its offset as before.
    assert_eq!(
        shards.get(b"count", None).unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(shards.get(b"own", None).unwrap(), None);
    assert_eq!(shards.offsets().unwrap(), BTreeMap::from([(0, 1), (1, 0)]));
    assert_eq!(shards.snapshot().unwrap().len().unwrap(), 1);
    shards
        .commit(1, 2, &writes(&[("own", Some("1"))]), false)
        .unwrap();
    shards
        .commit(1, 3, &writes(&[("own", Some("2"))]), false)
        .unwrap();
    // A refused batch is undone whatever it does to its own keys: a write
    // (made durable) or a deletion.
    for (own, durable) in [(Some("3"), true), (None, false)] {
        let err = shards
            .commit(
                1,
                4,
                &writes(&[("own", own), ("count", Some("2"))]),
                durable,
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
        assert_eq!(
            shards.get(b"own", Some(1)).unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(shards.offsets().unwrap()[&1], 3);
    }
    // A key that is not text is shown in hex.
    let binary = StoreError::Conflict {
        key: vec![0, 255],
        holder: 2,
        writer: 3,
    };
    assert!(
        binary.to_string().starts_with("key 0x00ff is written"),
        "{binary}"
    );
    // A shared view has no such rule.
    let shared = Shards::open(&dir.path().join("s.redb"), Layout::Shared, options()).unwrap();
    shared
        .commit(0, 1, &writes(&[("count", Some("1"))]), false)
        .unwrap();
    shared
        .commit(1, 1, &writes(&[("count", Some("2"))]), false)
        .unwrap();
}

/// A key two shards hold anyway (written past the check) is an error for
/// a merged scan and digest, never one row picked.
#[test]
fn a_key_in_two_shards_fails_merged_reads() {
    let dir = tempfile::tempdir().unwrap();
    let shards = Shards::open(dir.path(), Layout::PerPartition, options()).unwrap();
    shards
        .commit(0, 1, &writes(&[("a", Some("1")), ("k", Some("0"))]), false)
        .unwrap();
    shards
        .commit(2, 1, &writes(&[("z", Some("1"))]), false)
        .unwrap();
    shards
        .shard(2)
        .unwrap()
        .commit(2, 2, &writes(&[("k", Some("2"))]), false)
        .unwrap();
    shards.shard(0).unwrap().sync().unwrap();
    let snap = shards.snapshot().unwrap();
    let conflict = |e: &StoreError| matches!(e, StoreError::Conflict { key, holder: 0, writer: 2 } if key == b"k");
    let err = snap.digest().unwrap_err();
    assert!(conflict(&err), "{err:?}");
    let rows: Vec<_> = snap.rows(b"", None).unwrap().collect();
    assert_eq!(rows.len(), 2, "the row before, then the error: {rows:?}");
    assert_eq!(rows[0].as_ref().unwrap().0, b"a");
    assert!(conflict(rows[1].as_ref().unwrap_err()));
    // A scan that does not reach the key is fine.
    assert_eq!(keys(snap.scan(b"", Some(b"k"), 10).unwrap()), ["z"]);
    // A get reads the hinted shard first, then the others in order.
    assert_eq!(
        shards.get(b"k", Some(2)).unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(
        shards.get(b"k", Some(0)).unwrap().as_deref(),
        Some(&b"0"[..])
    );
    assert_eq!(shards.get(b"k", None).unwrap().as_deref(), Some(&b"0"[..]));
    assert_eq!(
        shards.get(b"z", Some(0)).unwrap().as_deref(),
        Some(&b"1"[..])
    );
}

/// A key written then deleted by one partition is free: another partition
/// may then write it.
#[test]
fn a_deleted_key_can_be_written_by_another_partition() {
    let dir = tempfile::tempdir().unwrap();
    let shards = Shards::open(dir.path(), Layout::PerPartition, options()).unwrap();
    shards
        .commit(0, 1, &writes(&[("k", Some("0"))]), false)
        .unwrap();
    shards.shard(0).unwrap().sync().unwrap();
    shards.commit(0, 2, &writes(&[("k", None)]), false).unwrap();
    shards
        .commit(1, 1, &writes(&[("k", Some("1"))]), false)
        .unwrap();
    assert_eq!(shards.get(b"k", None).unwrap().as_deref(), Some(&b"1"[..]));
    // And a partition updating its own key is no conflict.
    shards
        .commit(1, 2, &writes(&[("k", Some("2"))]), false)
        .unwrap();
    assert_eq!(shards.snapshot().unwrap().len().unwrap(), 1);
    // The partition that deleted it no longer holds it: writing it again is
    // adding it, refused while the other holds it.
    let err = shards
        .commit(0, 3, &writes(&[("k", Some("3"))]), false)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { key, holder: 1, writer: 0 } if key == b"k"),
        "{err:?}"
    );
}

/// The keys a shard is known to hold are bounded: past the bound they are
/// forgotten, and the rule holds all the same.
#[test]
fn the_keys_a_shard_is_known_to_hold_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let shards = Shards::open(dir.path(), Layout::PerPartition, options()).unwrap();
    let many: Writes = (0..=KNOWN_KEYS)
        .map(|i| (format!("k{i:07}").into_bytes(), Some(Vec::new())))
        .collect();
    shards.commit(0, 1, &many, false).unwrap();
    assert!(
        shards.known(0).lock().is_empty(),
        "forgotten past the bound"
    );
    shards
        .commit(0, 2, &writes(&[("k0000001", Some("again"))]), false)
        .unwrap();
    assert_eq!(shards.known(0).lock().len(), 1);
    let err = shards
        .commit(1, 1, &writes(&[("k0000002", Some("x"))]), false)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { holder: 0, .. }),
        "{err:?}"
    );
}

/// Reopened after an orderly close, every shard keeps its rows and its
/// partition's offset; a shard created for a partition met late is found.
#[test]
fn reopen_keeps_every_shard_including_one_created_late() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("view");
    let digest = {
        let shards = Shards::open(&path, Layout::PerPartition, options()).unwrap();
        assert_eq!(shards.layout(), Layout::PerPartition);
        assert_eq!(shards.path(), path);
        shards
            .commit(0, 4, &writes(&[("a", Some("1"))]), false)
            .unwrap();
        shards
            .commit(1, 5, &writes(&[("b", Some("2"))]), false)
            .unwrap();
        assert!(!path.join("partition-7.redb").exists());
        // The topic gained a partition.
        shards
            .commit(7, 1, &writes(&[("c", Some("3"))]), false)
            .unwrap();
        assert!(path.join("partition-7.redb").exists());
        shards.snapshot().unwrap().digest().unwrap()
    };
    // Files that are not shards are left alone.
    std::fs::write(path.join("partition-01.redb"), b"not a shard").unwrap();
    let shards = Shards::open(&path, Layout::PerPartition, options()).unwrap();
    assert_eq!(
        shards.offsets().unwrap(),
        BTreeMap::from([(0, 4), (1, 5), (7, 1)])
    );
    assert_eq!(shards.snapshot().unwrap().digest().unwrap(), digest);
    assert_eq!(
        shards.get(b"c", Some(7)).unwrap().as_deref(),
        Some(&b"3"[..])
    );
    assert_eq!(
        shards.get(b"c", Some(0)).unwrap().as_deref(),
        Some(&b"3"[..])
    );
    assert_eq!(
        shards.get(b"c", Some(9)).unwrap().as_deref(),
        Some(&b"3"[..])
    );
    assert_eq!(shards.get(b"x", Some(0)).unwrap(), None);
}

/// A shared view is exactly the view file of before: a file written by a
/// `View` opens as one, with its rows and offsets.
#[test]
fn a_shared_view_is_the_view_file_of_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    {
        let view = View::open_with(&path, options()).unwrap();
        view.commit(0, 3, &writes(&[("a", Some("1"))]), false)
            .unwrap();
        view.commit(1, 7, &writes(&[("b", Some("2"))]), false)
            .unwrap();
    }
    let shards = Shards::open(&path, Layout::Shared, options()).unwrap();
    assert_eq!(shards.layout(), Layout::Shared);
    assert_eq!(shards.offsets().unwrap(), BTreeMap::from([(0, 3), (1, 7)]));
    assert_eq!(
        shards.get(b"b", Some(0)).unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert!(Arc::ptr_eq(
        &shards.shard(0).unwrap(),
        &shards.shard(5).unwrap()
    ));
    shards
        .commit(2, 1, &writes(&[("c", Some("3"))]), false)
        .unwrap();
    shards.sync_if_dirty().unwrap();
    drop(shards);
    let view = View::open_with(&path, options()).unwrap();
    assert_eq!(
        view.offsets().unwrap(),
        BTreeMap::from([(0, 3), (1, 7), (2, 1)])
    );
}

/// A crash of one shard loses that shard's buffered commits, rows with
/// their offsets, and nothing of the others.
#[test]
fn a_crash_of_one_shard_loses_only_its_buffered_commits() {
    let dir = tempfile::tempdir().unwrap();
    {
        let shards = Shards::open(dir.path(), Layout::PerPartition, options()).unwrap();
        shards
            .commit(0, 1, &writes(&[("a", Some("1"))]), false)
            .unwrap();
        shards
            .commit(1, 1, &writes(&[("b", Some("1"))]), false)
            .unwrap();
        shards.sync().unwrap();
        shards
            .commit(0, 2, &writes(&[("a", Some("2"))]), false)
            .unwrap();
        shards
            .commit(1, 2, &writes(&[("b", Some("2")), ("c", Some("2"))]), false)
            .unwrap();
        shards.shard(1).unwrap().lose_buffer();
    }
    let shards = Shards::open(dir.path(), Layout::PerPartition, options()).unwrap();
    assert_eq!(shards.offsets().unwrap(), BTreeMap::from([(0, 2), (1, 1)]));
    assert_eq!(
        shards.get(b"a", Some(0)).unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(
        shards.get(b"b", Some(1)).unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(shards.get(b"c", Some(1)).unwrap(), None);
}

/// Two partitions adding one key at the same moment, over and over: at
/// least one of the two commits is always refused, never a silent
/// duplicate, whatever the interleaving and whether the rows are in the
/// buffers or the files.
#[test]
fn two_shards_adding_one_key_at_once_never_both_succeed() {
    const OWN_KEYS: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    for write_buffer_bytes in [1 << 30, 0] {
        let path = dir.path().join(format!("view-{write_buffer_bytes}"));
        let options = ViewOptions {
            write_buffer_bytes,
            ..options()
        };
        let shards = Arc::new(Shards::open(&path, Layout::PerPartition, options).unwrap());
        let rounds = if write_buffer_bytes == 0 { 30 } else { 200 };
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2u32)
            .map(|partition| {
                let (shards, barrier) = (Arc::clone(&shards), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let mut refused = Vec::new();
                    for round in 0..rounds {
                        // Keys of its own around the shared one, so that
                        // the two commits and checks overlap in time.
                        let mut w: Writes = (0..OWN_KEYS)
                            .map(|i| {
                                (
                                    format!("p{partition}/{round}/{i}").into_bytes(),
                                    Some(vec![1]),
                                )
                            })
                            .collect();
                        w.insert(format!("k{round}").into_bytes(), Some(b"x".to_vec()));
                        barrier.wait();
                        match shards.commit(partition, round + 1, &w, false) {
                            Ok(()) => {}
                            Err(StoreError::Conflict { .. }) => refused.push(round),
                            Err(e) => panic!("{e}"),
                        }
                    }
                    refused
                })
            })
            .collect();
        let refused: Vec<Vec<u64>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for round in 0..rounds {
            assert!(
                refused.iter().any(|r| r.contains(&round)),
                "round {round}: both commits of k{round} succeeded"
            );
        }
        // Refused batches are undone: no key is left in two shards.
        shards.snapshot().unwrap().digest().unwrap();
    }
}

/// The host shares one `Shards` between the threads of a version.
#[test]
fn shards_are_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Shards>();
    shared::<Layout>();
}

#[test]
fn only_canonical_shard_names_are_shards() {
    assert_eq!(shard_of("partition-0.redb"), Some(0));
    assert_eq!(shard_of("partition-12.redb"), Some(12));
    for name in [
        "partition-01.redb",
        "partition-1.redb.new",
        "partition-.redb",
        "x.redb",
    ] {
        assert_eq!(shard_of(name), None, "{name}");
    }
}

/// `sync_if_dirty` makes the buffered commits of every shard durable, so a
/// crash after it loses nothing.
#[test]
fn sync_if_dirty_reaches_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    {
        let shards = Shards::open(dir.path(), Layout::PerPartition, options()).unwrap();
        for partition in 0..3 {
            let key = format!("k{partition}");
            shards
                .commit(partition, 5, &writes(&[(&key, Some("v"))]), false)
                .unwrap();
        }
        shards.sync_if_dirty().unwrap();
        for partition in 0..3 {
            shards.shard(partition).unwrap().lose_buffer();
        }
    }
    let shards = Shards::open(dir.path(), Layout::PerPartition, options()).unwrap();
    assert_eq!(
        shards.offsets().unwrap(),
        BTreeMap::from([(0, 5), (1, 5), (2, 5)])
    );
    assert_eq!(shards.snapshot().unwrap().len().unwrap(), 3);
}

/// Threads meeting a new partition at once all get its one shard.
#[test]
fn a_new_shard_is_created_once_under_contention() {
    let dir = tempfile::tempdir().unwrap();
    let shards = Arc::new(Shards::open(dir.path(), Layout::PerPartition, options()).unwrap());
    let barrier = Arc::new(Barrier::new(4));
    let views: Vec<Arc<View>> = (0..4)
        .map(|_| {
            let (shards, barrier) = (Arc::clone(&shards), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                shards.shard(3).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(views.iter().all(|v| Arc::ptr_eq(v, &views[0])));
    assert_eq!(views[0].path(), dir.path().join("partition-3.redb"));
}
