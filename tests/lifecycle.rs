//! The whole story end to end, through the real `kappa` binary and the
//! example components built from source: produce, deploy v1, deploy v2 while
//! v1 serves, check both views against values computed here independently,
//! diff, promote, rollback, retire, then SIGKILL the host, restart it and
//! find everything intact and still processing.

#![allow(clippy::unwrap_used)]

mod support;

use kappa::workload::PaymentGenerator;
use support::*;

const V1: &str = "payments@1.0.0";
const V2: &str = "payments@2.0.0";

fn deploy(
    server: &Server,
    plugin: &kappa_plugins::Plugin,
    version: &str,
    extra: &[&str],
) -> serde_json::Value {
    server.deploy_payments(plugin.path, version, extra)
}

#[test]
fn deploy_replay_diff_promote_rollback_retire_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut generator = PaymentGenerator::new(11, 60, 1_767_225_600_000);

    // A topic and some history, produced from a file.
    let created = server.json(&["topic", "create", "payments", "--partitions", "3"]);
    assert_eq!(created["partitions"], 3);
    let mut payments = generator.take(3000);
    let file = dir.path().join("history.jsonl");
    write_jsonl(&file, &payments);
    let produced = server.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
    assert_eq!(produced["appended"], 3000);
    let ranges = produced["partitions"].as_array().unwrap();
    assert_eq!(
        ranges
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>(),
        3000
    );
    assert!(ranges.iter().all(|r| r["first_offset"] == 0));

    // v1: the first version is promoted once it has caught up.
    let v1 = deploy(&server, &kappa_plugins::PAYMENTS_V1, "1.0.0", &["--wait"]);
    assert_eq!(v1["state"], "promoted", "{v1}");
    assert_eq!(v1["lag"], 0);

    // More events arrive (from stdin this time), then v2 replays beside v1.
    let more = generator.take(1000);
    let lines: String = more
        .iter()
        .map(|p| serde_json::to_string(&p.to_event_line()).unwrap() + "\n")
        .collect();
    let out = server.run_stdin(&["produce", "payments", "--json"], Some(&lines));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    payments.extend(more);
    let report = deploy(&server, &kappa_plugins::PAYMENTS_V2, "2.0.0", &[]);
    assert_eq!(report["created"], true);
    assert_eq!(report["events_to_replay"], 4000);
    assert_eq!(report["digest"].as_str().unwrap().len(), 64);
    let v2 = server.wait_applied(V2);
    assert_eq!(
        v2["state"], "caught_up",
        "later versions wait for a promotion: {v2}"
    );
    server.wait_applied(V1);

    // Both views equal what the rules compute, byte for byte.
    let want_v1 = expected_view(&payments, V1_RULES);
    let want_v2 = expected_view(&payments, V2_RULES);
    assert_eq!(server.rows(V1), as_json_rows(&want_v1));
    assert_eq!(server.rows(V2), as_json_rows(&want_v2));
    let d1 = server.json(&["digest", V1]);
    assert_eq!(d1["sha256"], digest_of(&want_v1));
    assert_eq!(d1["rows"], want_v1.len());
    assert_eq!(server.json(&["digest", V2])["sha256"], digest_of(&want_v2));

    // The diff counts match the expected views; rows show both sides.
    let diff = server.json(&["diff", V1, V2, "--limit", "5"]);
    assert_eq!(diff_counts(&diff), expected_diff(&want_v1, &want_v2, ""));
    let offsets: u64 = diff["offsets"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        offsets, 4000,
        "compared at the same, full log position: {diff}"
    );
    let accounts = server.json(&["diff", V1, V2, "--prefix", "account/", "--limit", "1000"]);
    let counts = diff_counts(&accounts);
    assert_eq!(counts, expected_diff(&want_v1, &want_v2, "account/"));
    assert!(
        counts[2] > 0,
        "the rule change must change some accounts: {counts:?}"
    );
    let changed = &accounts["rows"][0];
    assert_eq!(changed["change"], "changed");
    assert_eq!(changed["fields"][0]["path"], "flagged");
    assert_ne!(changed["a"], changed["b"]);
    let text =
        String::from_utf8(server.run(&["diff", V1, V2, "--prefix", "account/"]).stdout).unwrap();
    assert!(
        text.contains("changed") && text.contains("flagged"),
        "{text}"
    );

    // Queries without a version read the promoted one.
    let key = "account/acct-0007";
    assert_eq!(server.json(&["get", "payments", key])["id"], V1);
    let v1_row = server.json(&["get", V1, key])["row"]["value"].clone();
    let v2_row = server.json(&["get", V2, key])["row"]["value"].clone();

    // Promote v2, roll back to v1, promote v2 again.
    let p = server.json(&["promote", V2]);
    assert_eq!(
        (p["promoted"].as_str(), p["previous"].as_str()),
        (Some("2.0.0"), Some("1.0.0"))
    );
    let got = server.json(&["get", "payments", key]);
    assert_eq!(
        (got["id"].as_str(), &got["row"]["value"]),
        (Some(V2), &v2_row)
    );
    let r = server.json(&["rollback", "payments"]);
    assert_eq!(
        (r["promoted"].as_str(), r["previous"].as_str()),
        (Some("1.0.0"), Some("2.0.0"))
    );
    let got = server.json(&["get", "payments", key]);
    assert_eq!(
        (got["id"].as_str(), &got["row"]["value"]),
        (Some(V1), &v1_row)
    );

    // The promoted version cannot be retired; another one can, and its view goes.
    let err = server.fails(&["retire", V1], 1);
    assert!(err.contains("promoted version"), "{err}");
    server.json(&["promote", V2]);
    let retired = server.json(&["retire", V1]);
    assert_eq!(retired["state"], "retired");
    let err = server.fails(&["get", V1, key], 2);
    assert!(err.contains("dropped"), "{err}");
    let err = server.fails(&["rollback", "payments"], 1);
    assert!(err.contains("previous"), "{err}");
    let digest_v2 = server.json(&["digest", V2])["sha256"].clone();

    // SIGKILL, restart: alias, states and views are intact, and processing
    // resumes exactly where it stopped.
    server.kill();
    let server = Server::start(dir.path());
    let p = server.json(&["status", "payments"]);
    assert_eq!(p["processors"][0]["promoted"], "2.0.0");
    assert_eq!(server.version(V1)["state"], "retired");
    server.wait_applied(V2);
    assert_eq!(server.json(&["digest", V2])["sha256"], digest_v2);
    let last = generator.take(500);
    write_jsonl(&file, &last);
    server.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
    payments.extend(last);
    server.wait_applied(V2);
    let want_v2 = expected_view(&payments, V2_RULES);
    assert_eq!(
        server.json(&["digest", "payments"])["sha256"],
        digest_of(&want_v2)
    );

    // A clean stop then a start also keeps everything, and recompiles nothing.
    server.stop();
    let server = Server::start(dir.path());
    assert_eq!(
        server.json(&["digest", "payments"])["sha256"],
        digest_of(&want_v2)
    );
    let compiled = std::fs::read_dir(dir.path().join("compiled"))
        .unwrap()
        .count();
    assert_eq!(
        compiled, 2,
        "one cached machine-code file per deployed component"
    );
    let text = String::from_utf8(server.run(&["status"]).stdout).unwrap();
    assert!(
        text.contains("promoted") && text.contains("retired"),
        "{text}"
    );
}

#[test]
fn a_trapping_version_fails_alone_with_partition_offset_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "payments", "--partitions", "2"]);
    let mut generator = PaymentGenerator::new(5, 20, 1_767_225_600_000);
    let file = dir.path().join("events.jsonl");
    let before = generator.take(300);
    write_jsonl(&file, &before);
    server.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
    deploy(&server, &kappa_plugins::PAYMENTS_V1, "1.0.0", &["--wait"]);

    // The poison event goes to an explicit partition, between good events.
    let poison = r#"{"key":"acct-0001","value":"boom","partition":1}"#;
    let out = server.run_stdin(
        &["produce", "payments", "--json"],
        Some(&format!("{poison}\n")),
    );
    assert!(out.status.success());
    let poison_offset = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["partitions"][0]["first_offset"]
        .as_u64()
        .unwrap();

    let faulty = server.json(&[
        "deploy",
        kappa_plugins::FAULTY.path,
        "--name",
        "faulty",
        "--version",
        "0.1.0",
        "--topic",
        "payments",
        "--config",
        r#"{"mode":"trap","fail_on":"boom"}"#,
    ]);
    assert_eq!(faulty["created"], true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let failed = loop {
        let v = server.version("faulty@0.1.0");
        if v["state"] == "failed" {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "never failed: {v}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let f = &failed["failure"];
    assert_eq!(
        (f["partition"].as_u64(), f["offset"].as_u64()),
        (Some(1), Some(poison_offset)),
        "{f}"
    );
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("poison event"),
        "the guest's panic message is quoted: {message}"
    );
    // The events before the poison event were applied, nothing after it.
    assert_eq!(failed["applied_offsets"][1].as_u64(), Some(poison_offset));
    // The human status says it too.
    let text = String::from_utf8(server.run(&["status", "faulty"]).stdout).unwrap();
    assert!(
        text.contains(&format!("failed at partition 1 offset {poison_offset}")),
        "{text}"
    );

    // payments@1.0.0 is unharmed: it stops on the same event too (its own
    // rule: not JSON), but it is its own failure, and new events for a
    // healthy processor keep flowing.
    let v1 = server.version("payments@1.0.0");
    assert_eq!(v1["state"], "failed");
    assert!(
        v1["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON"),
        "{v1}"
    );
    server.deploy_starter("1.0.0", "payments");
    assert_eq!(server.version("counts@1.0.0")["state"], "promoted");
    // A failed version is refused redeploy with the same bytes; a new version is fine.
    let err = server.fails(
        &[
            "deploy",
            kappa_plugins::FAULTY.path,
            "--name",
            "faulty",
            "--version",
            "0.1.0",
            "--topic",
            "payments",
        ],
        1,
    );
    assert!(
        err.contains("failed") && err.contains("new version"),
        "{err}"
    );
    // The host stays up and its other views answer.
    assert_eq!(server.json(&["get", "counts", "acct-0001"])["found"], true);
}

#[test]
fn diff_under_live_appends_compares_both_views_at_one_position() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "payments", "--partitions", "4"]);
    let mut generator = PaymentGenerator::new(3, 40, 1_767_225_600_000);
    let file = dir.path().join("events.jsonl");
    write_jsonl(&file, &generator.take(2000));
    server.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
    deploy(&server, &kappa_plugins::PAYMENTS_V1, "1.0.0", &["--wait"]);
    deploy(&server, &kappa_plugins::PAYMENTS_V2, "2.0.0", &["--wait"]);

    // A producer appends small batches as fast as it can while diffs run: each
    // diff must still find both views at one position (the barrier), and the
    // counts must be those of the two rule sets over exactly that prefix.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (url, stop, mut generator) = (server.url.clone(), stop.clone(), generator.clone());
        std::thread::spawn(move || {
            let mut batches = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let lines: String = generator
                    .take(50)
                    .iter()
                    .map(|p| serde_json::to_string(&p.to_event_line()).unwrap() + "\n")
                    .collect();
                let mut child = std::process::Command::new(KAPPA)
                    .args(["produce", "payments", "--server", &url])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(lines.as_bytes())
                    .unwrap();
                assert!(child.wait().unwrap().success());
                batches += 1;
            }
            batches
        })
    };
    // The log's end, summed over partitions.
    let log_end = || -> u64 {
        let topics = server.json(&["topic", "list"]);
        topics[0]["end_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_u64().unwrap())
            .sum()
    };
    // Diffs start once the producer is appending.
    while log_end() == 2000 {
        std::thread::yield_now();
    }
    let mut reports = Vec::new();
    let mut arrived_after = 0;
    for _ in 0..15 {
        let report = server.json(&["diff", V1, V2, "--limit", "0"]);
        let barrier: u64 = report["offsets"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        // Events appended after the barrier, while this diff compared the
        // views at it: they are in the log but not in the diff's counts.
        if log_end() > barrier {
            arrived_after += 1;
        }
        reports.push(report);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = producer.join().unwrap();
    assert!(batches > 0);
    assert!(
        arrived_after > 0,
        "no diff ran while events arrived after its barrier: the test proved nothing"
    );
    let barriers: std::collections::BTreeSet<String> =
        reports.iter().map(|r| r["offsets"].to_string()).collect();
    eprintln!(
        "{} diffs at {} positions, {arrived_after} with events appended after their barrier",
        reports.len(),
        barriers.len()
    );

    // Everything produced, in order: the history, then the producer's batches.
    let mut replay = PaymentGenerator::new(3, 40, 1_767_225_600_000);
    let all = replay.take(2000 + 50 * batches);
    for report in reports {
        let offsets: Vec<u64> = (0..4)
            .map(|p| report["offsets"][p.to_string()].as_u64().unwrap_or(0))
            .collect();
        // The events each view had applied: per partition, the first
        // `offsets[p]` events of that partition.
        let mut seen = [0u64; 4];
        let prefix: Vec<_> = all
            .iter()
            .filter(|p| {
                let part = kappa::log::partition_for_key(p.account.as_bytes(), 4) as usize;
                seen[part] += 1;
                seen[part] <= offsets[part]
            })
            .cloned()
            .collect();
        let (a, b) = (
            expected_view(&prefix, V1_RULES),
            expected_view(&prefix, V2_RULES),
        );
        assert_eq!(
            diff_counts(&report),
            expected_diff(&a, &b, ""),
            "at offsets {offsets:?}"
        );
    }
}

/// A version that is stuck replaying for a while, deterministically: the
/// faulty plugin loops on its poison event until the batch time limit, then
/// the event is skipped (twice the limit: the batch, then the event alone).
fn deploy_stuck(server: &Server, version: &str, extra: &[&str]) {
    let mut args = vec![
        "deploy",
        kappa_plugins::FAULTY.path,
        "--name",
        "faulty",
        "--version",
        version,
        "--topic",
        "events",
        "--config",
        r#"{"mode":"loop"}"#,
        "--on-error",
        "skip",
        "--batch-timeout-ms",
        "6000",
    ];
    args.extend(extra);
    server.json(&args);
}

#[test]
fn promote_and_diff_refuse_a_replaying_version_unless_forced_or_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "events", "--partitions", "1"]);
    let event = |key: &str, value: &str| {
        serde_json::json!({"key": key, "value": value, "partition": 0}).to_string() + "\n"
    };
    let mut lines: String = (0..10)
        .map(|i| event(&format!("k{}", i % 2), "ok"))
        .collect();
    lines.push_str(&event("k0", "boom"));
    lines.extend((0..5).map(|i| event(&format!("k{}", i % 2), "ok")));
    let out = server.run_stdin(&["produce", "events"], Some(&lines));
    assert!(out.status.success());
    let v1 = server.json(&[
        "deploy",
        kappa_plugins::FAULTY.path,
        "--name",
        "faulty",
        "--version",
        "1.0.0",
        "--topic",
        "events",
        "--wait",
    ]);
    assert_eq!(v1["state"], "promoted", "{v1}");

    // 2.0.0 replays (stuck on its poison event), with --auto-promote.
    deploy_stuck(&server, "2.0.0", &["--auto-promote"]);
    assert_eq!(server.version("faulty@2.0.0")["state"], "replaying");
    let err = server.fails(&["promote", "faulty@2.0.0"], 1);
    assert!(
        err.contains("still replaying") && err.contains("force"),
        "{err}"
    );
    let err = server.fails(&["diff", "faulty@1.0.0", "faulty@2.0.0"], 1);
    assert!(
        err.contains("still replaying") && err.contains("wait"),
        "{err}"
    );
    // Still replaying now, so both were refused during the replay; and
    // --auto-promote has not promoted it.
    assert_eq!(server.version("faulty@2.0.0")["state"], "replaying");
    let status = server.json(&["status", "faulty"]);
    assert_eq!(status["processors"][0]["promoted"], "1.0.0", "{status}");

    // diff --wait waits for the replay, then compares the whole log: the
    // views differ only by the event 2.0.0 skipped (a count of k0).
    let diff = server.json(&["diff", "faulty@1.0.0", "faulty@2.0.0", "--wait", "120"]);
    let v2 = server.version("faulty@2.0.0");
    assert_ne!(v2["state"], "replaying", "{v2}");
    assert_eq!(diff_counts(&diff), [0, 0, 1, 1], "{diff}");
    assert_eq!(diff["rows"][0]["key"], "k0", "{diff}");
    assert_eq!(diff["offsets"]["0"], 16, "{diff}");

    // Caught up, --auto-promote promoted it.
    let v2 = server.wait_applied("faulty@2.0.0");
    assert_eq!(v2["state"], "promoted", "{v2}");
    assert_eq!(v2["dead_letter_count"], 1, "{v2}");
    let status = server.json(&["status", "faulty"]);
    assert_eq!(status["processors"][0]["promoted"], "2.0.0", "{status}");

    // --force promotes a version that is still replaying.
    deploy_stuck(&server, "3.0.0", &[]);
    assert_eq!(server.version("faulty@3.0.0")["state"], "replaying");
    let p = server.json(&["promote", "faulty@3.0.0", "--force"]);
    assert_eq!(p["promoted"], "3.0.0", "{p}");
    // Reads now go to its partial view (still without the keys it has not
    // reached: exit 1, not found).
    let out = server.run(&["get", "faulty", "k1", "--json"]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["id"], "faulty@3.0.0", "{got}");
    let v3 = server.version("faulty@3.0.0");
    assert_eq!(
        (v3["state"].as_str(), v3["caught_up"].as_bool()),
        (Some("promoted"), Some(false)),
        "forced while replaying: {v3}"
    );
}
