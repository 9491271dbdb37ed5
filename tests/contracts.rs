//! Both contract versions hand a plugin the same events.
//!
//! `echo-v1` (contract 0.1.0, one record per event) and `echo-v2` (0.2.0, the
//! batch in columns) write every field of every event they receive to their
//! views. Over one log holding every shape an event can take (no key, an
//! empty key, an empty value, bytes that are not UTF-8, headers or none, a
//! large value, extreme timestamps) and cut into batches of every size, their
//! views must be byte-identical and hold exactly the events produced. Then
//! an event a 0.2.0 plugin refuses is named by its offset, as with 0.1.0, and
//! skipped as a dead letter under `on_error = skip`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kappa::log::NewRecord;
use kappa::registry::{OnError, Settings, VersionId};
use kappa::{Host, HostOptions};

fn host(dir: &std::path::Path, batch_size: usize) -> Arc<Host> {
    let options = HostOptions {
        batch_size,
        ..HostOptions::default()
    };
    Host::open(dir, options).expect("open the host")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What echo writes for an event (see plugins/rust/echo-v1/src/describe.rs).
fn described(r: &NewRecord) -> String {
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|(name, value)| format!("{}={}", hex(name.as_bytes()), hex(value)))
        .collect();
    format!(
        "ts={} key={} value={} headers=[{}]",
        r.timestamp,
        r.key.as_deref().map_or_else(|| "none".to_owned(), hex),
        hex(&r.value),
        headers.join(" ")
    )
}

/// Every shape of event, `n` of them, cycling through the shapes.
fn events(n: usize) -> Vec<(Option<u32>, NewRecord)> {
    (0..n)
        .map(|i| {
            let shape = i % 8;
            let record = NewRecord {
                timestamp: match shape {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    2 => -1,
                    _ => 1_700_000_000_000 + i as i64,
                },
                key: match shape {
                    0 | 5 => None,
                    1 => Some(Vec::new()),
                    2 => Some(vec![0xff, 0x00, 0xfe]),
                    _ => Some(format!("key-{}", i % 5).into_bytes()),
                },
                value: match shape {
                    3 => Vec::new(),
                    4 => vec![0x80 | (i as u8); 100_000],
                    _ => format!("{{\"n\":{i}}}").into_bytes(),
                },
                headers: match shape {
                    5 => vec![("trace".into(), format!("t-{i}").into_bytes())],
                    6 => vec![
                        ("a".into(), Vec::new()),
                        ("a".into(), vec![1, 2, 3]),
                        ("ünïcode".into(), b"x".to_vec()),
                    ],
                    _ => Vec::new(),
                },
            };
            // Keyless events go where they are told (round-robin otherwise).
            let partition = record.key.is_none().then_some((i % 3) as u32);
            (partition, record)
        })
        .collect()
}

fn wait_caught_up(host: &Host, id: &VersionId, total: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = host.version_status(id).expect("status");
        assert!(status.failure.is_none(), "{id}: {:?}", status.failure);
        if status.applied_offsets.iter().sum::<u64>() >= total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} did not catch up: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rows(host: &Host, spec: &str) -> BTreeMap<String, String> {
    let page = host.scan(spec, b"", None, 100_000).expect("scan");
    assert!(page.next_after.is_none());
    page.rows
        .into_iter()
        .map(|row| (row.key, row.value.as_string().expect("text")))
        .collect()
}

#[test]
fn both_contracts_hand_a_plugin_the_same_events() {
    // Batch sizes 1 (every event alone), 7 (batches cut anywhere) and the
    // default (whole partitions at once).
    for batch_size in [1, 7, HostOptions::default().batch_size] {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = host(dir.path(), batch_size);
        host.create_topic("t", 3).expect("topic");
        let produced = events(200);
        let expected_values: Vec<String> = produced.iter().map(|(_, r)| described(r)).collect();
        // Half before the deploy (replayed), half after (live).
        let (before, after) = produced.split_at(100);
        host.produce("t", before.to_vec()).expect("produce");
        let v1 = VersionId::parse("echo@1.0.0").expect("id");
        let v2 = VersionId::parse("echo@2.0.0").expect("id");
        host.deploy(&v1, "t", kappa_plugins::ECHO_V1.bytes, Settings::default())
            .expect("deploy echo-v1");
        host.deploy(&v2, "t", kappa_plugins::ECHO_V2.bytes, Settings::default())
            .expect("deploy echo-v2");
        host.produce("t", after.to_vec()).expect("produce");
        wait_caught_up(&host, &v1, 200);
        wait_caught_up(&host, &v2, 200);

        let one = rows(&host, "echo@1.0.0");
        let two = rows(&host, "echo@2.0.0");
        assert_eq!(one.len(), 200, "batch size {batch_size}");
        assert_eq!(one, two, "batch size {batch_size}");
        let (_, d1) = host.digest("echo@1.0.0").expect("digest");
        let (_, d2) = host.digest("echo@2.0.0").expect("digest");
        assert_eq!(d1.sha256, d2.sha256);

        // Exactly the events produced: the same descriptions, each once, and
        // per partition the offsets 0.. with no gap.
        let mut got: Vec<&String> = one.values().collect();
        let mut want: Vec<&String> = expected_values.iter().collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "batch size {batch_size}");
        for partition in 0..3 {
            let offsets: Vec<u64> = one
                .keys()
                .filter_map(|k| k.strip_prefix(&format!("event/{partition}/")))
                .map(|o| o.parse().expect("offset"))
                .collect();
            assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
        }
    }
}

#[test]
fn a_refused_event_of_a_columns_plugin_is_named_by_its_offset() {
    let payment = |i: u64, amount: i64| NewRecord {
        timestamp: 1_700_000_000_000 + i as i64,
        key: Some(b"acct-1".to_vec()),
        value: format!(
            r#"{{"txn":"t-{i}","account":"acct-1","amount_cents":{amount},"merchant":"m"}}"#
        )
        .into_bytes(),
        headers: Vec::new(),
    };
    let records: Vec<(Option<u32>, NewRecord)> = (0..10)
        .map(|i| (None, payment(i, if i == 6 { -5 } else { 100 })))
        .collect();

    let dir = tempfile::tempdir().expect("tempdir");
    let host = host(dir.path(), 4);
    host.create_topic("payments", 1).expect("topic");
    host.produce("payments", records).expect("produce");
    assert_eq!(
        kappa::runtime::Runtime::new(&dir.path().join("check"))
            .expect("runtime")
            .load(kappa_plugins::PAYMENTS_V2.bytes, "payments-v2")
            .expect("load")
            .contract,
        "0.2.0"
    );

    // Stop: the version fails at offset 6, with its earlier batch applied.
    let stop = VersionId::parse("payments@2.0.0").expect("id");
    host.deploy(
        &stop,
        "payments",
        kappa_plugins::PAYMENTS_V2.bytes,
        Settings::default(),
    )
    .expect("deploy");
    let deadline = Instant::now() + Duration::from_secs(60);
    let failure = loop {
        let status = host.version_status(&stop).expect("status");
        if let Some(failure) = status.failure {
            break failure;
        }
        assert!(Instant::now() < deadline, "no failure: {status:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((failure.partition, failure.offset), (Some(0), Some(6)));
    assert!(
        failure.message.contains("amount_cents is negative: -5"),
        "{}",
        failure.message
    );
    // Every event before it is applied (the host retried the failing batch
    // event by event to find it), nothing from it on.
    let status = host.version_status(&stop).expect("status");
    assert_eq!(status.applied_offsets, [6]);

    // Skip: the event becomes a dead letter and the other 9 are counted.
    let skip = VersionId::parse("payments@2.0.1").expect("id");
    let settings = Settings {
        on_error: OnError::Skip,
        ..Settings::default()
    };
    host.deploy(
        &skip,
        "payments",
        kappa_plugins::PAYMENTS_V2.bytes,
        settings,
    )
    .expect("deploy");
    wait_caught_up(&host, &skip, 10);
    let (_, row) = host.get("payments@2.0.1", b"account/acct-1").expect("get");
    let row: serde_json::Value =
        serde_json::from_slice(&row.expect("the account row")).expect("json");
    assert_eq!(row["txns"], 9);
    assert_eq!(row["total_cents"], 900);
    let status = host.version_status(&skip).expect("status");
    let letters: Vec<(u32, u64)> = status
        .dead_letters
        .iter()
        .map(|d| (d.partition, d.offset))
        .collect();
    assert_eq!(letters, [(0, 6)]);
}
