//! Tests of `view.range` (contract 0.3.0-rc.1) through a real component:
//! the `range-probe` test plugin runs the view commands its events spell and
//! writes what each read returned, so every case below is a range read made
//! by a guest against a real snapshot with the batch's writes pending.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use super::{CallFailure, Contract, FailureKind, Instance, Runtime};
use crate::log::Record;
use crate::registry::Settings;
use crate::store::{View, Writes};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A runtime, and a view holding `durable` rows in its file and `buffered`
/// writes (`None`: a deletion) in its write buffer over them.
fn setup(
    dir: &std::path::Path,
    durable: &[(&[u8], &[u8])],
    buffered: &[(&[u8], Option<&[u8]>)],
) -> (Runtime, View) {
    let runtime = Runtime::new(&dir.join("compiled")).unwrap();
    let view = View::open(&dir.join("view.redb"), Duration::from_secs(3600)).unwrap();
    let file: Writes = durable
        .iter()
        .map(|(k, v)| (k.to_vec(), Some(v.to_vec())))
        .collect();
    view.commit(0, 1, &file, true).unwrap();
    let buffer: Writes = buffered
        .iter()
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect();
    view.commit(0, 2, &buffer, false).unwrap();
    (runtime, view)
}

fn probe(runtime: &Runtime, memory_limit_bytes: u64) -> Instance {
    let plugin = runtime
        .load(kappa_plugins::RANGE_PROBE.bytes, "range-probe-tests")
        .unwrap();
    let settings = Settings {
        memory_limit_bytes,
        ..Settings::default()
    };
    runtime
        .instantiate(&plugin, "range-probe@1.0.0", &settings)
        .unwrap()
}

/// Runs one batch of `commands` (event `i` at offset `i`).
fn run(instance: &mut Instance, view: &View, commands: &[String]) -> Result<Writes, CallFailure> {
    let events = commands
        .iter()
        .enumerate()
        .map(|(i, command)| Record {
            partition: 0,
            offset: i as u64,
            timestamp: 0,
            key: None,
            value: command.clone().into_bytes(),
            headers: Vec::new(),
        })
        .collect();
    instance.process(view.snapshot().unwrap(), events)
}

/// What the read of event `offset` returned, as `key=value` pairs in text.
fn read(writes: &Writes, offset: u64) -> Vec<String> {
    let key = format!("out/{offset:020}");
    let listed = writes
        .get(key.as_bytes())
        .unwrap_or_else(|| panic!("no {key}"))
        .clone()
        .unwrap();
    let listed = String::from_utf8(listed).unwrap();
    let text = |h: &str| -> String {
        let bytes: Vec<u8> = (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect();
        bytes.escape_ascii().to_string()
    };
    listed
        .split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            format!("{}={}", text(k), text(v))
        })
        .collect()
}

fn put(key: &[u8], value: &[u8]) -> String {
    format!("put {} {}", hex(key), hex(value))
}

fn range(start: &[u8], end: Option<&[u8]>, limit: u32) -> String {
    let end = end.map_or_else(|| "-".to_owned(), hex);
    format!("range {} {end} {limit}", hex(start))
}

#[test]
fn a_candidate_component_validates_with_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
    let plugin = runtime
        .load(kappa_plugins::RANGE_PROBE.bytes, "range-probe-validates")
        .unwrap();
    assert_eq!(plugin.contract(), Contract::V0_3_0Rc1);
    assert_eq!(plugin.contract().version(), "0.3.0-rc.1");
    assert!(plugin.contract().state_per_partition());
    let older = runtime
        .load(kappa_plugins::PAYMENTS_V2.bytes, "payments-v2-validates")
        .unwrap();
    assert_eq!(older.contract(), Contract::V0_2_0);
    assert!(!older.contract().state_per_partition());
}

#[test]
fn a_range_merges_stored_rows_with_the_batch_writes_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, view) = setup(
        dir.path(),
        &[
            (b"a/1", b"file"),
            (b"a/3", b"file"),
            (b"a/5", b"file"),
            (b"a/7", b"file"),
            (b"b/1", b"file"),
        ],
        // The write buffer replaces a/3, deletes a/5 and adds a/4.
        &[
            (b"a/3", Some(b"buffer")),
            (b"a/4", Some(b"buffer")),
            (b"a/5", None),
        ],
    );
    let mut instance = probe(&runtime, 64 << 20);
    let writes = run(
        &mut instance,
        &view,
        &[
            range(b"a/", Some(b"a0"), 100),
            // Pending: a new row, an overwrite, a deletion of a stored row
            // and one of a pending row, and a row past the range.
            put(b"a/2", b"pending"),
            put(b"a/7", b"pending"),
            format!("del {}", hex(b"a/1")),
            put(b"a/6", b"pending"),
            format!("del {}", hex(b"a/6")),
            put(b"a0", b"pending"),
            range(b"a/", Some(b"a0"), 100),
            // No upper bound: everything from the start on, b/ and out/ too.
            range(b"a/3", None, 100),
            // Start inclusive, end exclusive.
            range(b"a/3", Some(b"a/7"), 100),
            range(b"a/7", Some(b"a/7"), 100),
            range(b"a/7", Some(b"a/3"), 100),
            // Limits.
            range(b"a/", Some(b"a0"), 2),
            range(b"a/", Some(b"a0"), 0),
        ],
    )
    .unwrap();
    assert_eq!(
        read(&writes, 0),
        ["a/1=file", "a/3=buffer", "a/4=buffer", "a/7=file"]
    );
    let merged = ["a/2=pending", "a/3=buffer", "a/4=buffer", "a/7=pending"];
    assert_eq!(read(&writes, 7), merged);
    // Everything from a/3 on, the probe's own earlier outputs included.
    let everything = read(&writes, 8);
    assert_eq!(
        everything[..5],
        [
            "a/3=buffer",
            "a/4=buffer",
            "a/7=pending",
            "a0=pending",
            "b/1=file"
        ]
    );
    let outputs: Vec<&str> = everything[5..]
        .iter()
        .map(|row| row.split_once('=').unwrap().0)
        .collect();
    assert_eq!(
        outputs,
        [format!("out/{:020}", 0), format!("out/{:020}", 7)]
    );
    assert_eq!(read(&writes, 9), ["a/3=buffer", "a/4=buffer"]);
    assert!(read(&writes, 10).is_empty());
    assert!(read(&writes, 11).is_empty());
    assert_eq!(read(&writes, 12), merged[..2]);
    assert!(read(&writes, 13).is_empty());
}

#[test]
fn ranges_page_with_the_last_key_and_a_zero_byte_and_end_at_the_prefix_end() {
    let dir = tempfile::tempdir().unwrap();
    let keys: [&[u8]; 7] = [b"p", b"p\0", b"p/1", b"p/2", b"p\xff", b"p\xff\xff", b"q"];
    let durable: Vec<(&[u8], &[u8])> = keys[..4].iter().map(|k| (*k, &b"v"[..])).collect();
    let (runtime, view) = setup(dir.path(), &durable, &[(b"o\xff", Some(b"v"))]);
    let mut instance = probe(&runtime, 64 << 20);
    let mut commands = vec![
        put(b"p\xff", b"v"),
        put(b"p\xff\xff", b"v"),
        put(b"q", b"v"),
        // Pages of 2 by hand: each starts after the last key returned.
        range(b"p", Some(b"q"), 2),
        range(b"p\0\0", Some(b"q"), 2),
        range(b"p/2\0", Some(b"q"), 2),
        range(b"p\xff\xff\0", Some(b"q"), 2),
    ];
    // The kappa-guest pager, over the prefix `p` (ending at `q`) and over
    // one of 255s only (no upper bound).
    for page in [1, 2, 3, 100] {
        commands.push(format!("prefix {} {page}", hex(b"p")));
    }
    commands.push(format!("prefix {} 2", hex(b"p\xff")));
    let writes = run(&mut instance, &view, &commands).unwrap();
    let page = |offset| read(&writes, offset);
    assert_eq!(page(3), ["p=v", "p\\x00=v"]);
    assert_eq!(page(4), ["p/1=v", "p/2=v"]);
    assert_eq!(page(5), ["p\\xff=v", "p\\xff\\xff=v"]);
    assert!(page(6).is_empty());
    let all: Vec<String> = [page(3), page(4), page(5)].concat();
    for offset in 7..11 {
        assert_eq!(page(offset), all, "pages of the prefix, event {offset}");
    }
    assert_eq!(page(11), ["p\\xff=v", "p\\xff\\xff=v"]);
    let stored: Vec<String> = keys[..6]
        .iter()
        .map(|k| format!("{}=v", k.escape_ascii()))
        .collect();
    assert_eq!(all, stored);
}

#[test]
fn a_range_over_more_than_the_memory_limit_fails_the_call_and_a_page_does_not() {
    let dir = tempfile::tempdir().unwrap();
    // 48 rows of 512 KiB: 24 MiB, over the 16 MiB limit.
    let value = vec![7u8; 512 << 10];
    let keys: Vec<Vec<u8>> = (0..48)
        .map(|i| format!("big/{i:02}").into_bytes())
        .collect();
    let durable: Vec<(&[u8], &[u8])> = keys
        .iter()
        .map(|k| (k.as_slice(), value.as_slice()))
        .collect();
    let (runtime, view) = setup(dir.path(), &durable, &[]);
    let mut instance = probe(&runtime, 16 << 20);
    let failure = run(&mut instance, &view, &[range(b"big/", None, u32::MAX)]).unwrap_err();
    assert_eq!(failure.kind, FailureKind::MemoryLimit, "{failure}");
    assert!(
        failure
            .message
            .contains("exceeded its memory limit of 16.0 MiB")
            && failure.message.contains("range read from \"big/\"")
            && failure.message.contains("in pages"),
        "{failure}"
    );
    let mut instance = probe(&runtime, 16 << 20);
    let writes = run(&mut instance, &view, &[range(b"big/", None, 2)]).unwrap();
    assert_eq!(read(&writes, 0).len(), 2);
}
