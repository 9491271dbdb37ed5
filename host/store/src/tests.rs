//! Tests of the view store: commits, snapshots, the write buffer and the
//! on-disk format.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use super::*;
use redb::ReadableTableMetadata as _;

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

fn options(write_buffer_bytes: usize) -> ViewOptions {
    ViewOptions {
        sync_interval: Duration::from_secs(3600),
        write_buffer_bytes,
        cache_bytes: 1 << 20,
        row_cache_bytes: 1 << 20,
    }
}

/// Buffered commits are lost by a crash whole, rows with their offsets: the
/// file holds exactly the commits written before, so the worker resumes
/// from the first event the file has not seen.
#[test]
fn a_crash_loses_buffered_rows_and_their_offsets_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    {
        let view = View::open_with(&path, options(1 << 30)).unwrap();
        view.commit(0, 1, &writes(&[("a", Some("1"))]), false)
            .unwrap();
        view.sync().unwrap();
        view.commit(0, 2, &writes(&[("a", Some("2")), ("b", Some("x"))]), false)
            .unwrap();
        // Visible before it is in the file.
        assert_eq!(view.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(view.offsets().unwrap()[&0], 2);
        view.lose_buffer();
    }
    let view = View::open_with(&path, options(1 << 30)).unwrap();
    assert_eq!(view.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(view.get(b"b").unwrap(), None);
    assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 1)]));
}

/// A full buffer is written to the file without a sync, and a view closed
/// in an orderly way keeps what it buffered.
#[test]
fn a_full_buffer_reaches_the_file_and_a_closed_view_keeps_its_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    {
        let view = View::open_with(&path, options(100)).unwrap();
        // Full at the limit of what the buffer borrows from the row cache.
        let full = 100 * WRITE_BUFFER_BORROW_LIMIT;
        view.commit(0, 1, &writes(&[("k", Some(&"v".repeat(full)))]), false)
            .unwrap();
        view.lose_buffer();
    }
    {
        let view = View::open_with(&path, options(1 << 30)).unwrap();
        assert_eq!(view.offsets().unwrap()[&0], 1, "written when full");
        view.commit(0, 2, &writes(&[("k", None)]), false).unwrap();
    }
    let view = View::open_with(&path, options(1 << 30)).unwrap();
    assert_eq!(view.get(b"k").unwrap(), None);
    assert_eq!(view.offsets().unwrap()[&0], 2);
}

/// A small deterministic generator for the equivalence test.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Reads through the write buffer (gets, scans with prefixes and cursors,
/// digests, counts, offsets) equal reads of a view that writes every commit
/// to the file, over random upserts and deletes, while the buffer fills,
/// is written, and fills again.
#[test]
fn buffered_reads_equal_unbuffered_reads() {
    let dir = tempfile::tempdir().unwrap();
    let plain = View::open_with(&dir.path().join("plain.redb"), options(0)).unwrap();
    // 500 bytes, so up to 2,000 with the row cache's room: full every few
    // batches.
    let buffered = View::open_with(&dir.path().join("buf.redb"), options(500)).unwrap();
    let mut rng = 7u64;
    let mut written_when_full = 0;
    for batch in 0..60u64 {
        let mut w = Writes::new();
        for _ in 0..(next(&mut rng) % 12) {
            let key = format!(
                "{}/{}",
                ["a", "b", "c"][(next(&mut rng) % 3) as usize],
                next(&mut rng) % 40
            );
            let value =
                (!next(&mut rng).is_multiple_of(4)).then(|| format!("v{batch}").into_bytes());
            w.insert(key.into_bytes(), value);
        }
        let partition = (batch % 2) as u32;
        plain.commit(partition, batch, &w, false).unwrap();
        let in_file = rows_in_file(&buffered);
        buffered.commit(partition, batch, &w, false).unwrap();
        if rows_in_file(&buffered) != in_file {
            written_when_full += 1;
        }
        // A snapshot held across commits stays as of its moment.
        let held = buffered.snapshot().unwrap();
        let before = held.digest().unwrap();
        let (p, b) = (plain.snapshot().unwrap(), buffered.snapshot().unwrap());
        assert_eq!(p.digest().unwrap(), b.digest().unwrap(), "batch {batch}");
        assert_eq!(p.len().unwrap(), b.len().unwrap());
        assert_eq!(p.offsets().unwrap(), b.offsets().unwrap());
        for prefix in ["", "a/", "b/1", "d"] {
            for after in [None, Some("a/2"), Some("b/15"), Some("z")] {
                let after = after.map(str::as_bytes);
                assert_eq!(
                    p.scan(prefix.as_bytes(), after, 7).unwrap(),
                    b.scan(prefix.as_bytes(), after, 7).unwrap(),
                    "batch {batch} prefix {prefix:?} after {after:?}"
                );
            }
        }
        for i in 0..40 {
            let key = format!("c/{i}");
            assert_eq!(
                plain.get(key.as_bytes()).unwrap(),
                buffered.get(key.as_bytes()).unwrap()
            );
            assert_eq!(
                p.get(key.as_bytes()).unwrap(),
                b.get(key.as_bytes()).unwrap()
            );
        }
        buffered
            .commit(partition, batch, &Writes::new(), batch.is_multiple_of(17))
            .unwrap();
        assert_eq!(held.digest().unwrap(), before);
    }
    assert!(
        written_when_full >= 2,
        "the buffer was written {written_when_full} times when full"
    );
}

/// A view file of format 1, as kappa wrote it before the write buffer,
/// frozen in the repository: it still opens with its rows and offsets.
#[test]
fn a_view_of_format_1_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/view-format-1.redb"
    );
    std::fs::copy(fixture, &path).unwrap();
    let view = View::open(&path, Duration::ZERO).unwrap();
    let snap = view.snapshot().unwrap();
    assert_eq!(snap.offsets().unwrap(), BTreeMap::from([(0, 3), (1, 7)]));
    assert_eq!(
        snap.scan(b"", None, 10).unwrap(),
        [
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"3".to_vec())
        ]
    );
}

/// Rows of the file itself, without the buffer.
fn rows_in_file(view: &View) -> u64 {
    let txn = view.core.db.begin_read().unwrap();
    txn.open_table(ROWS).unwrap().len().unwrap()
}

/// The buffer keeps each commit's rows as a run, and a key written by many
/// commits is counted once per run until the runs merge: merged as they
/// grow, they keep a view whose distinct rows fit in the buffer from ever
/// being written to the file for its repeated writes, and one whose
/// distinct rows do not fit is.
#[test]
fn repeated_writes_to_a_view_that_fits_do_not_fill_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    // `commits` commits each writing keys `0..keys` (38 bytes counted a
    // row: 6 of key, 8 of value, 24 of slot) into a view of a 2,000-byte
    // buffer.
    let fill = |name: &str, keys: u64, commits: u64| {
        let options = ViewOptions {
            sync_interval: Duration::from_secs(3600),
            write_buffer_bytes: 2_000,
            // No cache to borrow room from: the buffer's own bound.
            row_cache_bytes: 0,
            ..ViewOptions::default()
        };
        let view = View::open_with(&dir.path().join(name), options).unwrap();
        for n in 0..commits {
            let batch: Writes = (0..keys)
                .map(|k| {
                    (
                        format!("key-{k:02}").into_bytes(),
                        Some(format!("{n:08}").into_bytes()),
                    )
                })
                .collect();
            view.commit(0, n + 1, &batch, false).unwrap();
        }
        view
    };
    let view = fill("fits.redb", 5, 200);
    assert_eq!(rows_in_file(&view), 0, "the buffer was written");
    assert_eq!(view.get(b"key-03").unwrap(), Some(b"00000199".to_vec()));
    // Sixty rows take more than all of it: written once full.
    let view = fill("spills.redb", 60, 20);
    assert_eq!(rows_in_file(&view), 60);
    assert_eq!(view.get(b"key-07").unwrap(), Some(b"00000019".to_vec()));
}

/// Commits `n` batches of 1,000 new rows of 12-byte keys and 40-byte values
/// into a view of a 1 MiB write buffer and a row cache of
/// `row_cache_bytes`, and returns after how many commits the buffer was
/// first written to the file.
fn commits_before_the_first_write(row_cache_bytes: usize, n: u64) -> Option<u64> {
    let dir = tempfile::tempdir().unwrap();
    let options = ViewOptions {
        sync_interval: Duration::from_secs(3600),
        write_buffer_bytes: 1 << 20,
        row_cache_bytes,
        ..ViewOptions::default()
    };
    let view = View::open_with(&dir.path().join("v.redb"), options).unwrap();
    for i in 0..n {
        let batch: Writes = (i * 1_000..(i + 1) * 1_000)
            .map(|k| (format!("key-{k:08}").into_bytes(), Some(vec![b'v'; 40])))
            .collect();
        view.commit(0, i + 1, &batch, false).unwrap();
        if rows_in_file(&view) > 0 {
            assert_eq!(rows_in_file(&view), (i + 1) * 1_000, "written whole");
            return Some(i + 1);
        }
    }
    None
}

/// A buffered row costs its key, its value, its slot (24 bytes) and its
/// share of its run's filter (a word of 8 bytes per 6 rows): with no row
/// cache, a buffer of 1 MiB takes 13 commits of 1,000 such rows (77,336
/// bytes a commit, 1,005,368 in all) and is written by the 14th
/// (1,082,704).
#[test]
fn a_buffered_row_costs_its_bytes_its_slot_and_its_filter_bits() {
    assert_eq!(commits_before_the_first_write(0, 20), Some(14));
}

/// The buffer borrows the row cache's unused room, so that the two never
/// hold more than both bounds. A row cache of 4 MiB holds the first 16,384
/// of those rows in its complete table (64 bytes a row in a vector of room
/// for 16,384, 8 a slot of 32,768, and each 40-byte value's allocation at
/// 40 + 5 + 24 = 69), whose next growth would pass the bound; from there
/// the evicting cache weighs each row at 173 bytes (its entry, 104, and the
/// 69), so after `n` commits it leaves 4,194,304 - 173,000 n unused, and
/// the buffer (77,336 n) is full once 77,336 n >= 1,048,576 + 4,194,304 -
/// 173,000 n: at the 21st commit (20 make 5,006,720 of the 5,242,880 that
/// needs), not the 14th. With a cache far larger than the
/// view, the buffer stops at four times its bound: 4,194,304 bytes, reached
/// by the 55th commit (4,253,480; 54 make 4,176,144).
#[test]
fn the_buffer_borrows_the_row_caches_unused_room_up_to_four_times_its_bound() {
    assert_eq!(commits_before_the_first_write(4 << 20, 30), Some(21));
    assert_eq!(commits_before_the_first_write(256 << 20, 80), Some(55));
}

#[test]
fn the_buffers_bound_is_its_own_plus_the_caches_unused_room_up_to_the_limit() {
    let options = |write_buffer_bytes, row_cache_bytes| ViewOptions {
        write_buffer_bytes,
        row_cache_bytes,
        ..ViewOptions::default()
    };
    // No cache, or none configured: the buffer's own bound.
    assert_eq!(options(1_000, 0).buffer_bound(None), 1_000);
    assert_eq!(options(1_000, 5_000).buffer_bound(None), 1_000);
    // Room unused in the cache, up to four times the buffer's bound.
    assert_eq!(options(1_000, 5_000).buffer_bound(Some(4_000)), 2_000);
    assert_eq!(options(1_000, 5_000).buffer_bound(Some(0)), 4_000);
    // A full cache (or one over its bound until it evicts) lends nothing.
    assert_eq!(options(1_000, 5_000).buffer_bound(Some(5_000)), 1_000);
    assert_eq!(options(1_000, 5_000).buffer_bound(Some(9_000)), 1_000);
    // Zero still writes every commit.
    assert_eq!(options(0, 5_000).buffer_bound(Some(0)), 0);
}
