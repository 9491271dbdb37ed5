//! Tests of requests that span partitions or carry an id: a request cut by a
//! crash in any shape leaves nothing after open, the request journal stays
//! bounded, a request id is stored once (also across reopen), and a damaged
//! record the journal proves was acknowledged is refused, not cut.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::TempDir;

use super::*;

const TOPIC: &str = "t";

fn options() -> LogOptions {
    LogOptions {
        fsync: false,
        ..LogOptions::default()
    }
}

fn rec(value: &str) -> NewRecord {
    NewRecord {
        timestamp: 1,
        key: None,
        value: value.as_bytes().to_vec(),
        headers: Vec::new(),
    }
}

/// A request of `per` records in each of `partitions`, values `name-p-i`.
fn request(name: &str, partitions: &[u32], per: usize) -> Vec<(u32, NewRecord)> {
    partitions
        .iter()
        .flat_map(|&p| (0..per).map(move |i| (p, rec(&format!("{name}-{p}-{i}")))))
        .collect()
}

fn tag(id: &str, fingerprint: u8) -> RequestTag {
    RequestTag {
        id: id.to_owned(),
        fingerprint: [fingerprint; 32],
    }
}

fn values(log: &EmbeddedLog, partition: u32) -> Vec<String> {
    let mut reader = log.reader(TOPIC, partition, 0).unwrap();
    let mut out = Vec::new();
    while reader.read_batch(100, usize::MAX, &mut out).unwrap() > 0 {}
    out.iter()
        .map(|r| String::from_utf8(r.value.clone()).unwrap())
        .collect()
}

fn segment(dir: &Path, partition: u32) -> PathBuf {
    dir.join(TOPIC)
        .join(partition.to_string())
        .join("00000000000000000000.seg")
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// How a crash left the second request's records in one partition.
#[derive(Debug, Clone, Copy)]
enum Left {
    All,
    None,
    /// Part of its records, the last one cut mid-record.
    Torn,
}

#[test]
fn a_request_cut_by_a_crash_in_any_shape_leaves_nothing_after_open() {
    const PARTS: [u32; 3] = [0, 1, 2];
    let base = TempDir::new().unwrap();
    let (after_a, after_b) = {
        let log = EmbeddedLog::open(base.path(), options()).unwrap();
        log.create_topic(TOPIC, 3).unwrap();
        log.append(TOPIC, request("a", &PARTS, 2)).unwrap();
        let after_a: Vec<u64> = PARTS
            .iter()
            .map(|&p| len(&segment(base.path(), p)))
            .collect();
        log.append(TOPIC, request("b", &PARTS, 3)).unwrap();
        let after_b: Vec<u64> = PARTS
            .iter()
            .map(|&p| len(&segment(base.path(), p)))
            .collect();
        (after_a, after_b)
    };
    let shapes = [Left::All, Left::None, Left::Torn];
    let mut tried = 0;
    for s0 in shapes {
        for s1 in shapes {
            for s2 in shapes {
                let shape = [s0, s1, s2];
                let dir = TempDir::new().unwrap();
                copy_dir(base.path(), dir.path());
                for p in PARTS {
                    let i = p as usize;
                    match shape[i] {
                        Left::All => {}
                        Left::None => set_len(&segment(dir.path(), p), after_a[i]),
                        // Two of three records and half of the third.
                        Left::Torn => set_len(
                            &segment(dir.path(), p),
                            after_a[i] + (after_b[i] - after_a[i]) * 5 / 6,
                        ),
                    }
                }
                let complete = shape.iter().all(|s| matches!(s, Left::All));
                let log = EmbeddedLog::open(dir.path(), options()).unwrap();
                for p in PARTS {
                    let mut want: Vec<String> = (0..2).map(|i| format!("a-{p}-{i}")).collect();
                    if complete {
                        want.extend((0..3).map(|i| format!("b-{p}-{i}")));
                    }
                    assert_eq!(values(&log, p), want, "shape {shape:?}, partition {p}");
                }
                // The undone request is forgotten: a later one at the same
                // offsets survives the next open.
                log.append(TOPIC, request("c", &PARTS, 1)).unwrap();
                drop(log);
                let log = EmbeddedLog::open(dir.path(), options()).unwrap();
                for p in PARTS {
                    let got = values(&log, p);
                    assert_eq!(got.last().unwrap(), &format!("c-{p}-0"), "shape {shape:?}");
                    assert_eq!(got.len(), if complete { 6 } else { 3 }, "shape {shape:?}");
                }
                tried += 1;
            }
        }
    }
    assert_eq!(tried, 27);
}

#[test]
fn a_crash_while_the_intent_is_written_leaves_nothing() {
    let dir = TempDir::new().unwrap();
    let journal = dir.path().join(TOPIC).join(journal::JOURNAL_FILE);
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    log.create_topic(TOPIC, 2).unwrap();
    log.append(TOPIC, request("a", &[0, 1], 1)).unwrap();
    let journal_len = len(&journal);
    let lens = [len(&segment(dir.path(), 0)), len(&segment(dir.path(), 1))];
    log.append(TOPIC, request("b", &[0, 1], 1)).unwrap();
    drop(log);
    // The intent half written, none of its records.
    set_len(&journal, journal_len + 5);
    set_len(&segment(dir.path(), 0), lens[0]);
    set_len(&segment(dir.path(), 1), lens[1]);
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    assert_eq!(values(&log, 0), ["a-0-0"]);
    assert_eq!(values(&log, 1), ["a-1-0"]);
}

#[test]
fn a_retried_request_id_is_stored_once_also_after_reopen() {
    let dir = TempDir::new().unwrap();
    let first = {
        let log = EmbeddedLog::open(dir.path(), options()).unwrap();
        log.create_topic(TOPIC, 2).unwrap();
        let first = log
            .append_request(TOPIC, request("a", &[0, 1], 2), Some(&tag("r1", 1)))
            .unwrap();
        assert!(!first.duplicate);
        let again = log
            .append_request(TOPIC, request("a", &[0, 1], 2), Some(&tag("r1", 1)))
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(format!("{:?}", again.ranges), format!("{:?}", first.ranges));
        // The same id with other events is refused and stores nothing.
        let reused = log.append_request(TOPIC, request("x", &[0], 1), Some(&tag("r1", 2)));
        assert!(
            matches!(reused, Err(LogError::RequestIdReused { .. })),
            "{reused:?}"
        );
        // A single-partition request with an id is remembered too.
        log.append_request(TOPIC, request("s", &[1], 1), Some(&tag("r2", 3)))
            .unwrap();
        assert_eq!(log.end_offsets(TOPIC).unwrap(), [2, 3]);
        first
    };
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    let again = log
        .append_request(TOPIC, request("a", &[0, 1], 2), Some(&tag("r1", 1)))
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(format!("{:?}", again.ranges), format!("{:?}", first.ranges));
    let single = log
        .append_request(TOPIC, request("s", &[1], 1), Some(&tag("r2", 3)))
        .unwrap();
    assert!(single.duplicate);
    assert_eq!(log.end_offsets(TOPIC).unwrap(), [2, 3]);
    assert_eq!(values(&log, 0), ["a-0-0", "a-0-1"]);
    let bad = log.append_request(TOPIC, request("a", &[0], 1), Some(&tag("has space", 1)));
    assert!(
        matches!(bad, Err(LogError::InvalidRequestId { .. })),
        "{bad:?}"
    );
}

#[test]
fn an_id_in_flight_gets_a_retryable_error_then_the_first_outcome() {
    let dir = TempDir::new().unwrap();
    let log = Arc::new(EmbeddedLog::open(dir.path(), options()).unwrap());
    log.create_topic(TOPIC, 2).unwrap();
    let topic = log.get(TOPIC).unwrap();
    let held = topic.partitions[0].writer.lock();
    let first = {
        let log = log.clone();
        std::thread::spawn(move || {
            log.append_request(TOPIC, request("a", &[0, 1], 1), Some(&tag("r", 1)))
        })
    };
    while !topic.journal.lock().is_in_flight("r") {
        std::thread::yield_now();
    }
    let second = log.append_request(TOPIC, request("a", &[0, 1], 1), Some(&tag("r", 1)));
    assert!(
        matches!(second, Err(LogError::RequestInFlight { .. })),
        "{second:?}"
    );
    drop(held);
    let first = first.join().unwrap().unwrap();
    assert!(!first.duplicate);
    let retry = log
        .append_request(TOPIC, request("a", &[0, 1], 1), Some(&tag("r", 1)))
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(log.end_offsets(TOPIC).unwrap(), [1, 1]);
}

#[test]
fn the_journal_stays_bounded_and_keeps_the_most_recent_ids() {
    let dir = TempDir::new().unwrap();
    let opts = LogOptions {
        request_ids_kept: 5,
        ..options()
    };
    let journal = dir.path().join(TOPIC).join(journal::JOURNAL_FILE);
    let log = EmbeddedLog::open(dir.path(), opts.clone()).unwrap();
    log.create_topic(TOPIC, 2).unwrap();
    let mut biggest = 0;
    for i in 0..3000 {
        let id = format!("req-{i}");
        log.append_request(TOPIC, request("a", &[0, 1], 1), Some(&tag(&id, 1)))
            .unwrap();
        biggest = biggest.max(len(&journal));
    }
    // Compacted every ~1024 entries of about 100 bytes (3000 would be 300 KB).
    assert!(biggest < 1100 * 110, "the journal grew to {biggest} bytes");
    for i in 2995..3000 {
        let id = format!("req-{i}");
        let again = log
            .append_request(TOPIC, request("a", &[0, 1], 1), Some(&tag(&id, 1)))
            .unwrap();
        assert!(again.duplicate, "{id}");
        assert_eq!(again.ranges[0].first_offset, i);
    }
    drop(log);
    let log = EmbeddedLog::open(dir.path(), opts).unwrap();
    // Compacted on open: the floor and the five ids.
    assert!(len(&journal) < 1000, "{} bytes", len(&journal));
    for i in 2995..3000 {
        let id = format!("req-{i}");
        let again = log
            .append_request(TOPIC, request("a", &[0, 1], 1), Some(&tag(&id, 1)))
            .unwrap();
        assert!(again.duplicate, "{id} after reopen");
    }
    // An id older than the bound is forgotten: stored again.
    let old = log
        .append_request(TOPIC, request("a", &[0, 1], 1), Some(&tag("req-0", 1)))
        .unwrap();
    assert!(!old.duplicate);
    assert_eq!(log.end_offsets(TOPIC).unwrap(), [3001, 3001]);
}

#[test]
fn a_topic_without_journal_opens_as_before_and_single_appends_write_none() {
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    log.create_topic(TOPIC, 2).unwrap();
    log.append(TOPIC, request("a", &[1], 3)).unwrap();
    drop(log);
    let journal = dir.path().join(TOPIC).join(journal::JOURNAL_FILE);
    assert!(!journal.exists());
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    assert_eq!(values(&log, 1), ["a-1-0", "a-1-1", "a-1-2"]);
    assert!(!journal.exists());
}

/// Flips one byte of the value of the last record of `path`.
fn flip_last_byte(path: &Path) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let end = f.seek(SeekFrom::End(0)).unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(end - 3)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(end - 3)).unwrap();
    f.write_all(&[b[0] ^ 0x40]).unwrap();
}

fn expect_refused(dir: &Path) -> String {
    match EmbeddedLog::open(dir, options()) {
        Err(e @ LogError::Corrupt { .. }) => e.to_string(),
        other => panic!("expected the log to be refused, got {other:?}"),
    }
}

#[test]
fn a_flipped_byte_in_an_acknowledged_last_record_is_refused_not_cut() {
    // A later request's intent proves the record was acknowledged.
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    log.create_topic(TOPIC, 2).unwrap();
    log.append(TOPIC, request("a", &[0, 1], 2)).unwrap();
    let after_a = len(&segment(dir.path(), 0));
    log.append(TOPIC, request("b", &[0, 1], 2)).unwrap();
    drop(log);
    // The second request never reached partition 0, and the first one's
    // last record there rotted.
    set_len(&segment(dir.path(), 0), after_a);
    flip_last_byte(&segment(dir.path(), 0));
    let message = expect_refused(dir.path());
    assert!(
        message.contains("acknowledged") && message.contains("not a torn write"),
        "{message}"
    );
    assert_eq!(len(&segment(dir.path(), 0)), after_a, "nothing was cut");

    // The journal's floor, written when the log was opened, proves it too.
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    log.create_topic(TOPIC, 2).unwrap();
    log.append(TOPIC, request("a", &[0, 1], 2)).unwrap();
    drop(log);
    drop(EmbeddedLog::open(dir.path(), options()).unwrap());
    flip_last_byte(&segment(dir.path(), 1));
    let message = expect_refused(dir.path());
    assert!(message.contains("offset 1"), "{message}");

    // The newest append cannot be told from a torn write: it is cut, and
    // with it the rest of its request.
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    log.create_topic(TOPIC, 2).unwrap();
    log.append(TOPIC, request("a", &[0, 1], 2)).unwrap();
    drop(log);
    flip_last_byte(&segment(dir.path(), 1));
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    assert!(values(&log, 0).is_empty() && values(&log, 1).is_empty());
}
