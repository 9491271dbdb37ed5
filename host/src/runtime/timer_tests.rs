//! Tests of the event-time timers of contract 0.3.0 through a real
//! component: the `timer-probe` test plugin sets, moves, cancels and reads
//! the timers its events spell and writes down every event and every firing
//! in order. The record must equal a model of the contract's rule computed
//! here, event by event, however the log is cut into batches, and across a
//! new instance between batches (a restart): that is what makes a view of
//! timers independent of the host's batch sizes.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::timers::{Keys, RESERVED};
use super::{Contract, FailureKind, Instance, Runtime};
use crate::log::Record;
use crate::registry::Settings;
use crate::store::{View, Writes};

fn probe(runtime: &Runtime) -> Instance {
    let plugin = runtime
        .load(kappa_plugins::TIMER_PROBE.bytes, "timer-probe-tests")
        .unwrap();
    assert_eq!(plugin.contract(), Contract::V0_3_0);
    runtime
        .instantiate(&plugin, "timer-probe@1.0.0", &Settings::default())
        .unwrap()
}

/// An event of partition 0 at `offset`: its timestamp and commands.
fn event(offset: usize, (timestamp, commands): &(i64, String)) -> Record {
    Record {
        partition: 0,
        offset: offset as u64,
        timestamp: *timestamp,
        key: None,
        value: commands.clone().into_bytes(),
        headers: Vec::new(),
    }
}

/// The record the contract's rule gives for `events`: each event, then the
/// timers due after it in (moment, name) order, again while firing sets
/// timers already due.
fn model(events: &[(i64, String)]) -> Vec<String> {
    let mut time = i64::MIN;
    let mut timers: BTreeMap<String, i64> = BTreeMap::new();
    let mut record = Vec::new();
    for (offset, (timestamp, commands)) in events.iter().enumerate() {
        time = time.max(*timestamp);
        record.push(format!("event {offset} 0"));
        for command in commands.split(';').filter(|c| !c.is_empty()) {
            let words: Vec<&str> = command.split_whitespace().collect();
            let delta = |i: usize| words[i].parse::<i64>().unwrap();
            match words[0] {
                "set" => {
                    timers.insert(words[1].into(), timestamp + delta(2));
                }
                "every" => {
                    let name = format!("every/{}/{}", words[3], words[1]);
                    timers.insert(name, timestamp + delta(2));
                }
                "cancel" => {
                    timers.remove(words[1]);
                }
                "get" => record.push(format!(
                    "get {} {}",
                    words[1],
                    timers
                        .get(words[1])
                        .map_or_else(|| "none".into(), i64::to_string)
                )),
                other => panic!("{other}"),
            }
        }
        loop {
            let due: BTreeSet<(i64, String)> = timers
                .iter()
                .filter(|(_, at)| **at <= time)
                .map(|(name, at)| (*at, name.clone()))
                .collect();
            if due.is_empty() {
                break;
            }
            for (at, name) in due {
                timers.remove(&name);
                record.push(format!("fire {name} {at} {time}"));
                if let Some(rest) = name.strip_prefix("every/") {
                    let period: i64 = rest.split_once('/').unwrap().0.parse().unwrap();
                    timers.insert(name.clone(), at + period);
                }
            }
        }
    }
    record
}

/// A log of `n` events whose timestamps mostly rise, sometimes go back, and
/// whose commands set timers due within the same batch, already due, far
/// off, moved, cancelled, read, and a few that set themselves again.
fn log(n: usize) -> Vec<(i64, String)> {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut timestamp = 1_000_i64;
    (0..n)
        .map(|i| {
            timestamp += next(40).cast_signed() - 8;
            let name = format!("t{}", next(12));
            let choice = if i % 97 == 1 { 5 } else { next(10) };
            let commands = match choice {
                0 | 1 => format!("set {name} {}", next(120)),
                2 => format!("set {name} -{}", next(30)),
                3 => format!("set {name} {};get {name}", 1_000 + next(1000)),
                4 => format!("cancel {name};get {name}"),
                5 => format!("every e{} {} {}", next(3), next(20), 3 + next(30)),
                6 => format!("get {name}"),
                _ => String::new(),
            };
            (timestamp, commands)
        })
        .collect()
}

/// Processes `events` in batches of `size`, committing each, with a fresh
/// instance every `restart` batches; the view's rows at the end.
fn run(events: &[(i64, String)], size: usize, restart: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
    let view = View::open(&dir.path().join("view.redb"), Duration::from_secs(3600)).unwrap();
    let mut instance = probe(&runtime);
    let records: Vec<Record> = events
        .iter()
        .enumerate()
        .map(|(i, e)| event(i, e))
        .collect();
    for (n, batch) in records.chunks(size).enumerate() {
        if n > 0 && n % restart == 0 {
            instance = probe(&runtime);
        }
        let writes = instance
            .process(view.snapshot().unwrap(), batch.to_vec())
            .unwrap();
        let next = batch.last().unwrap().offset + 1;
        view.commit(0, next, &writes, false).unwrap();
    }
    view.snapshot()
        .unwrap()
        .rows(b"", None)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The probe's record in a view's rows.
fn record(rows: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<String> {
    rows.iter()
        .filter(|(k, _)| k.starts_with(b"p0/log/"))
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .collect()
}

#[test]
fn timers_fire_where_the_contract_says_whatever_the_batch_sizes() {
    let events = log(300);
    let expected = model(&events);
    let fired = expected.iter().filter(|l| l.starts_with("fire ")).count();
    let repeated = expected
        .iter()
        .filter(|l| l.starts_with("fire every/"))
        .count();
    assert!(
        fired > 70 && repeated > 10,
        "{fired} fired, {repeated} repeating"
    );
    let whole = run(&events, events.len(), usize::MAX);
    assert_eq!(record(&whole), expected);
    for (size, restart) in [(1, 7), (5, 3), (64, 2)] {
        let rows = run(&events, size, restart);
        assert_eq!(record(&rows), expected, "batches of {size}");
        // The timers still set and the event time too: the whole state.
        assert_eq!(rows, whole, "batches of {size}");
    }
    let keys = Keys::new(0);
    let time = &whole[&keys.time()];
    let last = events.iter().map(|(t, _)| *t).max().unwrap();
    assert_eq!(super::timers::decode_time(time), Some(last));
    assert!(
        whole.keys().any(|k| k.starts_with(&keys.timer(b""))),
        "timers far off are still set, in the shard"
    );
}

#[test]
fn nothing_fires_without_an_event_and_a_timer_counts_from_its_setter() {
    // A timer set at event 0 for a moment event 0 already passed fires right
    // after event 0; one for a later moment waits for the event reaching it,
    // even across batches and with no event in between reaching it.
    let events: Vec<(i64, String)> = vec![
        (100, "set now -1;set later 50".into()),
        (120, String::new()),
        (110, "get later".into()),
        (150, String::new()),
        (151, "set again 0".into()),
    ];
    let expected = [
        "event 0 0",
        "fire now 99 100",
        "event 1 0",
        "event 2 0",
        "get later 150",
        "event 3 0",
        "fire later 150 150",
        "event 4 0",
        "fire again 151 151",
    ];
    assert_eq!(model(&events), expected);
    for size in [1, 2, 5] {
        assert_eq!(
            record(&run(&events, size, 2)),
            expected,
            "batches of {size}"
        );
    }
}

#[test]
fn a_failing_firing_names_the_event_it_followed_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
    let view = View::open(&dir.path().join("view.redb"), Duration::from_secs(3600)).unwrap();
    let mut instance = probe(&runtime);
    let events: Vec<(i64, String)> = vec![
        (10, "poison p 5".into()),
        (12, String::new()),
        (15, String::new()),
        (16, String::new()),
    ];
    let batch: Vec<Record> = events
        .iter()
        .enumerate()
        .map(|(i, e)| event(i, e))
        .collect();
    let failure = instance
        .process(view.snapshot().unwrap(), batch)
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::GuestError);
    assert_eq!(failure.offset, Some(2), "the event that reached the moment");
    assert!(
        failure.message.contains("while timers fired") && failure.message.contains("poisoned"),
        "{}",
        failure.message
    );
}

#[test]
fn the_hosts_rows_are_hidden_from_the_processor_and_cannot_be_forged() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
    let view = View::open(&dir.path().join("view.redb"), Duration::from_secs(3600)).unwrap();
    let mut instance = probe(&runtime);
    let first = vec![event(0, &(5, "set far 1000".into()))];
    let writes = instance.process(view.snapshot().unwrap(), first).unwrap();
    view.commit(0, 1, &writes, false).unwrap();
    let rows: Writes = view
        .snapshot()
        .unwrap()
        .rows(b"", None)
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k, Some(v))
        })
        .collect();
    assert!(
        rows.keys().filter(|k| k.starts_with(RESERVED)).count() >= 3,
        "the event time and the timer's two rows are in the shard"
    );
    let peek = vec![event(1, &(6, "peek".into()))];
    let writes = instance.process(view.snapshot().unwrap(), peek).unwrap();
    assert_eq!(
        writes.get(b"p0/log/00000002".as_slice()),
        Some(&Some(b"peek 0".to_vec()))
    );
    let forge = vec![event(1, &(6, "forge".into()))];
    let failure = instance
        .process(view.snapshot().unwrap(), forge)
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Trap);
    assert!(
        failure.message.contains("are the host's"),
        "{}",
        failure.message
    );
}
