//! Tests of the plugins of contract 0.3.0-rc.1 run through the runtime with
//! one view per partition, each batch of partition P against P's view only,
//! as the contract's state per partition has it:
//!
//! - `payments-v2-shards` and `key-totals-v3` write exactly the rows of
//!   `payments-v2` and `key-totals` (which share one view between
//!   partitions), and no key in two partitions' views;
//! - `recent-window`, whose expiry reads the view by range, ends with the
//!   rows a native computation of "each account's last N events" gives;
//! - `global-count` does write one key from every partition, the case the
//!   contract forbids (which the host's processing of versions refuses).

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{Contract, Runtime};
use crate::log::{Record, partition_for_key};
use crate::registry::Settings;
use crate::store::View;
use crate::workload::PaymentGenerator;

const PARTITIONS: u32 = 3;

/// `n` generated payments over `accounts` accounts, keyed by account, each
/// in its key's partition at the next offset of that partition.
fn payments(n: usize, accounts: u64) -> Vec<Record> {
    let mut generator = PaymentGenerator::new(7, accounts, 1_767_225_600_000);
    let mut next = [0u64; PARTITIONS as usize];
    (0..n)
        .map(|_| {
            let p = generator.next_payment();
            let partition = partition_for_key(p.account.as_bytes(), PARTITIONS);
            let offset = next[partition as usize];
            next[partition as usize] += 1;
            Record {
                partition,
                offset,
                timestamp: p.timestamp,
                key: Some(p.account.clone().into_bytes()),
                value: serde_json::to_vec(&p).unwrap(),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// Runs `plugin` over `records` in batches of up to `batch` events of one
/// partition, the partitions taking turns, each batch against
/// `view_of(partition)` and committed to it.
fn replay<'v>(
    runtime: &Runtime,
    plugin: &kappa_plugins::Plugin,
    config: &str,
    records: &[Record],
    batch: usize,
    view_of: impl Fn(u32) -> &'v View,
) -> Contract {
    let plugin = runtime
        .load(plugin.bytes, &format!("{}-shard-tests", plugin.name))
        .unwrap();
    let settings = Settings {
        config: config.to_owned(),
        ..Settings::default()
    };
    let mut instance = runtime
        .instantiate(&plugin, "shards@1.0.0", &settings)
        .unwrap();
    let mut queues: Vec<Vec<Record>> = vec![Vec::new(); PARTITIONS as usize];
    for r in records {
        queues[r.partition as usize].push(r.clone());
    }
    let mut queues: Vec<std::vec::IntoIter<Record>> =
        queues.into_iter().map(Vec::into_iter).collect();
    loop {
        let mut any = false;
        for (partition, queue) in (0u32..).zip(&mut queues) {
            let events: Vec<Record> = queue.by_ref().take(batch).collect();
            let Some(last) = events.last().map(|r| r.offset) else {
                continue;
            };
            any = true;
            let view = view_of(partition);
            let writes = instance.process(view.snapshot().unwrap(), events).unwrap();
            view.commit(partition, last + 1, &writes, false).unwrap();
        }
        if !any {
            return plugin.contract();
        }
    }
}

fn views(dir: &Path, name: &str, n: u32) -> Vec<View> {
    (0..n)
        .map(|i| View::open(&dir.join(format!("{name}-{i}.redb")), Duration::ZERO).unwrap())
        .collect()
}

fn rows(view: &View) -> BTreeMap<Vec<u8>, Vec<u8>> {
    view.snapshot()
        .unwrap()
        .scan(b"", None, usize::MAX)
        .unwrap()
        .into_iter()
        .collect()
}

/// The rows of `shards` together, checking that no key is in two of them.
fn union(shards: &[View]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut all = BTreeMap::new();
    for (partition, shard) in shards.iter().enumerate() {
        for (key, value) in rows(shard) {
            let key_text = String::from_utf8_lossy(&key).into_owned();
            assert!(
                all.insert(key, value).is_none(),
                "{key_text} is in two partitions' shards (one is {partition})"
            );
        }
    }
    all
}

/// Replays `shared` (a 0.2.0 plugin) with one view for all partitions and
/// `sharded` (its 0.3.0-rc.1 build) with one view per partition over the
/// same payments, and checks that the shards together hold exactly the rows
/// of the shared view, no key in two shards.
fn same_rows(shared: &kappa_plugins::Plugin, sharded: &kappa_plugins::Plugin) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
    let records = payments(3_000, 40);
    let one = views(dir.path(), "shared", 1);
    let contract = replay(&runtime, shared, "", &records, 64, |_| &one[0]);
    assert_eq!(contract, Contract::V0_2_0);
    let shards = views(dir.path(), "sharded", PARTITIONS);
    let contract = replay(&runtime, sharded, "", &records, 64, |p| &shards[p as usize]);
    assert_eq!(contract, Contract::V0_3_0Rc1);
    assert!(
        shards.iter().all(|s| !rows(s).is_empty()),
        "every shard has rows"
    );
    let expected = rows(&one[0]);
    assert_eq!(union(&shards), expected, "{}", sharded.name);
    expected.keys().filter(|k| k.starts_with(b"flag/")).count()
}

#[test]
fn payments_v2_shards_on_shards_writes_exactly_the_rows_of_payments_v2() {
    let flags = same_rows(
        &kappa_plugins::PAYMENTS_V2,
        &kappa_plugins::PAYMENTS_V2_SHARDS,
    );
    assert!(flags > 0, "the log raises flags");
}

#[test]
fn key_totals_v3_on_shards_writes_exactly_the_rows_of_key_totals() {
    same_rows(&kappa_plugins::KEY_TOTALS, &kappa_plugins::KEY_TOTALS_V3);
}

#[test]
fn recent_window_keeps_each_accounts_last_events_as_a_native_computation_does() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
    let records = payments(1_500, 25);
    let shards = views(dir.path(), "window", PARTITIONS);
    // Pages of 2 rows over windows of 3: every expiry reads several pages,
    // the batch's own writes and deletions among them.
    let contract = replay(
        &runtime,
        &kappa_plugins::RECENT_WINDOW,
        r#"{"keep": 3, "page": 2}"#,
        &records,
        50,
        |p| &shards[p as usize],
    );
    assert_eq!(contract, Contract::V0_3_0Rc1);
    let mut last: BTreeMap<&[u8], Vec<&Record>> = BTreeMap::new();
    for r in &records {
        let kept = last.entry(r.key.as_deref().unwrap()).or_default();
        kept.push(r);
        if kept.len() > 3 {
            kept.remove(0);
        }
    }
    let expected: BTreeMap<Vec<u8>, Vec<u8>> = last
        .into_iter()
        .flat_map(|(account, kept)| {
            kept.into_iter().map(move |r| {
                let key = [b"w/", account, b"/", format!("{:020}", r.offset).as_bytes()].concat();
                (key, r.value.clone())
            })
        })
        .collect();
    assert_eq!(expected.len(), 25 * 3, "every account has over 3 events");
    assert_eq!(union(&shards), expected);
}

#[test]
fn global_count_writes_its_one_key_in_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
    let records = payments(300, 10);
    let shards = views(dir.path(), "count", PARTITIONS);
    replay(
        &runtime,
        &kappa_plugins::GLOBAL_COUNT,
        "",
        &records,
        20,
        |p| &shards[p as usize],
    );
    let counts: Vec<u64> = shards
        .iter()
        .map(|shard| {
            let value = shard
                .get(b"count")
                .unwrap()
                .expect("every shard has `count`");
            String::from_utf8(value).unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 300, "{counts:?}");
}
