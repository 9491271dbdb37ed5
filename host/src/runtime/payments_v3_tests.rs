//! The example payments v3 (contract 0.3.0: a windowed rule over a range
//! read, rows expired by event-time timers, limits joined from a second
//! topic) against an independent computation of its rules, written here
//! from its documentation: the view must hold exactly the rows the model
//! gives, whatever the batch sizes, and one timer per payment still in its
//! window.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::timers::{Keys, RESERVED};
use super::{Contract, Runtime};
use crate::log::Record;
use crate::registry::Settings;
use crate::store::View;

const WINDOW: i64 = 1_000;
const LARGE: u64 = 900;
const MAX_TXNS: u64 = 4;
const CONFIG: &str = r#"{"large_cents":900,"window_ms":1000,"max_txns":4}"#;

/// One event of the merged log: its topic (0 payments, 1 limits), timestamp,
/// account, and amount (a payment) or limit.
#[derive(Debug, Clone)]
struct Input {
    topic: u32,
    timestamp: i64,
    account: String,
    cents: u64,
}

fn log(n: usize) -> Vec<Input> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut timestamp = 10_000_i64;
    (0..n)
        .map(|_| {
            timestamp += next(150).cast_signed() - 30;
            let account = format!("a{}", next(8));
            if next(12) == 0 {
                Input {
                    topic: 1,
                    timestamp,
                    account,
                    cents: 200 + next(1_500),
                }
            } else {
                Input {
                    topic: 0,
                    timestamp,
                    account,
                    cents: if next(25) == 0 { 950 } else { next(400) },
                }
            }
        })
        .collect()
}

fn record(offsets: &mut [u64; 2], input: &Input) -> Record {
    let t = input.topic as usize;
    let offset = offsets[t];
    offsets[t] += 1;
    let value = if input.topic == 0 {
        format!(
            r#"{{"txn":"t{t}-{offset}","account":"{}","amount_cents":{},"merchant":"m"}}"#,
            input.account, input.cents
        )
    } else {
        format!(r#"{{"limit_cents":{}}}"#, input.cents)
    };
    Record {
        partition: 0,
        offset,
        timestamp: input.timestamp,
        key: Some(input.account.clone().into_bytes()),
        value: value.into_bytes(),
        headers: Vec::new(),
    }
}

/// The rows payments v3's documentation gives for `log`, computed event by
/// event: the window counts the account's payments still held (not expired)
/// with a timestamp in `(timestamp - window, timestamp]`, and a payment's row
/// expires right after the first event that brings the event time to its
/// timestamp plus the window.
fn model(log: &[Input]) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut rows = BTreeMap::new();
    let mut accounts: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut limits: BTreeMap<String, u64> = BTreeMap::new();
    // (account, timestamp, txn) -> amount, and their expiry moments.
    let mut recent: BTreeMap<(String, i64, String), u64> = BTreeMap::new();
    let mut expiries: BTreeSet<(i64, (String, i64, String))> = BTreeSet::new();
    let mut time = i64::MIN;
    let mut offsets = [0u64; 2];
    for input in log {
        time = time.max(input.timestamp);
        let offset = offsets[input.topic as usize];
        offsets[input.topic as usize] += 1;
        let account = input.account.clone();
        if input.topic == 1 {
            limits.insert(account.clone(), input.cents);
            rows.insert(
                format!("limit/{account}"),
                format!(r#"{{"limit_cents":{}}}"#, input.cents),
            );
        } else {
            let ts = input.timestamp;
            let txn = format!("t0-{offset}");
            let held: Vec<u64> = recent
                .iter()
                .filter(|((a, t, _), _)| *a == account && *t > ts - WINDOW && *t <= ts)
                .map(|(_, amount)| *amount)
                .collect();
            let count = held.len() as u64 + 1;
            let sum: u64 = held.iter().sum::<u64>() + input.cents;
            let rule = if input.cents >= LARGE {
                Some("large-amount")
            } else if count >= MAX_TXNS {
                Some("velocity")
            } else if limits.get(&account).is_some_and(|l| sum > *l) {
                Some("over-limit")
            } else {
                None
            };
            let totals = accounts.entry(account.clone()).or_default();
            totals.0 += 1;
            totals.1 += input.cents;
            totals.2 += u64::from(rule.is_some());
            rows.insert(
                format!("account/{account}"),
                format!(
                    r#"{{"txns":{},"total_cents":{},"flagged":{}}}"#,
                    totals.0, totals.1, totals.2
                ),
            );
            if let Some(rule) = rule {
                rows.insert(
                    format!("flag/{txn}"),
                    format!(
                        r#"{{"account":"{account}","amount_cents":{},"rule":"{rule}","timestamp":{ts}}}"#,
                        input.cents
                    ),
                );
            }
            let key = (account, ts, txn);
            recent.insert(key.clone(), input.cents);
            expiries.insert((ts + WINDOW, key));
        }
        while let Some(first) = expiries.first().cloned()
            && first.0 <= time
        {
            expiries.remove(&first);
            recent.remove(&first.1);
        }
    }
    let recent_key =
        |(account, ts, txn): &(String, i64, String)| format!("recent/{account}/{ts:020}/{txn}");
    for (key, amount) in &recent {
        rows.insert(recent_key(key), amount.to_string());
    }
    let timers = expiries.iter().map(|(_, key)| recent_key(key)).collect();
    (rows, timers)
}

/// Runs `log` through payments v3 in batches of `size`; the view's rows
/// (the processor's, as text) and the names of its timers.
fn run(log: &[Input], size: usize) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
    let view = View::open(&dir.path().join("view.redb"), Duration::from_secs(3600)).unwrap();
    let plugin = runtime
        .load(kappa_plugins::PAYMENTS_V3.bytes, "payments-v3-tests")
        .unwrap();
    assert_eq!(plugin.contract(), Contract::V0_3_0);
    let settings = Settings {
        config: CONFIG.into(),
        ..Settings::default()
    };
    let mut instance = runtime
        .instantiate(&plugin, "payments@3.0.0", &settings)
        .unwrap();
    let mut offsets = [0; 2];
    let records: Vec<(u32, Record)> = log
        .iter()
        .map(|i| (i.topic, record(&mut offsets, i)))
        .collect();
    for (n, batch) in records.chunks(size).enumerate() {
        let topics: Vec<u32> = batch.iter().map(|(t, _)| *t).collect();
        let events = batch.iter().map(|(_, r)| r.clone()).collect();
        let writes = instance
            .process_topics(view.snapshot().unwrap(), events, &topics)
            .unwrap();
        view.commit(0, n as u64 + 1, &writes, false).unwrap();
    }
    let mut rows = BTreeMap::new();
    let mut timers = BTreeSet::new();
    let timer_prefix = Keys::new(0).timer(b"");
    for row in view.snapshot().unwrap().rows(b"", None).unwrap() {
        let (key, value) = row.unwrap();
        if let Some(name) = key.strip_prefix(timer_prefix.as_slice()) {
            timers.insert(String::from_utf8(name.to_vec()).unwrap());
        } else if !key.starts_with(RESERVED) {
            rows.insert(
                String::from_utf8(key).unwrap(),
                String::from_utf8(value).unwrap(),
            );
        }
    }
    (rows, timers)
}

#[test]
fn payments_v3_holds_exactly_the_rows_of_an_independent_computation() {
    let log = log(700);
    let (rows, timers) = model(&log);
    let count = |prefix: &str| rows.keys().filter(|k| k.starts_with(prefix)).count();
    let flags = |rule: &str| rows.values().filter(|v| v.contains(rule)).count();
    // The log exercises every rule, and expiry keeps the windows small.
    let seen = (
        flags("large-amount"),
        flags("velocity"),
        flags("over-limit"),
        count("limit/"),
        count("recent/"),
    );
    assert!(
        seen.0 > 5 && seen.1 > 5 && seen.2 > 5 && seen.3 == 8 && seen.4 < 40,
        "large, velocity, over-limit, limits, recent: {seen:?}"
    );
    assert_eq!(timers.len(), count("recent/"));
    for size in [700, 1, 13, 128] {
        assert_eq!(
            run(&log, size),
            (rows.clone(), timers.clone()),
            "batches of {size}"
        );
    }
}
