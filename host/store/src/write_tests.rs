//! Tests of writing a full buffer in the background: reads meanwhile, the
//! bound of two buffers, sync, crashes and failures of the write.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::runs::Probe;
use crate::{StoreError, View, ViewOptions, Writes};

fn writes(pairs: &[(&str, Option<&str>)]) -> Writes {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
        .collect()
}

/// A buffer of 1,000 bytes, filled by one row of `BIG` alone; rows of a
/// few bytes leave room for a dozen.
const BUFFER: usize = 1_000;

/// A value that fills the buffer in one commit: the buffer borrows the row
/// cache's unused room (`ViewOptions::buffer_bound`), up to its limit.
const BIG: usize = BUFFER * crate::WRITE_BUFFER_BORROW_LIMIT;

fn big() -> String {
    "v".repeat(BIG)
}

/// A view writing a full buffer in the background.
fn open(path: &Path) -> View {
    View::open_with(
        path,
        ViewOptions {
            sync_interval: Duration::from_secs(3600),
            write_buffer_bytes: BUFFER,
            cache_bytes: 1 << 20,
            row_cache_bytes: 1 << 20,
        },
    )
    .unwrap()
    .with_background_writes(true)
}

fn text(view: &View, key: &str) -> Option<String> {
    view.get(key.as_bytes())
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

/// While a full buffer is being written (held before its commit), gets and
/// snapshots see every commit: the fresh buffer over the one being written
/// over the file; a snapshot taken then stays as of its moment.
#[test]
fn reads_during_a_background_write_see_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    let big = big();
    {
        let view = open(&path);
        view.commit(0, 1, &writes(&[("a", Some("1")), ("d", Some("x"))]), false)
            .unwrap();
        view.sync().unwrap();
        view.hooks().hold();
        view.commit(0, 2, &writes(&[("b", Some(&big)), ("d", None)]), false)
            .unwrap();
        view.hooks().wait_until_held();
        assert_eq!(text(&view, "b").as_deref(), Some(big.as_str()));
        assert_eq!(text(&view, "d"), None, "a deletion being written");
        assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 2)]));
        view.commit(1, 5, &writes(&[("a", Some("2")), ("c", Some("3"))]), false)
            .unwrap();
        let held = view.snapshot().unwrap();
        let rows = |snap: &crate::Snapshot| {
            snap.scan(b"", None, 10)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (String::from_utf8(k).unwrap(), v.len()))
                .collect::<Vec<_>>()
        };
        let expected = vec![
            ("a".to_owned(), 1),
            ("b".to_owned(), BIG),
            ("c".to_owned(), 1),
        ];
        assert_eq!(rows(&held), expected);
        assert_eq!(held.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(held.offsets().unwrap(), BTreeMap::from([(0, 2), (1, 5)]));
        view.hooks().release();
        view.sync().unwrap();
        view.commit(1, 6, &writes(&[("c", None)]), false).unwrap();
        assert_eq!(rows(&held), expected, "the snapshot stays as of its moment");
        assert_eq!(held.offsets().unwrap(), BTreeMap::from([(0, 2), (1, 5)]));
    }
    let view = open(&path);
    assert_eq!(text(&view, "a").as_deref(), Some("2"));
    assert_eq!(text(&view, "b").as_deref(), Some(big.as_str()));
    assert_eq!(text(&view, "c"), None);
    assert_eq!(text(&view, "d"), None);
    assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 2), (1, 6)]));
}

/// One buffer is written at a time: a commit that fills the next buffer
/// while the last is still being written waits for that write, so a view
/// holds at most two buffers.
#[test]
fn a_commit_filling_the_next_buffer_waits_for_the_write_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let view = open(&dir.path().join("v.redb"));
    let big = big();
    view.hooks().hold();
    view.commit(0, 1, &writes(&[("a", Some(&big))]), false)
        .unwrap();
    view.hooks().wait_until_held();
    std::thread::scope(|s| {
        let second = s.spawn(|| view.commit(0, 2, &writes(&[("b", Some(&big))]), false));
        // Its rows are buffered before it looks at the write in progress.
        while view
            .core
            .buffer
            .lock()
            .active
            .get(Probe::new(b"b"))
            .is_none()
        {
            std::thread::yield_now();
        }
        {
            let buffer = view.core.buffer.lock();
            let writing = buffer.writing.as_ref().unwrap();
            assert!(
                writing.get(Probe::new(b"a")).is_some() && writing.get(Probe::new(b"b")).is_none()
            );
        }
        // The first write is held, so the second commit cannot have returned.
        assert!(!second.is_finished());
        assert_eq!(text(&view, "b").as_deref(), Some(big.as_str()));
        view.hooks().release();
        second.join().unwrap().unwrap();
    });
    view.sync().unwrap();
    assert!(view.core.buffer.lock().writing.is_none());
    assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 2)]));
}

/// `sync` waits for the write in progress, then writes the rest, durably: a
/// copy of the file taken when it returns (what a crash would leave) holds
/// every commit. The buffer's own write was not durable (the sync interval
/// is an hour), so only the sync's durable commit can have made it so.
#[test]
fn sync_waits_for_the_background_write_and_leaves_everything_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    let copy = dir.path().join("copy.redb");
    let big = big();
    let view = open(&path);
    view.commit(0, 1, &writes(&[("a", Some("1"))]), false)
        .unwrap();
    view.hooks().hold();
    view.commit(0, 2, &writes(&[("b", Some(&big))]), false)
        .unwrap();
    view.hooks().wait_until_held();
    view.commit(1, 3, &writes(&[("c", Some("3"))]), false)
        .unwrap();
    std::thread::scope(|s| {
        let sync = s.spawn(|| view.sync());
        // The write is held, so the sync cannot have returned.
        assert!(!sync.is_finished());
        view.hooks().release();
        sync.join().unwrap().unwrap();
    });
    std::fs::copy(&path, &copy).unwrap();
    let copied = open(&copy);
    assert_eq!(text(&copied, "a").as_deref(), Some("1"));
    assert_eq!(text(&copied, "b").as_deref(), Some(big.as_str()));
    assert_eq!(text(&copied, "c").as_deref(), Some("3"));
    assert_eq!(copied.offsets().unwrap(), BTreeMap::from([(0, 2), (1, 3)]));
    let commits = view.core.buffer.lock().commits;
    assert_eq!(view.core.sync.lock().durable_commits, commits, "not dirty");
}

/// A crash while a full buffer is being written (its rows in the
/// transaction, not committed) loses that buffer and the commits made since,
/// rows and offsets together: the file is as of the last write.
#[test]
fn a_crash_during_a_background_write_loses_rows_with_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    let big = big();
    {
        let view = open(&path);
        view.commit(0, 1, &writes(&[("a", Some("1"))]), false)
            .unwrap();
        view.sync().unwrap();
        view.hooks().hold();
        view.commit(0, 2, &writes(&[("a", Some("2")), ("b", Some(&big))]), false)
            .unwrap();
        view.hooks().wait_until_held();
        view.commit(1, 3, &writes(&[("c", Some("3"))]), false)
            .unwrap();
        view.lose_buffer();
    }
    let view = open(&path);
    assert_eq!(text(&view, "a").as_deref(), Some("1"));
    assert_eq!(text(&view, "b"), None);
    assert_eq!(text(&view, "c"), None);
    assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 1)]));
}

/// A background write that fails keeps its rows and offsets (readable all
/// along, older than the commits made since) and is reported by the next
/// sync, never silently; the next sync writes them.
#[test]
fn a_failed_background_write_keeps_its_rows_and_sync_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    let big = big();
    {
        let view = open(&path);
        view.hooks().hold();
        view.hooks().fail_next();
        view.commit(0, 1, &writes(&[("a", Some("1")), ("b", Some(&big))]), false)
            .unwrap();
        view.hooks().wait_until_held();
        view.commit(1, 4, &writes(&[("a", Some("2")), ("c", Some("3"))]), false)
            .unwrap();
        view.hooks().release();
        let error = view.sync().unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(&error, StoreError::Background { source, .. }
                if matches!(**source, StoreError::Db { .. })),
            "{error:?}"
        );
        assert!(message.contains("in the background failed"), "{message}");
        assert!(message.contains("injected write failure"), "{message}");
        assert_eq!(text(&view, "a").as_deref(), Some("2"), "newer commits win");
        assert_eq!(text(&view, "b").as_deref(), Some(big.as_str()));
        assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 1), (1, 4)]));
        view.sync().unwrap();
        view.lose_buffer();
    }
    let view = open(&path);
    assert_eq!(text(&view, "a").as_deref(), Some("2"));
    assert_eq!(text(&view, "b").as_deref(), Some(big.as_str()));
    assert_eq!(text(&view, "c").as_deref(), Some("3"));
    assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 1), (1, 4)]));
}

/// The failure of a background write is reported to the next commit once
/// the write has ended: the rows it kept fill the buffer, so that commit
/// waits for the write (as the commit filling the next buffer would, had the
/// write not ended). The rows are kept, and the commit after writes them
/// again.
#[test]
fn a_failed_background_write_is_reported_to_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    let big = big();
    {
        let view = open(&path);
        view.hooks().fail_next();
        view.commit(0, 1, &writes(&[("a", Some(&big))]), false)
            .unwrap();
        while !view
            .writer
            .lock()
            .as_ref()
            .is_some_and(std::thread::JoinHandle::is_finished)
        {
            std::thread::yield_now();
        }
        let error = view
            .commit(0, 2, &writes(&[("b", Some("2"))]), false)
            .unwrap_err();
        assert!(matches!(error, StoreError::Background { .. }), "{error:?}");
        assert_eq!(text(&view, "a").as_deref(), Some(big.as_str()));
        assert_eq!(text(&view, "b").as_deref(), Some("2"), "the commit applied");
        assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 2)]));
        view.hooks().hold();
        view.commit(0, 3, &writes(&[("c", Some("3"))]), false)
            .unwrap();
        view.hooks().wait_until_held();
        view.hooks().release();
        view.sync().unwrap();
        view.lose_buffer();
    }
    let view = open(&path);
    for key in ["a", "b", "c"] {
        assert!(text(&view, key).is_some(), "{key} kept");
    }
    assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 3)]));
}

/// A view dropped while its full buffer is being written waits for the write
/// and writes the rest: nothing is lost.
#[test]
fn a_view_dropped_during_a_background_write_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    let big = big();
    {
        let view = open(&path);
        view.commit(0, 1, &writes(&[("a", Some(&big))]), false)
            .unwrap();
        view.commit(0, 2, &writes(&[("b", Some("2"))]), false)
            .unwrap();
    }
    let view = open(&path);
    assert_eq!(text(&view, "a").as_deref(), Some(big.as_str()));
    assert_eq!(text(&view, "b").as_deref(), Some("2"));
    assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, 2)]));
}

/// Without background writes, the default, the commit that fills the buffer
/// writes it before it returns (a hold of background writes does not stop
/// it, and a crash right after keeps it).
#[test]
fn without_background_writes_the_filling_commit_writes_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.redb");
    for (offset, background) in [(1, None), (2, Some(false))] {
        {
            let options = ViewOptions {
                sync_interval: Duration::from_secs(3600),
                write_buffer_bytes: BUFFER,
                cache_bytes: 1 << 20,
                row_cache_bytes: 1 << 20,
            };
            let mut view = View::open_with(&path, options).unwrap();
            if let Some(background) = background {
                view = view.with_background_writes(background);
            }
            view.hooks().hold();
            view.commit(0, offset, &writes(&[("a", Some(&big()))]), false)
                .unwrap();
            assert!(view.writer.lock().is_none());
            view.lose_buffer();
        }
        let view = open(&path);
        assert_eq!(view.offsets().unwrap(), BTreeMap::from([(0, offset)]));
    }
}

/// Readers on other threads, while commits fill the buffer and it is written
/// in the background over and over, always see rows and offsets of one
/// moment: commit `i` sets `count` to `i` and adds `k<i>`, with offset `i`.
#[test]
fn concurrent_snapshots_during_background_writes_are_of_one_moment() {
    const COMMITS: u64 = 400;
    let dir = tempfile::tempdir().unwrap();
    let view = View::open_with(
        &dir.path().join("v.redb"),
        ViewOptions {
            sync_interval: Duration::from_millis(1),
            // Full every few commits.
            write_buffer_bytes: 300,
            cache_bytes: 1 << 20,
            row_cache_bytes: 1 << 20,
        },
    )
    .unwrap()
    .with_background_writes(true);
    let done = std::sync::atomic::AtomicBool::new(false);
    let read = || {
        let mut reads = 0u64;
        let mut last = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
            let snap = view.snapshot().unwrap();
            let offset = snap.offsets().unwrap().get(&0).copied().unwrap_or(0);
            let count = snap
                .get(b"count")
                .unwrap()
                .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap());
            assert_eq!(count, offset, "rows and offsets of one moment");
            assert_eq!(snap.len().unwrap(), offset + u64::from(offset > 0));
            if offset > 0 {
                assert!(
                    snap.get(format!("k{offset:04}").as_bytes())
                        .unwrap()
                        .is_some()
                );
            }
            assert!(
                snap.get(format!("k{:04}", offset + 1).as_bytes())
                    .unwrap()
                    .is_none()
            );
            assert!(offset >= last, "never back in time");
            last = offset;
            let got: u64 = text(&view, "count").map_or(0, |v| v.parse().unwrap());
            assert!(got >= offset);
            reads += 1;
        }
        reads
    };
    std::thread::scope(|s| {
        let readers = [s.spawn(read), s.spawn(read)];
        for i in 1..=COMMITS {
            let n = i.to_string();
            let key = format!("k{i:04}");
            view.commit(
                0,
                i,
                &writes(&[("count", Some(&n)), (&key, Some("x"))]),
                false,
            )
            .unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
    });
    view.sync().unwrap();
    let snap = view.snapshot().unwrap();
    assert_eq!(snap.len().unwrap(), COMMITS + 1);
    assert_eq!(snap.offsets().unwrap(), BTreeMap::from([(0, COMMITS)]));
}

/// The file's rows, read from the file itself.
fn rows_in_file(view: &View) -> BTreeMap<Vec<u8>, Vec<u8>> {
    use redb::{ReadableDatabase as _, ReadableTable as _};
    let txn = view.core.db.begin_read().unwrap();
    let table = txn.open_table(crate::ROWS).unwrap();
    table
        .iter()
        .unwrap()
        .map(|row| {
            let (key, value) = row.unwrap();
            (key.value().to_vec(), value.value().to_vec())
        })
        .collect()
}

/// A write of the buffer puts its rows past the file's last key through a
/// cursor at the file's end and the others in place, one by one: over
/// rounds whose keys reach past the file's (overwrites, deletions and new
/// keys between the file's, new keys and deletions of absent keys past its
/// end), the file holds exactly what the commits wrote.
#[test]
fn a_write_puts_new_keys_past_the_files_end_and_the_others_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open_with(
        &dir.path().join("v.redb"),
        ViewOptions {
            sync_interval: Duration::from_secs(3600),
            write_buffer_bytes: 1 << 20,
            cache_bytes: 1 << 20,
            row_cache_bytes: 0,
        },
    )
    .unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut state = 11u64;
    let mut random = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        state >> 33
    };
    let (mut below, mut past, mut absent_deleted) = (0, 0, 0);
    for round in 0..6u64 {
        let last = model.keys().next_back().cloned();
        // Keys of round r in [0, 300 (r + 1)): a third past the file's end.
        for commit in 0..4u64 {
            let mut w = Writes::new();
            for _ in 0..150 {
                let key = format!("k/{:05}", random() % (300 * (round + 1))).into_bytes();
                let value = (random() % 4 != 0).then(|| format!("{round}.{commit}").into_bytes());
                let is_past = last.as_ref().is_none_or(|last| key > *last);
                match (is_past, &value) {
                    (false, _) => below += 1,
                    (true, Some(_)) => past += 1,
                    (true, None) if !model.contains_key(&key) => absent_deleted += 1,
                    (true, None) => {}
                }
                match &value {
                    Some(v) => model.insert(key.clone(), v.clone()),
                    None => model.remove(&key),
                };
                w.insert(key, value);
            }
            view.commit(0, round * 4 + commit + 1, &w, false).unwrap();
        }
        view.sync().unwrap();
        assert_eq!(rows_in_file(&view), model, "round {round}");
    }
    assert!(below > 1_000 && past > 1_000 && absent_deleted > 100);
    drop(view);
}
