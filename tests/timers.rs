//! Event-time timers and several input topics (contract 0.3.0), tried
//! through the real `kappa` binary with the example payments v3, which reads
//! payments and account limits and whose timers expire each payment's row
//! once event time passes the window: the timers and every topic's offsets
//! are part of the view's state, so a replay killed with SIGKILL twice and
//! resumed ends with the view, timers included, of a replay never
//! interrupted, on one thread rather than two.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use kappa::workload::PaymentGenerator;
use support::*;

const CONFIG: &str = r#"{"window_ms":2000,"max_txns":3}"#;

/// Starts a host with two threads per version on `dir`, whose views write
/// their buffer to the file at every megabyte (no row cache, whose unused
/// room the buffer would borrow), so that a kill finds commits in the file.
fn start(dir: &std::path::Path) -> Server {
    Server::start_with(
        dir,
        &[
            "--threads-per-version",
            "2",
            "--view-write-buffer-mb",
            "1",
            "--view-row-cache-mb",
            "0",
        ],
        &[],
    )
}

/// The sum of the offsets in `offsets` (a list, or an object by partition).
fn applied(offsets: &serde_json::Value) -> u64 {
    let values: Vec<&serde_json::Value> = match offsets {
        serde_json::Value::Array(list) => list.iter().collect(),
        serde_json::Value::Object(map) => map.values().collect(),
        other => panic!("not offsets: {other}"),
    };
    values.iter().map(|o| o.as_u64().unwrap()).sum()
}

fn deploy(server: &Server, version: &str, threads: &str) {
    server.deploy_payments(
        kappa_plugins::PAYMENTS_V3.path,
        version,
        &[
            "--topic",
            "limits",
            "--config",
            CONFIG,
            "--threads",
            threads,
        ],
    );
}

/// A limit event per account of `payments` every 200 payments: the account's
/// limit from that payment's time on.
fn limits(payments: &[kappa::workload::Payment]) -> String {
    payments
        .iter()
        .step_by(200)
        .enumerate()
        .map(|(i, p)| {
            let limit = 20_000 + (i % 7) * 15_000;
            format!(
                "{{\"key\":\"{}\",\"value\":{{\"limit_cents\":{limit}}},\"timestamp\":{}}}\n",
                p.account, p.timestamp
            )
        })
        .collect()
}

#[test]
fn a_replay_killed_and_resumed_keeps_every_timer_and_fires_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let payments = PaymentGenerator::new(41, 300, 1_767_225_600_000).take(12_000);
    let server = start(dir.path());
    server.json(&["topic", "create", "payments", "--partitions", "2"]);
    server.json(&["topic", "create", "limits", "--partitions", "2"]);
    let file = dir.path().join("payments.jsonl");
    write_jsonl(&file, &payments);
    server.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
    let limits_file = dir.path().join("limits.jsonl");
    std::fs::write(&limits_file, limits(&payments)).unwrap();
    server.json(&["produce", "limits", "--file", limits_file.to_str().unwrap()]);
    deploy(&server, "3.0.0", "2");

    // Kill the host while the replay runs, twice: once it has applied a
    // third of the events, then two thirds. Each time the restarted host
    // must find the view's committed offsets past the start and short of
    // the end: the kill landed inside the replay.
    let mut server = server;
    let total = payments.len() as u64;
    let mut landed = 0;
    for target in [total / 3, 2 * total / 3] {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while applied(&server.version("payments@3.0.0")["applied_offsets"]) < target {
            assert!(std::time::Instant::now() < deadline, "the replay stalled");
            std::thread::sleep(Duration::from_millis(20));
        }
        server.kill();
        server = start(dir.path());
        let committed = applied(&server.json(&["digest", "payments@3.0.0"])["offsets"]);
        eprintln!("killed past {target} events: {committed} committed");
        if committed > 0 && committed < total {
            landed += 1;
        }
    }
    assert!(landed >= 1, "no kill landed inside the replay");
    let resumed = server.wait_applied("payments@3.0.0");
    assert_eq!(resumed["threads"], 2, "{resumed}");

    // The same bytes as another version, replayed whole on one thread.
    deploy(&server, "3.0.1", "1");
    server.wait_applied("payments@3.0.1");
    let digest = |id: &str| server.json(&["digest", id])["sha256"].clone();
    assert_eq!(digest("payments@3.0.0"), digest("payments@3.0.1"));

    // The view holds the windows and their timers, and expiry kept them
    // small: far fewer recent rows than payments.
    let rows = server.rows("payments@3.0.0");
    let recent = rows.keys().filter(|k| k.starts_with("recent/")).count();
    let flags = rows.keys().filter(|k| k.starts_with("flag/")).count();
    assert!(
        recent > 0 && recent < payments.len() / 20,
        "{recent} recent rows"
    );
    assert!(flags > 0, "no flag");
    // A timer per recent row, among the host's rows (keys from 0xff 0xff
    // "kappa/" on, shown in hex; `/timer/` in the key of a timer's row).
    let timers = rows
        .keys()
        .filter(|k| k.starts_with("0xffff6b617070612f") && k.contains("2f74696d65722f"))
        .count();
    assert_eq!(timers, recent, "{timers} timers for {recent} recent rows");
    server.stop();
}
