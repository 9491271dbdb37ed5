//! The properties the fuzzer checks (the `fuzz/` crate, run with
//! cargo-fuzz), kept here so that ordinary `cargo test` checks them too on
//! every file of the committed corpus (`fuzz/corpus/<target>/`) and on every
//! input the fuzzer ever found a bug with.
//!
//! Each `check_*` function takes arbitrary bytes and panics only when a
//! property is broken:
//! - [`check_record`]: the log's record decoder never panics, and a record it
//!   accepts re-encodes to exactly the bytes it was decoded from (so nothing
//!   is silently reinterpreted);
//! - [`check_segment`]: a segment file of arbitrary bytes is either refused
//!   on open with an error naming the file, or opened with a torn tail cut;
//!   then every record served is one that is really in the file, at its
//!   place, with gapless offsets: damaged bytes are never served;
//! - [`check_event_input`]: the JSON event parser (a `kappa produce` line or
//!   a produce request body) never panics, and an accepted event survives a
//!   round trip through its JSON form unchanged.
//!
//! Not part of the API: hidden from the docs, for the fuzz targets only.

use serde::Deserialize;

use crate::event::EventLine;
use crate::{EmbeddedLog, LogError, LogOptions, NewRecord, Record, fuzz_support};

/// A produce request body as the host reads it: its events (the host's own
/// request type has more fields, which this property does not need).
#[derive(Deserialize)]
struct ProduceRequest {
    events: Vec<EventLine>,
}

/// Timestamp handed to events without one.
const NOW_MS: i64 = 1_767_225_600_000;

/// The record decoder on one framed record (length, checksum, body).
pub fn check_record(bytes: &[u8]) {
    let Ok((record, used)) = fuzz_support::decode_framed(bytes) else {
        return;
    };
    assert!(
        used <= bytes.len(),
        "decoder claims {used} of {} bytes",
        bytes.len()
    );
    let again = fuzz_support::encode_framed(record.offset, &as_new(&record));
    assert_eq!(
        again,
        &bytes[..used],
        "an accepted record does not re-encode to its own bytes: {record:?}"
    );
}

fn as_new(r: &Record) -> NewRecord {
    NewRecord {
        timestamp: r.timestamp,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r.headers.clone(),
    }
}

/// Opening a log whose one segment holds `bytes`, then reading it all.
pub fn check_segment(bytes: &[u8]) {
    // In memory where the system offers it: the fuzzer opens a log per input.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    let Ok(dir) = dir else {
        return;
    };
    let options = LogOptions {
        fsync: false,
        // Small, so that length fields past it count as damage quickly.
        max_record_bytes: 1 << 16,
        ..LogOptions::default()
    };
    let segment = dir
        .path()
        .join("t")
        .join("0")
        .join("00000000000000000000.seg");
    {
        let Ok(log) = EmbeddedLog::open(dir.path(), options.clone()) else {
            return;
        };
        if log.create_topic("t", 1).is_err() {
            return;
        }
    }
    if std::fs::write(&segment, bytes).is_err() {
        return;
    }
    let log = match EmbeddedLog::open(dir.path(), options) {
        Ok(log) => log,
        Err(LogError::Corrupt { file, .. }) => {
            assert_eq!(file, segment, "a refusal names the damaged file");
            return;
        }
        Err(e) => panic!("opening a damaged segment failed without naming it: {e}"),
    };
    let Ok(mut reader) = log.reader("t", 0, 0) else {
        panic!("no reader over an opened partition");
    };
    let mut records = Vec::new();
    loop {
        let before = records.len();
        match reader.read_batch(1024, 1 << 20, &mut records) {
            Ok(0) => break,
            Ok(_) => assert!(records.len() > before),
            Err(e) => panic!("a log that opened served an error: {e}"),
        }
    }
    // What is served is exactly the start of the file as it now stands,
    // re-encoded: every record is really there, in order, gapless.
    let Ok(kept) = std::fs::read(&segment) else {
        panic!("the segment vanished");
    };
    let mut expected = fuzz_support::SEGMENT_HEADER.to_vec();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, i as u64, "offsets are gapless from 0");
        expected.extend(fuzz_support::encode_framed(r.offset, &as_new(r)));
    }
    assert_eq!(
        kept, expected,
        "the records served are not the bytes kept on disk"
    );
    // The original bytes, where they were a valid segment, were not touched
    // beyond cutting a torn tail (a torn header is rewritten).
    if bytes.len() >= expected.len() && bytes.starts_with(&fuzz_support::SEGMENT_HEADER) {
        assert_eq!(
            &bytes[..expected.len()],
            &expected[..],
            "kept bytes changed"
        );
    }
}

/// The event parser on arbitrary input, as a line and as a request body.
pub fn check_event_input(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(line) = EventLine::parse_line(text) {
        check_event_round_trip(line);
    }
    if let Ok(request) = serde_json::from_str::<ProduceRequest>(text) {
        for line in request.events {
            check_event_round_trip(line);
        }
    }
}

fn check_event_round_trip(line: EventLine) {
    let Ok(json) = serde_json::to_string(&line) else {
        panic!("an accepted event line cannot be written back as JSON: {line:?}");
    };
    let Ok(again) = EventLine::parse_line(&json) else {
        panic!("an accepted event line does not parse again: {json}");
    };
    match (line.into_record(NOW_MS), again.into_record(NOW_MS)) {
        (Ok((p1, r1)), Ok((p2, r2))) => {
            assert_eq!(p1, p2, "{json}");
            assert_eq!(
                (r1.timestamp, &r1.key, &r1.value, &r1.headers),
                (r2.timestamp, &r2.key, &r2.value, &r2.headers),
                "the event changed through its JSON form: {json}"
            );
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "accepted once and refused once: {json}: {:?} vs {:?}",
            a.err(),
            b.err()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `fuzz/corpus/<target>`, so the corpus is a test even
    /// where the fuzzer is not run.
    fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} is empty", dir.display());
        files
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
                (p.display().to_string(), bytes)
            })
            .collect()
    }

    fn run_all(target: &str, check: fn(&[u8])) {
        for (name, bytes) in corpus(target) {
            let outcome = std::panic::catch_unwind(|| check(&bytes));
            assert!(outcome.is_ok(), "{name} breaks the {target} property");
        }
    }

    #[test]
    fn record_corpus() {
        run_all("record", check_record);
    }

    #[test]
    fn segment_corpus() {
        run_all("segment", check_segment);
    }

    #[test]
    fn event_corpus() {
        run_all("event", check_event_input);
    }

    /// Found by the `event` target: without serde_json's `float_roundtrip`
    /// a number was parsed off by one unit in the last place and stored
    /// changed (`1.5e200` as `1.5000000000000001e+200`).
    #[test]
    fn numbers_in_events_are_stored_as_given() {
        for (line, stored) in [
            (r#"{"value":1.5e200}"#, "1.5e+200"),
            (
                r#"{"value":{"x":1.5e200,"y":0.1,"z":-2.5e-300}}"#,
                r#"{"x":1.5e+200,"y":0.1,"z":-2.5e-300}"#,
            ),
            (r#"{"value":123456789.123456789}"#, "123456789.12345679"),
        ] {
            check_event_input(line.as_bytes());
            let event = EventLine::parse_line(line).expect("a valid line");
            let (_, record) = event.into_record(NOW_MS).expect("a valid event");
            assert_eq!(String::from_utf8_lossy(&record.value), stored, "{line}");
        }
    }

    #[test]
    fn edge_inputs() {
        for bytes in [&b""[..], b"\0", &[0xff; 40], b"KLOGSEG\x01", b"KLOGSEG\x02"] {
            check_record(bytes);
            check_segment(bytes);
            check_event_input(bytes);
        }
        let mut good = fuzz_support::SEGMENT_HEADER.to_vec();
        let r = NewRecord {
            timestamp: 7,
            key: Some(b"k".to_vec()),
            value: b"v".to_vec(),
            headers: vec![("h".into(), b"x".to_vec())],
        };
        good.extend(fuzz_support::encode_framed(0, &r));
        good.extend(fuzz_support::encode_framed(1, &r));
        check_record(&good[8..]);
        check_segment(&good);
        // Every truncation and every single flipped byte.
        for cut in 0..good.len() {
            check_segment(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            check_record(&bad[8..]);
            check_segment(&bad);
        }
    }
}
