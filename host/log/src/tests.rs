//! Tests of the embedded log: behaviour, crash recovery, and the frozen
//! version-1 fixture in `tests/fixtures/log-v1/`.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test-only code: the values cast are small test inputs"
)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use super::record::{self, SEGMENT_HEADER};
use super::*;

fn fast() -> LogOptions {
    LogOptions {
        fsync: false,
        ..LogOptions::default()
    }
}

fn rec(timestamp: i64, key: Option<&[u8]>, value: &[u8], headers: &[(&str, &[u8])]) -> NewRecord {
    NewRecord {
        timestamp,
        key: key.map(<[u8]>::to_vec),
        value: value.to_vec(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
            .collect(),
    }
}

fn value_rec(value: &[u8]) -> NewRecord {
    rec(0, None, value, &[])
}

fn stored(partition: u32, offset: u64, r: &NewRecord) -> Record {
    Record {
        partition,
        offset,
        timestamp: r.timestamp,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r.headers.clone(),
    }
}

fn read_from(log: &EmbeddedLog, topic: &str, partition: u32, from: u64) -> Vec<Record> {
    let mut reader = log.reader(topic, partition, from).unwrap();
    let mut out = Vec::new();
    while reader.read_batch(7, usize::MAX, &mut out).unwrap() > 0 {}
    out
}

fn read_all(log: &EmbeddedLog, topic: &str, partition: u32) -> Vec<Record> {
    read_from(log, topic, partition, 0)
}

fn segment_files(log_dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(log_dir.join(topic).join(partition.to_string()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

fn ranges(r: &[AppendedRange]) -> Vec<(u32, u64, u64, u64)> {
    r.iter()
        .map(|r| (r.partition, r.first_offset, r.last_offset, r.count))
        .collect()
}

fn expect_corrupt(result: Result<EmbeddedLog, LogError>) -> (PathBuf, u64, String, String) {
    match result {
        Err(e @ LogError::Corrupt { .. }) => {
            let message = e.to_string();
            let LogError::Corrupt {
                file,
                position,
                reason,
            } = e
            else {
                unreachable!()
            };
            (file, position, reason, message)
        }
        Err(e) => panic!("expected a Corrupt error, got: {e}"),
        Ok(_) => panic!("expected a Corrupt error, but the log opened"),
    }
}

fn flip_byte(path: &Path, position: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

/// Frame size of `value_rec` with a value of `n` bytes.
fn frame(n: usize) -> u64 {
    (record::FRAME_HEADER_LEN + record::MIN_BODY_LEN + n) as u64
}

#[test]
fn shared_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<EmbeddedLog>();
    send::<PartitionReader>();
}

#[test]
fn roundtrip_keys_headers_and_empty_values() {
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
    let info = log.create_topic("orders", 3).unwrap();
    assert_eq!((info.name.as_str(), info.partitions), ("orders", 3));
    assert_eq!(info.end_offsets, vec![0, 0, 0]);

    let records = vec![
        (0, rec(1, None, b"plain", &[])),
        (1, rec(2, Some(b"k"), b"", &[])),
        (
            1,
            rec(3, Some(b""), b"v", &[("trace", b"abc"), ("empty", b"")]),
        ),
        (0, rec(-5, None, b"", &[("bin", b"\x00\xff")])),
        (
            2,
            rec(i64::MAX, Some(&[0; 1000]), &[7; 5000], &[("ü-name", b"x")]),
        ),
        (2, rec(i64::MIN, None, b"", &[])),
    ];
    let appended = log.append("orders", records.clone()).unwrap();
    assert_eq!(
        ranges(&appended),
        vec![(0, 0, 1, 2), (1, 0, 1, 2), (2, 0, 1, 2)]
    );
    assert_eq!(log.end_offsets("orders").unwrap(), vec![2, 2, 2]);

    for p in 0..3 {
        let expected: Vec<Record> = records
            .iter()
            .filter(|(rp, _)| *rp == p)
            .enumerate()
            .map(|(i, (_, r))| stored(p, i as u64, r))
            .collect();
        assert_eq!(read_all(&log, "orders", p), expected);
    }
}

#[test]
fn append_returns_sorted_ranges_and_keeps_order_within_a_partition() {
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
    log.create_topic("t", 3).unwrap();
    let appended = log
        .append(
            "t",
            vec![
                (2, value_rec(b"a")),
                (0, value_rec(b"b")),
                (2, value_rec(b"c")),
                (1, value_rec(b"d")),
            ],
        )
        .unwrap();
    assert_eq!(
        ranges(&appended),
        vec![(0, 0, 0, 1), (1, 0, 0, 1), (2, 0, 1, 2)]
    );
    let values: Vec<Vec<u8>> = read_all(&log, "t", 2)
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(values, vec![b"a".to_vec(), b"c".to_vec()]);
    assert_eq!(log.append("t", Vec::new()).unwrap().len(), 0);
}

#[test]
fn offsets_stay_contiguous_across_segment_rolls() {
    let dir = TempDir::new().unwrap();
    let options = LogOptions {
        segment_bytes: 200,
        ..fast()
    };
    let log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
    log.create_topic("t", 1).unwrap();
    let mut expected = Vec::new();
    for batch in [1usize, 7, 20, 22] {
        let records: Vec<(u32, NewRecord)> = (0..batch)
            .map(|_| {
                (
                    0,
                    rec(
                        expected.len() as i64,
                        None,
                        &[expected.len() as u8; 40],
                        &[],
                    ),
                )
            })
            .collect();
        let first = expected.len() as u64;
        let appended = log.append("t", records.clone()).unwrap();
        assert_eq!(
            ranges(&appended),
            vec![(0, first, first + batch as u64 - 1, batch as u64)]
        );
        for (_, r) in records {
            expected.push(stored(0, expected.len() as u64, &r));
        }
    }
    // A record bigger than a segment gets one of its own.
    let big = rec(99, None, &[1; 500], &[]);
    log.append("t", vec![(0, big.clone())]).unwrap();
    expected.push(stored(0, 50, &big));

    let files = segment_files(dir.path(), "t", 0);
    assert!(
        files.len() > 10,
        "expected many segments, got {}",
        files.len()
    );
    let mut base = 0;
    for file in &files {
        assert_eq!(
            file.file_name().unwrap().to_str().unwrap(),
            segment::file_name(base)
        );
        let len = fs::metadata(file).unwrap().len();
        assert!(
            len <= 200 || base == 50,
            "segment {} is {len} bytes",
            file.display()
        );
        base += (len - 8) / frame(40);
    }

    assert_eq!(read_all(&log, "t", 0), expected);
    for from in 0..=51u64 {
        let got = read_from(&log, "t", 0, from);
        assert_eq!(got, expected[from as usize..], "reading from {from}");
    }
    drop(log);
    let log = EmbeddedLog::open(dir.path(), options).unwrap();
    assert_eq!(read_all(&log, "t", 0), expected);
    let appended = log.append("t", vec![(0, value_rec(b"after"))]).unwrap();
    assert_eq!(ranges(&appended), vec![(0, 51, 51, 1)]);
}

#[test]
fn reader_from_middle_from_end_and_out_of_range() {
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
    log.create_topic("t", 2).unwrap();
    let records: Vec<(u32, NewRecord)> = (0..1000u32)
        .map(|i| {
            (
                0,
                rec(i64::from(i), Some(&i.to_le_bytes()), &[i as u8; 100], &[]),
            )
        })
        .collect();
    log.append("t", records.clone()).unwrap();

    // The sparse index has entries, so these readers seek rather than scan.
    let topic = log.get("t").unwrap();
    let index_len = topic.partitions[0].segments.read()[0].index.read().len();
    assert!(index_len > 20, "index has {index_len} entries");

    for from in [0u64, 1, 29, 30, 31, 499, 500, 998, 999] {
        let mut reader = log.reader("t", 0, from).unwrap();
        assert_eq!(reader.next_offset(), from);
        let mut out = Vec::new();
        assert_eq!(reader.read_batch(1, usize::MAX, &mut out).unwrap(), 1);
        assert_eq!(out[0], stored(0, from, &records[from as usize].1));
        assert_eq!(reader.next_offset(), from + 1);
    }

    // From the end: nothing yet, then whatever is appended later.
    let mut tail = log.reader("t", 0, 1000).unwrap();
    let mut out = Vec::new();
    assert_eq!(tail.read_batch(10, usize::MAX, &mut out).unwrap(), 0);
    let more = value_rec(b"later");
    log.append("t", vec![(0, more.clone())]).unwrap();
    assert_eq!(tail.read_batch(10, usize::MAX, &mut out).unwrap(), 1);
    assert_eq!(out, vec![stored(0, 1000, &more)]);

    let empty = log.reader("t", 1, 0).unwrap();
    assert_eq!(empty.next_offset(), 0);

    match log.reader("t", 0, 1002) {
        Err(LogError::OffsetOutOfRange {
            topic,
            partition: 0,
            offset: 1002,
            end: 1001,
        }) => assert_eq!(topic, "t"),
        other => panic!("unexpected: {other:?}"),
    }
    assert!(matches!(
        log.reader("t", 2, 0),
        Err(LogError::UnknownPartition {
            partition: 2,
            partitions: 2,
            ..
        })
    ));
    assert!(matches!(
        log.reader("nope", 0, 0),
        Err(LogError::UnknownTopic(_))
    ));
}

#[test]
fn read_batch_respects_record_and_byte_limits() {
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
    log.create_topic("t", 1).unwrap();
    let records: Vec<(u32, NewRecord)> = (0..10).map(|i| (0, value_rec(&[i; 100]))).collect();
    log.append("t", records).unwrap();
    let size = frame(100) as usize;

    let mut reader = log.reader("t", 0, 0).unwrap();
    let mut out = Vec::new();
    assert_eq!(reader.read_batch(0, usize::MAX, &mut out).unwrap(), 0);
    assert_eq!(reader.read_batch(3, usize::MAX, &mut out).unwrap(), 3);
    assert_eq!(reader.read_batch(100, 2 * size, &mut out).unwrap(), 2);
    assert_eq!(reader.read_batch(100, 2 * size - 1, &mut out).unwrap(), 1);
    // At least one record, even over the byte limit.
    assert_eq!(reader.read_batch(100, 1, &mut out).unwrap(), 1);
    assert_eq!(reader.next_offset(), 7);
    assert_eq!(reader.read_batch(100, usize::MAX, &mut out).unwrap(), 3);
    assert_eq!(reader.read_batch(100, usize::MAX, &mut out).unwrap(), 0);
    let offsets: Vec<u64> = out.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
}

#[test]
fn reopen_keeps_topics_records_and_index() {
    let dir = TempDir::new().unwrap();
    let options = LogOptions::default(); // with fsync
    let log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
    log.create_topic("zeta", 1).unwrap();
    log.create_topic("alpha", 2).unwrap();
    let records: Vec<(u32, NewRecord)> = (0..300u32)
        .map(|i| {
            (
                i % 2,
                rec(
                    i64::from(i),
                    Some(b"key"),
                    &[i as u8; 64],
                    &[("n", &i.to_be_bytes())],
                ),
            )
        })
        .collect();
    log.append("alpha", records.clone()).unwrap();
    log.append("zeta", vec![(0, value_rec(b"z"))]).unwrap();
    let before: Vec<Vec<Record>> = (0..2).map(|p| read_all(&log, "alpha", p)).collect();
    let index_before = log.get("alpha").unwrap().partitions[1].segments.read()[0]
        .index
        .read()
        .clone();
    assert!(!index_before.is_empty());
    drop(log);

    let log = EmbeddedLog::open(dir.path(), options).unwrap();
    let names: Vec<String> = log.topics().into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["alpha", "zeta"]);
    assert_eq!(log.topic("alpha").unwrap().end_offsets, vec![150, 150]);
    assert_eq!(log.topic("zeta").unwrap().end_offsets, vec![1]);
    for (p, records) in before.iter().enumerate() {
        assert_eq!(&read_all(&log, "alpha", p as u32), records);
    }
    // The index rebuilt by the recovery scan matches the one kept while appending.
    let index_after = log.get("alpha").unwrap().partitions[1].segments.read()[0]
        .index
        .read()
        .clone();
    assert_eq!(index_after, index_before);
    let appended = log.append("alpha", vec![(1, value_rec(b"next"))]).unwrap();
    assert_eq!(ranges(&appended), vec![(1, 150, 150, 1)]);
}

/// Five 20-byte records (54 bytes each, at 8, 62, 116, 170, 224; 278 bytes in all).
fn five_records(dir: &Path) -> PathBuf {
    let log = EmbeddedLog::open(dir, fast()).unwrap();
    log.create_topic("t", 1).unwrap();
    let records = (0..5).map(|i| (0, value_rec(&[i; 20]))).collect();
    log.append("t", records).unwrap();
    let files = segment_files(dir, "t", 0);
    assert_eq!(fs::metadata(&files[0]).unwrap().len(), 278);
    files[0].clone()
}

fn assert_recovered(dir: &Path, segment: &Path, records: u64, len: u64) {
    let log = EmbeddedLog::open(dir, fast()).unwrap();
    assert_eq!(log.end_offsets("t").unwrap(), vec![records]);
    assert_eq!(fs::metadata(segment).unwrap().len(), len);
    let appended = log.append("t", vec![(0, value_rec(b"new"))]).unwrap();
    assert_eq!(ranges(&appended), vec![(0, records, records, 1)]);
    let all = read_all(&log, "t", 0);
    assert_eq!(all.len() as u64, records + 1);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
    }
    assert_eq!(all[records as usize].value, b"new");
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn torn_tail_cut_mid_record_is_truncated() {
    let dir = TempDir::new().unwrap();
    let seg = five_records(dir.path());
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(270)
        .unwrap();
    assert_recovered(dir.path(), &seg, 4, 224);
}

#[test]
fn torn_tail_of_garbage_or_zeros_is_truncated() {
    let dir = TempDir::new().unwrap();
    let seg = five_records(dir.path());
    append_bytes(&seg, &[0xab; 100]);
    assert_recovered(dir.path(), &seg, 5, 278);

    let dir = TempDir::new().unwrap();
    let seg = five_records(dir.path());
    append_bytes(&seg, &[0; 4096]);
    assert_recovered(dir.path(), &seg, 5, 278);
}

#[test]
fn torn_tail_partial_record_header_is_truncated() {
    let dir = TempDir::new().unwrap();
    let seg = five_records(dir.path());
    append_bytes(&seg, &[1, 2, 3]);
    assert_recovered(dir.path(), &seg, 5, 278);
}

#[test]
fn torn_tail_checksum_failure_in_last_record_is_truncated() {
    // Nothing valid follows, so it cannot be told apart from a torn write.
    let dir = TempDir::new().unwrap();
    let seg = five_records(dir.path());
    flip_byte(&seg, 224 + 40);
    assert_recovered(dir.path(), &seg, 4, 224);
}

#[test]
fn torn_segment_header_is_rewritten() {
    for partial in [&b""[..], b"KLO", &[0; 8], &[0; 100]] {
        let dir = TempDir::new().unwrap();
        let seg = five_records(dir.path());
        // A crash right after a roll created the next segment.
        let next = seg.with_file_name(segment::file_name(5));
        fs::write(&next, partial).unwrap();
        let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
        assert_eq!(fs::read(&next).unwrap(), SEGMENT_HEADER);
        assert_eq!(log.end_offsets("t").unwrap(), vec![5]);
        log.append("t", vec![(0, value_rec(b"new"))]).unwrap();
        assert_eq!(fs::metadata(&next).unwrap().len(), 8 + frame(3));
        assert_eq!(fs::metadata(&seg).unwrap().len(), 278);
        let all = read_all(&log, "t", 0);
        assert_eq!(all.len(), 6);
        assert_eq!(all[5].value, b"new");
        assert_eq!(read_from(&log, "t", 0, 5).len(), 1);
    }
}

#[test]
fn flipped_byte_in_sealed_segment_is_corruption() {
    let dir = TempDir::new().unwrap();
    let options = LogOptions {
        segment_bytes: 200,
        ..fast()
    };
    let log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
    log.create_topic("t", 1).unwrap();
    log.append("t", (0..20).map(|i| (0, value_rec(&[i; 40]))).collect())
        .unwrap();
    drop(log);
    let files = segment_files(dir.path(), "t", 0);
    assert!(files.len() > 3);
    // Second record of the second segment, inside its value.
    let position = 8 + frame(40);
    flip_byte(&files[1], position + 50);

    let (file, pos, reason, message) =
        expect_corrupt(EmbeddedLog::open(dir.path(), options.clone()));
    assert_eq!(
        (file.as_path(), pos, reason.as_str()),
        (files[1].as_path(), position, "checksum mismatch")
    );
    assert_eq!(
        message,
        format!(
            "log segment {} is corrupt at byte {position}: checksum mismatch",
            files[1].display()
        )
    );

    // Even at the very end of a sealed segment a bad record is not a torn write.
    flip_byte(&files[1], position + 50);
    let last_in_first = fs::metadata(&files[0]).unwrap().len() - frame(40);
    flip_byte(&files[0], last_in_first + 20);
    let (file, pos, _, _) = expect_corrupt(EmbeddedLog::open(dir.path(), options));
    assert_eq!((file, pos), (files[0].clone(), last_in_first));
}

#[test]
fn bad_record_followed_by_valid_ones_in_last_segment_is_corruption() {
    let dir = TempDir::new().unwrap();
    let seg = five_records(dir.path());
    flip_byte(&seg, 116 + 30);
    let (file, pos, reason, _) = expect_corrupt(EmbeddedLog::open(dir.path(), fast()));
    assert_eq!((file.as_path(), pos), (seg.as_path(), 116));
    assert!(reason.starts_with("checksum mismatch"), "{reason}");
    assert!(
        reason.contains("valid record follows at byte 170"),
        "{reason}"
    );
    // Nothing was cut.
    assert_eq!(fs::metadata(&seg).unwrap().len(), 278);

    // A damaged length field that claims more bytes than the file holds.
    let dir = TempDir::new().unwrap();
    let seg = five_records(dir.path());
    flip_byte(&seg, 62 + 2);
    let (file, pos, _, _) = expect_corrupt(EmbeddedLog::open(dir.path(), fast()));
    assert_eq!((file.as_path(), pos), (seg.as_path(), 62));
    assert_eq!(fs::metadata(&seg).unwrap().len(), 278);
}

#[test]
fn reader_reports_corruption_instead_of_serving_it() {
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
    log.create_topic("t", 1).unwrap();
    log.append("t", (0..5).map(|i| (0, value_rec(&[i; 20]))).collect())
        .unwrap();
    let seg = segment_files(dir.path(), "t", 0).remove(0);
    flip_byte(&seg, 116 + 30); // damaged behind the open log's back
    let mut reader = log.reader("t", 0, 0).unwrap();
    let mut out = Vec::new();
    assert_eq!(reader.read_batch(2, usize::MAX, &mut out).unwrap(), 2);
    let err = reader.read_batch(10, usize::MAX, &mut out).unwrap_err();
    assert!(
        matches!(&err, LogError::Corrupt { file, position: 116, reason } if *file == seg && reason == "checksum mismatch"),
        "{err}"
    );
    assert_eq!(out.len(), 2);
    assert_eq!(reader.next_offset(), 2);
}

#[test]
fn refused_appends_append_nothing() {
    let dir = TempDir::new().unwrap();
    let options = LogOptions {
        max_record_bytes: 1000,
        ..fast()
    };
    let log = EmbeddedLog::open(dir.path(), options).unwrap();
    log.create_topic("t", 2).unwrap();
    log.append("t", vec![(0, value_rec(b"first"))]).unwrap();
    let seg = segment_files(dir.path(), "t", 0).remove(0);
    let len = fs::metadata(&seg).unwrap().len();
    let counter = log.wait_for_append(u64::MAX, Duration::ZERO);

    let err = log
        .append(
            "t",
            vec![(0, value_rec(b"ok")), (2, value_rec(b"bad partition"))],
        )
        .unwrap_err();
    assert!(matches!(
        err,
        LogError::UnknownPartition {
            partition: 2,
            partitions: 2,
            ..
        }
    ));
    let err = log
        .append("t", vec![(1, value_rec(b"ok")), (0, value_rec(&[0; 975]))])
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::RecordTooLarge {
                size: 1001,
                max: 1000
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "record of 1001 bytes exceeds the maximum of 1000 bytes (LogOptions::max_record_bytes)"
    );
    let too_many_headers = NewRecord {
        headers: vec![(String::new(), Vec::new()); 70_000],
        ..value_rec(b"")
    };
    let err = log.append("t", vec![(1, too_many_headers)]).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::RecordTooLarge {
                size: 70_000,
                max: 65_535
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("at most 65535 headers"), "{err}");
    assert!(matches!(
        log.append("missing", vec![(0, value_rec(b"x"))]),
        Err(LogError::UnknownTopic(_))
    ));

    assert_eq!(log.end_offsets("t").unwrap(), vec![1, 0]);
    assert_eq!(fs::metadata(&seg).unwrap().len(), len);
    assert!(read_all(&log, "t", 1).is_empty());
    // Refused appends do not wake anyone.
    assert_eq!(counter, 1);
    assert_eq!(log.wait_for_append(u64::MAX, Duration::ZERO), counter);
}

#[test]
fn topic_names_and_partition_counts_are_validated() {
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
    let long = "x".repeat(201);
    for bad in [
        "",
        ".",
        "..",
        "LOCK",
        "lock",
        "a/b",
        "a b",
        "ü",
        "a\\b",
        long.as_str(),
    ] {
        assert!(
            matches!(
                log.create_topic(bad, 1),
                Err(LogError::InvalidTopicName { .. })
            ),
            "{bad:?} was accepted"
        );
    }
    for good in ["a", "A-z_0.9", "..x", &"y".repeat(200)] {
        log.create_topic(good, 1).unwrap();
    }
    assert!(matches!(
        log.create_topic("a", 1),
        Err(LogError::TopicExists(_))
    ));
    assert!(matches!(
        log.create_topic("p", 0),
        Err(LogError::InvalidPartitionCount(0))
    ));
    assert!(matches!(
        log.create_topic("p", 1025),
        Err(LogError::InvalidPartitionCount(1025))
    ));
    // 1024 is allowed; creating that many directories is too slow for a unit test.
    assert_eq!(log.create_topic("p", 16).unwrap().end_offsets.len(), 16);
    assert!(matches!(log.topic("q"), Err(LogError::UnknownTopic(_))));
    assert_eq!(log.topics().len(), 5);
}

#[test]
fn unfinished_topic_creation_is_ignored_and_replaced() {
    let dir = TempDir::new().unwrap();
    fs::create_dir_all(dir.path().join("t").join("0")).unwrap();
    let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
    assert!(log.topics().is_empty());
    log.create_topic("t", 2).unwrap();
    log.append("t", vec![(1, value_rec(b"x"))]).unwrap();
    drop(log);
    let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
    assert_eq!(log.topic("t").unwrap().end_offsets, vec![0, 1]);
}

#[test]
fn a_directory_is_opened_by_one_log_at_a_time() {
    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
    let err = EmbeddedLog::open(dir.path(), fast()).unwrap_err();
    assert!(err.to_string().contains("already open"), "{err}");
    drop(log);
    EmbeddedLog::open(dir.path(), fast()).unwrap();
}

#[test]
fn murmur2_matches_kafka_java_client() {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    let cases: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];
    for (key, hash) in cases {
        assert_eq!(
            partitioner::murmur2(key),
            hash,
            "{}",
            String::from_utf8_lossy(key)
        );
    }

    let dir = TempDir::new().unwrap();
    let log = EmbeddedLog::open(dir.path(), fast()).unwrap();
    log.create_topic("fifty", 50).unwrap();
    log.create_topic("three", 3).unwrap();
    // toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16
    assert_eq!(log.partition_for("fifty", Some(b"foobar")).unwrap(), 16);
    for (key, hash) in cases {
        let expected = ((hash & 0x7fff_ffff) as u32) % 50;
        assert_eq!(log.partition_for("fifty", Some(key)).unwrap(), expected);
    }
    let unkeyed: Vec<u32> = (0..7)
        .map(|_| log.partition_for("three", None).unwrap())
        .collect();
    assert_eq!(unkeyed, vec![0, 1, 2, 0, 1, 2, 0]);
    assert!(matches!(
        log.partition_for("none", None),
        Err(LogError::UnknownTopic(_))
    ));
}

#[test]
fn concurrent_appends_get_gapless_offsets() {
    let dir = TempDir::new().unwrap();
    let log = Arc::new(
        EmbeddedLog::open(
            dir.path(),
            LogOptions {
                segment_bytes: 4096,
                ..fast()
            },
        )
        .unwrap(),
    );
    log.create_topic("c", 2).unwrap();
    const THREADS: u8 = 4;
    const APPENDS: u32 = 100;

    // A reader tails partition 0 meanwhile: it must see the offsets in order.
    let tailer = {
        let log = log.clone();
        thread::spawn(move || {
            let total = u64::from(THREADS) * u64::from(APPENDS) * 2;
            let mut reader = log.reader("c", 0, 0).unwrap();
            let mut out = Vec::new();
            let mut seen = log.wait_for_append(u64::MAX, Duration::ZERO);
            while (out.len() as u64) < total {
                if reader.read_batch(100, usize::MAX, &mut out).unwrap() == 0 {
                    seen = log.wait_for_append(seen, Duration::from_secs(5));
                }
            }
            out
        })
    };

    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            thread::spawn(move || {
                for i in 0..APPENDS {
                    let key = [t];
                    let value = i.to_le_bytes();
                    let records = vec![
                        (0, rec(0, Some(&key), &value, &[])),
                        (1, rec(0, Some(&key), &value, &[])),
                        (0, rec(1, Some(&key), &value, &[])),
                    ];
                    log.append("c", records).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let tailed = tailer.join().unwrap();

    let expected_counts = [2, 1].map(|n| u64::from(THREADS) * u64::from(APPENDS) * n);
    assert_eq!(log.end_offsets("c").unwrap(), expected_counts.to_vec());
    for p in 0..2u32 {
        let all = read_all(&log, "c", p);
        assert_eq!(all.len() as u64, expected_counts[p as usize]);
        let mut next_per_thread = [0u32; THREADS as usize];
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.offset, i as u64);
            let t = usize::from(r.key.as_ref().unwrap()[0]);
            let seq = u32::from_le_bytes(r.value[..].try_into().unwrap());
            // Each append's records stay together and in order.
            if p == 0 && r.timestamp == 1 {
                assert_eq!(all[i - 1].key, r.key);
                assert_eq!(seq + 1, next_per_thread[t]);
            } else {
                assert_eq!(seq, next_per_thread[t]);
                next_per_thread[t] += 1;
            }
        }
        if p == 0 {
            assert_eq!(tailed, all);
        }
    }
}

#[test]
fn wait_for_append_wakes_on_append_and_times_out_otherwise() {
    let dir = TempDir::new().unwrap();
    let log = Arc::new(EmbeddedLog::open(dir.path(), fast()).unwrap());
    log.create_topic("t", 1).unwrap();
    let seen = log.wait_for_append(u64::MAX, Duration::ZERO);
    assert_eq!(seen, 0);
    assert_eq!(log.wait_for_append(seen, Duration::from_millis(20)), seen);

    let mut rx = log.subscribe();
    let waiter = {
        let log = log.clone();
        thread::spawn(move || log.wait_for_append(seen, Duration::from_secs(10)))
    };
    thread::sleep(Duration::from_millis(20));
    log.append("t", vec![(0, value_rec(b"x"))]).unwrap();
    assert_eq!(waiter.join().unwrap(), 1);
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 1);
    assert!(!rx.has_changed().unwrap());
}

// ---- The frozen version-1 fixture -------------------------------------------

const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/log-v1");
const FIXTURE_SEGMENT_BYTES: u64 = 160;

fn fixture_records() -> Vec<(u32, NewRecord)> {
    vec![
        (
            0,
            rec(
                1_700_000_000_000,
                Some(b"user-1"),
                br#"{"event":"signup"}"#,
                &[("source", b"web")],
            ),
        ),
        (1, rec(1_700_000_000_001, None, b"no key", &[])),
        (
            0,
            rec(
                1_700_000_000_002,
                Some(b"user-1"),
                b"",
                &[("trace-id", b"\x00\x01\x02\xff"), ("empty", b"")],
            ),
        ),
        (1, rec(-1, Some(b""), b"empty key, negative timestamp", &[])),
        (
            0,
            rec(
                1_700_000_000_004,
                Some(b"user-2"),
                b"third in partition 0",
                &[],
            ),
        ),
        (
            0,
            rec(
                i64::MAX,
                Some(&[0xff; 3]),
                &[0; 40],
                &[("a", b"1"), ("b", b"2"), ("c", b"3")],
            ),
        ),
        (
            1,
            rec(i64::MIN, None, b"", &[("ünïcode", "välue".as_bytes())]),
        ),
    ]
}

/// Regenerates `tests/fixtures/log-v1/`. Only ever needed if the fixture is
/// lost: the format is frozen, so the output must be byte-identical. Run with
/// `cargo test -p kappa --lib log::tests::generate_log_v1_fixture -- --ignored`.
#[test]
#[ignore = "writes into the source tree; run by hand to regenerate the fixture"]
fn generate_log_v1_fixture() {
    let dir = Path::new(FIXTURE_DIR);
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
    let log = EmbeddedLog::open(
        dir,
        LogOptions {
            segment_bytes: FIXTURE_SEGMENT_BYTES,
            ..LogOptions::default()
        },
    )
    .unwrap();
    log.create_topic("events", 2).unwrap();
    let records = fixture_records();
    log.append("events", records[..3].to_vec()).unwrap();
    log.append("events", records[3..].to_vec()).unwrap();
    drop(log);
    fs::remove_file(dir.join(LOCK_FILE)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn reads_frozen_log_v1_fixture() {
    let fixture = Path::new(FIXTURE_DIR);
    let dir = TempDir::new().unwrap();
    copy_dir(fixture, dir.path());

    assert_eq!(
        fs::read_to_string(fixture.join("events/topic.json")).unwrap(),
        r#"{"format":1,"partitions":2}"#
    );
    let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    let topics = log.topics();
    assert_eq!(topics.len(), 1);
    assert_eq!(
        (topics[0].name.as_str(), topics[0].partitions),
        ("events", 2)
    );
    assert_eq!(topics[0].end_offsets, vec![4, 3]);

    let records = fixture_records();
    for p in 0..2u32 {
        let expected: Vec<Record> = records
            .iter()
            .filter(|(rp, _)| *rp == p)
            .enumerate()
            .map(|(i, (_, r))| stored(p, i as u64, r))
            .collect();
        assert_eq!(read_all(&log, "events", p), expected, "partition {p}");

        // Opening changed nothing, and today's encoder writes exactly the
        // frozen bytes.
        let files = segment_files(fixture, "events", p);
        let copies = segment_files(dir.path(), "events", p);
        assert_eq!(files.len(), copies.len());
        let bases: Vec<u64> = files
            .iter()
            .map(|f| f.file_stem().unwrap().to_str().unwrap().parse().unwrap())
            .collect();
        for (i, (file, copy)) in files.iter().zip(&copies).enumerate() {
            let bytes = fs::read(file).unwrap();
            assert_eq!(bytes, fs::read(copy).unwrap());
            assert_eq!(bytes[..8], *b"KLOGSEG\x01");
            let end = bases.get(i + 1).copied().unwrap_or(expected.len() as u64);
            let mut encoded = SEGMENT_HEADER.to_vec();
            let in_partition: Vec<&NewRecord> = records
                .iter()
                .filter(|(rp, _)| *rp == p)
                .map(|(_, r)| r)
                .collect();
            for offset in bases[i]..end {
                record::encode(&mut encoded, offset, in_partition[offset as usize]);
            }
            assert_eq!(bytes, encoded, "{}", file.display());
        }
    }
    // Partition 0 rolled, so the fixture covers several segments.
    assert_eq!(
        segment_files(fixture, "events", 0)
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        vec![
            "00000000000000000000.seg",
            "00000000000000000002.seg",
            "00000000000000000003.seg"
        ]
    );
    // A literal check of the first record, independent of the encoder.
    let first = fs::read(fixture.join("events/0/00000000000000000000.seg")).unwrap();
    let body_len = 26 + 6 + 18 + 2 + 6 + 4 + 3;
    assert_eq!(first[8..12], (body_len as u32).to_le_bytes());
    assert_eq!(
        first[12..16],
        crc32fast::hash(&first[16..16 + body_len]).to_le_bytes()
    );
    assert_eq!(first[16..24], 0u64.to_le_bytes());
    assert_eq!(first[24..32], 1_700_000_000_000i64.to_le_bytes());
    assert_eq!(first[32..36], 6i32.to_le_bytes());
    assert_eq!(&first[36..42], b"user-1");
}
