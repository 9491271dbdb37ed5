//! Parallel partitions, tried through the real `kappa` binary: a version
//! whose state is per partition (contract 0.3.0-rc.1) processes its
//! partitions on several threads, and its view does not depend on how many.
//! The same log gives, on 1, 2 and 4 threads, after a restart with another
//! thread count, the view of the same logic on one shared view (contract
//! 0.2.0) and the view computed here independently, byte for byte. A key
//! written by two partitions stops the version with an error naming both.
//! (A SIGKILL in the middle of a parallel replay is tried by `tests/crash.rs`.)

#![allow(clippy::unwrap_used)]

mod support;

use kappa::workload::PaymentGenerator;
use support::*;

const SHARED: &str = "payments@2.0.0";
const PER_PARTITION: &str = "payments@3.0.0";
const PARTITIONS: usize = 4;

/// Starts a host with at most `threads` threads per version.
fn start(dir: &std::path::Path, threads: usize) -> Server {
    Server::start_with(dir, &["--threads-per-version", &threads.to_string()], &[])
}

/// Creates the topic `payments` with `PARTITIONS` partitions.
fn create_topic(server: &Server) {
    server.json(&[
        "topic",
        "create",
        "payments",
        "--partitions",
        &PARTITIONS.to_string(),
    ]);
}

fn produce(server: &Server, dir: &std::path::Path, payments: &[kappa::workload::Payment]) {
    let file = dir.join("payments.jsonl");
    write_jsonl(&file, payments);
    let produced = server.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
    assert_eq!(produced["appended"], payments.len());
}

#[test]
fn one_two_and_four_threads_build_the_view_one_shared_view_builds() {
    let payments = PaymentGenerator::new(17, 400, 1_767_225_600_000).take(30_000);
    let want = digest_of(&expected_view(&payments, V2_RULES));
    for threads in [1, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), threads);
        create_topic(&server);
        produce(&server, dir.path(), &payments);
        server.deploy_payments(kappa_plugins::PAYMENTS_V2.path, "2.0.0", &[]);
        server.deploy_payments(kappa_plugins::PAYMENTS_V2_SHARDS.path, "3.0.0", &[]);
        let shared = server.wait_applied(SHARED);
        let sharded = server.wait_applied(PER_PARTITION);
        // An earlier contract keeps one shared view on one thread; state per
        // partition gets a thread per partition, up to the limit.
        assert_eq!(shared["threads"], 1, "{shared}");
        assert_eq!(sharded["threads"], threads.min(PARTITIONS), "{sharded}");
        for id in [SHARED, PER_PARTITION] {
            assert_eq!(
                server.json(&["digest", id])["sha256"].as_str(),
                Some(want.as_str()),
                "{id} on {threads} threads differs from the independent computation"
            );
        }
        // Scans merge the shards in key order; a get finds a key's shard.
        let rows = server.rows(PER_PARTITION);
        assert_eq!(rows, server.rows(SHARED), "{threads} threads");
        let (key, value) = rows.iter().nth(rows.len() / 2).unwrap();
        let got = server.json(&["get", PER_PARTITION, key]);
        assert_eq!(got["row"]["value"].to_string(), *value, "{got}");
        let diff = server.json(&["diff", SHARED, PER_PARTITION]);
        assert_eq!(diff_counts(&diff)[..3], [0, 0, 0], "{diff}");
        // One file per partition, beside the shared view's one file.
        let views = dir.path().join("views").join("payments");
        assert!(views.join("2.0.0.redb").is_file());
        let shards = std::fs::read_dir(views.join("3.0.0.shards"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".redb")
            })
            .count();
        assert_eq!(shards, PARTITIONS);
        // A deploy bounds its own threads below the server's.
        if threads == 4 {
            server.deploy_payments(
                kappa_plugins::PAYMENTS_V2_SHARDS.path,
                "3.0.1",
                &["--threads", "2"],
            );
            let bounded = server.wait_applied("payments@3.0.1");
            assert_eq!(bounded["threads"], 2, "{bounded}");
            assert_eq!(bounded["settings"]["threads"], 2, "{bounded}");
            assert_eq!(
                server.json(&["digest", "payments@3.0.1"])["sha256"].as_str(),
                Some(want.as_str())
            );
        }
        server.stop();
    }
}

#[test]
fn a_restart_on_another_thread_count_carries_on_with_the_same_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut generator = PaymentGenerator::new(23, 300, 1_767_225_600_000);
    let mut payments = generator.take(20_000);
    let server = start(dir.path(), 4);
    create_topic(&server);
    produce(&server, dir.path(), &payments);
    server.deploy_payments(kappa_plugins::PAYMENTS_V2_SHARDS.path, "3.0.0", &[]);
    server.wait_applied(PER_PARTITION);
    server.stop();

    // Two threads now, then one: each reopens the shards with another split
    // of the partitions, and live events keep being applied exactly once.
    for threads in [2, 1] {
        let server = start(dir.path(), threads);
        let more = generator.take(5_000);
        produce(&server, dir.path(), &more);
        payments.extend(more);
        let status = server.wait_applied(PER_PARTITION);
        assert_eq!(status["threads"], threads, "{status}");
        assert_eq!(
            server.json(&["digest", PER_PARTITION])["sha256"].as_str(),
            Some(digest_of(&expected_view(&payments, V2_RULES)).as_str()),
            "after a restart on {threads} threads"
        );
        server.stop();
    }
}

#[test]
fn a_key_written_by_two_partitions_stops_the_version_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 2);
    server.json(&["topic", "create", "counts", "--partitions", "2"]);
    // Keys that land in both partitions.
    let lines: String = (0..200)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{{}}\"}}\n"))
        .collect();
    let out = server.run_stdin(&["produce", "counts", "--json"], Some(&lines));
    assert!(out.status.success(), "{out:?}");
    let produced: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ranges = produced["partitions"].as_array().unwrap();
    assert_eq!(ranges.len(), 2, "events in both partitions: {produced}");
    server.json(&[
        "deploy",
        kappa_plugins::GLOBAL_COUNT.path,
        "--name",
        "counts",
        "--version",
        "1.0.0",
        "--topic",
        "counts",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let failed = loop {
        let v = server.version("counts@1.0.0");
        if v["state"] == "failed" {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "never failed: {v}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let message = failed["failure"]["message"].as_str().unwrap();
    assert!(message.contains("`count`"), "{message}");
    assert!(
        message.contains("partition 0") && message.contains("partition 1"),
        "{message}"
    );
    // The status names where it stopped, and the refused batch was undone:
    // the view stays readable, with the key in one shard at most.
    assert!(failed["failure"]["partition"].is_u64(), "{failed}");
    let digest = server.json(&["digest", "counts@1.0.0"]);
    assert!(digest["rows"].as_u64().unwrap() <= 1, "{digest}");
}

/// The niceness of each thread of process `pid` named `name` (Linux: the
/// `comm` of `/proc/PID/task/TID`, at most 15 bytes), by thread id.
#[cfg(target_os = "linux")]
fn nice_of_threads(pid: u32, name: &str) -> Vec<(u32, i64)> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return found;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        if let Some(nice) = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .as_deref()
            .and_then(nice_in_stat)
        {
            let tid = task.file_name().to_string_lossy().parse().unwrap();
            found.push((tid, nice));
        }
    }
    found
}

/// The `nice` field (the 19th) of a `/proc/.../stat` line; the name, in
/// parentheses, may hold spaces.
#[cfg(target_os = "linux")]
fn nice_in_stat(stat: &str) -> Option<i64> {
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(16)?.parse().ok()
}

#[cfg(target_os = "linux")]
#[test]
fn a_replaying_versions_threads_run_below_the_host_and_carry_on_at_its_priority() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 2);
    server.json(&["topic", "create", "payments", "--partitions", "2"]);
    let payments = PaymentGenerator::new(29, 300, 1_767_225_600_000).take(60_000);
    produce(&server, dir.path(), &payments);
    let pid = server.pid();
    let base =
        nice_in_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap()).unwrap();
    // Names of at most 15 bytes: the lanes are `kappa-p@1.0.0-0` and `-1`,
    // the coordinator `kappa-p@1.0.0`.
    server.json(&[
        "deploy",
        kappa_plugins::PAYMENTS_V2_SHARDS.path,
        "--name",
        "p",
        "--version",
        "1.0.0",
        "--topic",
        "payments",
    ]);
    let lanes = ["kappa-p@1.0.0-0", "kappa-p@1.0.0-1"];
    let mut lowered = [false, false];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while lowered != [true, true] && server.version("p@1.0.0")["state"] == "replaying" {
        for (lane, seen) in lanes.iter().zip(&mut lowered) {
            if nice_of_threads(pid, lane)
                .iter()
                .any(|(_, nice)| *nice == (base + 10).min(19))
            {
                *seen = true;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replay lasted over a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(
        lowered,
        [true, true],
        "a replaying lane ran at the host's priority"
    );
    for (_, nice) in nice_of_threads(pid, "kappa-p@1.0.0") {
        assert_eq!(nice, base, "the coordinator keeps the host's priority");
    }
    // Caught up, each lane carries on on a thread at the host's priority.
    let caught_up = server.wait_applied("p@1.0.0");
    assert_eq!(caught_up["threads"], 2, "{caught_up}");
    for lane in lanes {
        let threads = nice_of_threads(pid, lane);
        assert_eq!(threads.len(), 1, "{lane}: {threads:?}");
        assert_eq!(
            threads[0].1, base,
            "{lane} runs live below the host's priority"
        );
    }
    server.stop();
}
