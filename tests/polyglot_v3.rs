//! Payments v3 (contract 0.3.0: a windowed rule over a range read, rows
//! expired by event-time timers, limits from a second topic) written in
//! Rust, Python and JavaScript: the same two-topic log, in batches of several
//! sizes, gives byte-identical views, every row included, down to the host's
//! own timer rows from `\xff\xffkappa/` on; and a malformed payment and a
//! malformed limit are refused by each with an `invalid-event` naming the
//! same topic and offset. It also prints the events per second of each (not
//! asserted).
//!
//! The Python and JavaScript components are built by
//! `plugins/build-polyglot.sh DIR` (which `scripts/test` runs), found through
//! `KAPPA_POLYGLOT_DIR=DIR`. Without it the test is skipped with a notice,
//! unless `CI` is set, where it fails.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kappa::log::Record;
use kappa::registry::Settings;
use kappa::runtime::timers::Keys;
use kappa::runtime::{CallFailure, Contract, FailureKind, Plugin, Runtime};
use kappa::store::View;

const CONFIG: &str = r#"{"large_cents":900,"window_ms":1000,"max_txns":4}"#;
/// Where the host's rows start: the partition's timers and event time.
const HOST_ROWS: &[u8] = b"\xff\xffkappa/";

/// The paths of the Python and JavaScript components, or `None` (after a
/// notice) when the polyglot components were not built.
fn components() -> Option<[(&'static str, PathBuf); 2]> {
    let Some(dir) = std::env::var_os("KAPPA_POLYGLOT_DIR") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "KAPPA_POLYGLOT_DIR is not set: run plugins/build-polyglot.sh DIR and set it to DIR"
        );
        eprintln!(
            "notice: polyglot v3 test skipped: KAPPA_POLYGLOT_DIR is not set \
             (scripts/test builds the components with plugins/build-polyglot.sh and sets it)"
        );
        return None;
    };
    let built = |file: &str| {
        let path = PathBuf::from(&dir).join(file);
        assert!(
            path.is_file(),
            "{} is missing: run plugins/build-polyglot.sh {}",
            path.display(),
            PathBuf::from(&dir).display()
        );
        path
    };
    Some([
        ("python", built("payments-v3-python.wasm")),
        ("js", built("payments-v3-js.wasm")),
    ])
}

/// One event of the merged log and the index of its topic (0 payments,
/// 1 limits).
type Event = (u32, Record);

/// A deterministic merged log of `n` events of partition 0: payments of a
/// few accounts (one of them not ASCII), in the payload forms producers
/// write (fields in declaration or alphabetical order, spaces, extra fields,
/// no key), with time going mostly forward and sometimes back, and limits.
fn merged_log(n: usize, seed: u64) -> Vec<Event> {
    let mut seed = seed | 1;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut offsets = [0_u64; 2];
    let mut timestamp = 1_767_225_600_000_i64;
    let mut log = Vec::with_capacity(n);
    for _ in 0..n {
        timestamp += i64::try_from(next(150)).unwrap() - 30;
        // Now and then an event from well before the others.
        let at = if next(40) == 0 {
            timestamp - 2_500
        } else {
            timestamp
        };
        let account = match next(8) {
            7 => "ä-7".to_owned(),
            a => format!("acct-{a}"),
        };
        let topic = u32::from(next(12) == 0);
        let offset = offsets[topic as usize];
        offsets[topic as usize] += 1;
        let mut key = Some(account.clone().into_bytes());
        let value = if topic == 1 {
            let cents = 200 + next(1_500);
            match next(10) {
                0 => format!(r#"{{"limit_cents":{cents},"note":"set by risk"}}"#),
                1 => format!("[{cents}]"),
                _ => format!(r#"{{"limit_cents":{cents}}}"#),
            }
        } else {
            let cents = if next(25) == 0 { 950 } else { next(400) };
            let txn = format!("t-{offset}");
            match next(20) {
                0 | 1 => format!(
                    r#"{{"account":"{account}","amount_cents":{cents},"merchant":"m","txn":"{txn}"}}"#
                ),
                2 => format!(
                    r#"{{ "txn": "{txn}", "account": "{account}", "amount_cents": {cents}, "merchant": "m", "channel": [1, {{"web": true}}] }}"#
                ),
                3 => {
                    key = None;
                    format!(
                        r#"{{"txn":"{txn}","account":"{account}","amount_cents":{cents},"merchant":"m"}}"#
                    )
                }
                _ => format!(
                    r#"{{"txn":"{txn}","account":"{account}","amount_cents":{cents},"merchant":"m"}}"#
                ),
            }
        };
        log.push((
            topic,
            Record {
                partition: 0,
                offset,
                timestamp: at,
                key,
                value: value.into_bytes(),
                headers: Vec::new(),
            },
        ));
    }
    log
}

/// The implementations, Rust's first, loaded once into one runtime.
struct Implementations {
    _dir: tempfile::TempDir,
    runtime: Runtime,
    plugins: Vec<(&'static str, Plugin)>,
}

impl Implementations {
    fn load(others: &[(&'static str, PathBuf)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
        let mut plugins = vec![(
            "rust",
            runtime
                .load(kappa_plugins::PAYMENTS_V3.bytes, "payments-v3-rust")
                .unwrap(),
        )];
        for (language, path) in others {
            let bytes = std::fs::read(path).unwrap();
            let digest = format!("payments-v3-{language}");
            plugins.push((*language, runtime.load(&bytes, &digest).unwrap()));
        }
        for (language, plugin) in &plugins {
            assert_eq!(plugin.contract(), Contract::V0_3_0, "{language}");
        }
        Implementations {
            _dir: dir,
            runtime,
            plugins,
        }
    }

    /// Runs `log` through each implementation; the outcomes, Rust's first.
    fn run(&self, log: &[Event], size: usize, flush: bool) -> Vec<(&'static str, Outcome)> {
        self.plugins
            .iter()
            .map(|(language, plugin)| (*language, run(&self.runtime, plugin, log, size, flush)))
            .collect()
    }
}

/// What a run through one implementation ends with: every row of the view
/// (the host's included), or the call's failure.
type Outcome = Result<Vec<(Vec<u8>, Vec<u8>)>, CallFailure>;

/// Runs `log` through `plugin` in batches of `size`, committing each batch
/// as the host does (to the view's write buffer, or, with `flush`, to its
/// file); the view's rows, or the first failure.
fn run(runtime: &Runtime, plugin: &Plugin, log: &[Event], size: usize, flush: bool) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let view = View::open(&dir.path().join("view.redb"), Duration::from_secs(3600)).unwrap();
    let settings = Settings {
        config: CONFIG.into(),
        ..Settings::default()
    };
    let mut instance = runtime
        .instantiate(plugin, "payments@3.0.0", &settings)
        .unwrap();
    for (n, batch) in log.chunks(size).enumerate() {
        let topics: Vec<u32> = batch.iter().map(|(t, _)| *t).collect();
        let events = batch.iter().map(|(_, r)| r.clone()).collect();
        let writes = instance.process_topics(view.snapshot().unwrap(), events, &topics)?;
        view.commit(0, n as u64 + 1, &writes, flush).unwrap();
    }
    let rows = view
        .snapshot()
        .unwrap()
        .rows(b"", None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    Ok(rows)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that two views hold the same rows, byte for byte, naming the
/// first row that differs.
fn assert_same_rows(want: &[(Vec<u8>, Vec<u8>)], got: &[(Vec<u8>, Vec<u8>)], what: &str) {
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert!(
            w == g,
            "{what}: row {i} differs: want {} = {}, got {} = {}",
            text(&w.0),
            text(&w.1),
            text(&g.0),
            text(&g.1)
        );
    }
    assert_eq!(want.len(), got.len(), "{what}: rows in all");
}

#[test]
fn rust_python_and_js_payments_v3_build_identical_views_and_refuse_alike() {
    let Some(components) = components() else {
        return;
    };
    let plugins = Implementations::load(&components);
    let log = merged_log(1_200, 0x2545_f491_4f6c_dd1d);

    let mut first: Option<Vec<(Vec<u8>, Vec<u8>)>> = None;
    // Commits to the view's write buffer, or (batches of 1 and 100) to its
    // file: the host reads rows from both.
    for size in [1, 7, 100, log.len()] {
        let outcomes = plugins.run(&log, size, size == 1 || size == 100);
        let rust = outcomes[0].1.clone().unwrap();
        for (language, outcome) in &outcomes[1..] {
            let rows = outcome.as_ref().unwrap();
            assert_same_rows(&rust, rows, &format!("{language} in batches of {size}"));
        }
        // Where the host cuts the log changes nothing either.
        if let Some(first) = &first {
            assert_same_rows(
                first,
                &rust,
                &format!("batches of {size} against the first"),
            );
        }
        first.get_or_insert(rust);
    }
    let rows = first.unwrap();

    // The log exercises every rule, the limits topic, and expiry.
    let values = |prefix: &str| -> Vec<String> {
        rows.iter()
            .filter(|(k, _)| k.starts_with(prefix.as_bytes()))
            .map(|(_, v)| text(v))
            .collect()
    };
    let flags = values("flag/");
    let rule = |name: &str| {
        flags
            .iter()
            .filter(|v| v.contains(&format!(r#""rule":"{name}""#)))
            .count()
    };
    let payments = log.iter().filter(|(t, _)| *t == 0).count();
    let recent: Vec<&[u8]> = rows
        .iter()
        .map(|(k, _)| k.as_slice())
        .filter(|k| k.starts_with(b"recent/"))
        .collect();
    let timer_prefix = Keys::new(0).timer(b"");
    assert!(timer_prefix.starts_with(HOST_ROWS));
    let timers: Vec<&[u8]> = rows
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(timer_prefix.as_slice()))
        .collect();
    let seen = (
        rule("large-amount"),
        rule("velocity"),
        rule("over-limit"),
        values("limit/").len(),
        recent.len(),
        timers.len(),
    );
    println!(
        "payments v3 over {} events ({payments} payments): large-amount, velocity, over-limit \
         flags, limits, recent rows, timers: {seen:?}",
        log.len()
    );
    assert!(
        seen.0 >= 5 && seen.1 >= 5 && seen.2 >= 5 && seen.3 == 8,
        "every rule and every account's limit: {seen:?}"
    );
    // Expiry: only the payments of the last moments keep a recent row, and
    // each of them the timer named by it.
    assert!(
        !recent.is_empty() && recent.len() * 10 < payments,
        "recent rows: {} of {payments}",
        recent.len()
    );
    assert_eq!(timers, recent, "one timer per recent row, named by it");

    refusals(&plugins, &log);
    speed(&plugins);
}

/// A malformed payment and a malformed limit, in the middle of the log:
/// every implementation refuses them with an `invalid-event` of the same
/// topic and offset, in batches of every size.
fn refusals(plugins: &Implementations, log: &[Event]) {
    let prefix = &log[..200];
    let next_offset = |topic: u32| {
        prefix
            .iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, r)| r.offset + 1)
            .max()
            .unwrap()
    };
    let timestamp = prefix.last().unwrap().1.timestamp;
    let payment_offset = next_offset(0);
    let limit_offset = next_offset(1);
    // The limit's offset is also one of a payment in the same log: only the
    // topic tells them apart.
    assert!(limit_offset < payment_offset);
    let bad = |topic: u32, offset: u64, value: &str| -> Event {
        (
            topic,
            Record {
                partition: 0,
                offset,
                timestamp,
                key: Some(b"acct-1".to_vec()),
                value: value.as_bytes().to_vec(),
                headers: Vec::new(),
            },
        )
    };
    let cases = [
        (
            bad(
                0,
                payment_offset,
                r#"{"txn":"t-bad","account":"acct-1","amount_cents":-5,"merchant":"m"}"#,
            ),
            0,
            payment_offset,
        ),
        (
            bad(1, limit_offset, r#"{"limit_cents":"12"}"#),
            1,
            limit_offset,
        ),
    ];
    for (event, topic, offset) in cases {
        let mut events = prefix.to_vec();
        events.push(event);
        for size in [13, events.len()] {
            for (language, outcome) in plugins.run(&events, size, false) {
                let failure = outcome.expect_err("a malformed event is refused");
                assert_eq!(
                    (failure.kind, failure.topic, failure.offset),
                    (FailureKind::GuestError, Some(topic), Some(offset)),
                    "{language}, batches of {size}: {failure}"
                );
                assert!(
                    failure
                        .message
                        .contains(&format!("invalid event at offset {offset}")),
                    "{language}: {failure}"
                );
            }
        }
    }
}

/// Events per second of each implementation over the same larger log
/// (`KAPPA_V3_SPEED_EVENTS` events, 2,000 unless set), in batches of 500,
/// each committed to the view's file: printed, not asserted.
fn speed(plugins: &Implementations) {
    let events = std::env::var("KAPPA_V3_SPEED_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let log = merged_log(events, 0x9e37_79b9_7f4a_7c15);
    let mut rust = None;
    for (language, plugin) in &plugins.plugins {
        let start = Instant::now();
        run(&plugins.runtime, plugin, &log, 500, true).unwrap();
        let rate = log.len() as f64 / start.elapsed().as_secs_f64();
        let rust = *rust.get_or_insert(rate);
        println!(
            "payments v3 {language}: {} events in batches of 500: {rate:.0} events/s, {:.3} of \
             rust's",
            log.len(),
            rate / rust
        );
    }
}
