//! The payments v2 rules written in Rust, Python, JavaScript and C, deployed as
//! versions of one processor over one log: their views are byte-identical and
//! equal to the rules computed here; each language replays deterministically,
//! also across a SIGKILL; and a malformed event stops each of them at the same
//! partition and offset with an `invalid-event` error. All four speak
//! contract 0.2.0 (the batch in columns).
//!
//! The Python, JavaScript and C components are built by
//! `plugins/build-polyglot.sh DIR` (which `scripts/test` runs), found through
//! `KAPPA_POLYGLOT_DIR=DIR`. Without it the test is skipped with a notice,
//! unless `CI` is set, where it fails.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use kappa::workload::{Payment, PaymentGenerator};
use serde_json::Value;
use support::*;

/// One implementation of the payments v2 rules.
struct Plugin {
    language: &'static str,
    path: String,
}

/// The four implementations, or `None` (after a notice) when the
/// polyglot components were not built.
fn plugins() -> Option<Vec<Plugin>> {
    let Some(dir) = std::env::var_os("KAPPA_POLYGLOT_DIR") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "KAPPA_POLYGLOT_DIR is not set: run plugins/build-polyglot.sh DIR and set it to DIR"
        );
        eprintln!(
            "notice: polyglot test skipped: KAPPA_POLYGLOT_DIR is not set \
             (scripts/test builds the components with plugins/build-polyglot.sh and sets it)"
        );
        return None;
    };
    let dir = PathBuf::from(dir);
    let built = |file: &str| {
        let path = dir.join(file);
        assert!(
            path.is_file(),
            "{} is missing: run plugins/build-polyglot.sh {}",
            path.display(),
            dir.display()
        );
        path.to_str().unwrap().to_owned()
    };
    Some(vec![
        Plugin {
            language: "rust",
            path: kappa_plugins::PAYMENTS_V2.path.to_owned(),
        },
        Plugin {
            language: "python",
            path: built("payments-v2-python.wasm"),
        },
        Plugin {
            language: "js",
            path: built("payments-v2-js.wasm"),
        },
        Plugin {
            language: "c",
            path: built("payments-v2-c.wasm"),
        },
    ])
}

fn deploy(server: &Server, path: &str, id: &str, topic: &str, extra: &[&str]) -> Value {
    let (name, version) = id.split_once('@').unwrap();
    let mut args = vec![
        "deploy",
        path,
        "--name",
        name,
        "--version",
        version,
        "--topic",
        topic,
    ];
    args.extend(extra);
    server.json(&args)
}

fn produce(server: &Server, topic: &str, payments: &[Payment]) {
    let file = server.data_dir.join("produce.jsonl");
    write_jsonl(&file, payments);
    let report = server.json(&["produce", topic, "--file", file.to_str().unwrap()]);
    assert_eq!(report["appended"], payments.len());
}

fn digest(server: &Server, id: &str) -> String {
    server.json(&["digest", id])["sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn rust_python_js_and_c_build_identical_views_and_fail_alike() {
    let Some(plugins) = plugins() else {
        return;
    };
    // Every example speaks contract 0.2.0, the batch in columns.
    for plugin in &plugins {
        let out = std::process::Command::new(KAPPA)
            .args(["plugin", "check", &plugin.path, "--json"])
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["contract"], "0.2.0", "{}: {report}", plugin.language);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());

    // History, then one version per language replaying it side by side.
    server.json(&["topic", "create", "payments", "--partitions", "4"]);
    let mut generator = PaymentGenerator::new(23, 80, 1_767_225_600_000);
    let mut payments = generator.take(3000);
    produce(&server, "payments", &payments);
    let ids: Vec<String> = (0..plugins.len())
        .map(|i| format!("payments@2.{i}.0"))
        .collect();
    for (plugin, id) in plugins.iter().zip(&ids) {
        let report = deploy(&server, &plugin.path, id, "payments", &[]);
        assert_eq!(report["created"], true, "{}: {report}", plugin.language);
    }
    // More events while they replay.
    let more = generator.take(400);
    produce(&server, "payments", &more);
    payments.extend(more);
    for id in &ids {
        server.wait_applied(id);
    }

    // Byte-identical views, equal to the rules computed here.
    let want = digest_of(&expected_view(&payments, V2_RULES));
    for (plugin, id) in plugins.iter().zip(&ids) {
        assert_eq!(digest(&server, id), want, "{} view", plugin.language);
    }
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            let diff = server.json(&["diff", a, b, "--limit", "5"]);
            let [added, removed, changed, unchanged] = diff_counts(&diff);
            assert_eq!((added, removed, changed), (0, 0, 0), "{a} vs {b}: {diff}");
            assert!(unchanged > 0, "{diff}");
        }
    }

    // Determinism: the same bytes as another version build the same view.
    let again: Vec<String> = (0..plugins.len())
        .map(|i| format!("payments@2.{i}.1"))
        .collect();
    for (plugin, id) in plugins.iter().zip(&again) {
        let report = deploy(&server, &plugin.path, id, "payments", &["--wait"]);
        assert_eq!(report["lag"], 0, "{}: {report}", plugin.language);
        assert_eq!(
            digest(&server, id),
            want,
            "{} replayed again",
            plugin.language
        );
    }

    // SIGKILL and restart: views unchanged, then new events applied exactly once.
    server.kill();
    server = Server::start(dir.path());
    // Commits since a view's last fsync roll back with their offsets and are
    // applied again: once caught up, each view is exactly what it was.
    for id in ids.iter().chain(&again) {
        server.wait_applied(id);
        assert_eq!(digest(&server, id), want, "{id} after SIGKILL");
    }
    let last = generator.take(300);
    produce(&server, "payments", &last);
    payments.extend(last);
    let want = digest_of(&expected_view(&payments, V2_RULES));
    for id in ids.iter().chain(&again) {
        server.wait_applied(id);
        assert_eq!(
            digest(&server, id),
            want,
            "{id} after restart and new events"
        );
    }

    // The same configuration is refused by every language, as invalid-config.
    for (i, plugin) in plugins.iter().enumerate() {
        let version = format!("3.{i}.0");
        for config in [r#"{"max_txns":0}"#, r#"{"window_ms":1.5}"#, "[1,2,3,4]"] {
            let err = server.fails(
                &[
                    "deploy",
                    &plugin.path,
                    "--name",
                    "payments",
                    "--version",
                    &version,
                    "--topic",
                    "payments",
                    "--config",
                    config,
                ],
                2,
            );
            assert!(
                err.contains("invalid configuration"),
                "{} with {config}: {err}",
                plugin.language
            );
        }
    }

    // A malformed event (not JSON) on a topic of its own: every language
    // stops at that event, with an invalid-event error naming its offset,
    // after applying the events before it.
    server.json(&["topic", "create", "mixed", "--partitions", "2"]);
    produce(&server, "mixed", &generator.take(200));
    let poison = r#"{"key":"acct-0001","value":"boom","partition":1}"#;
    let out = server.run_stdin(
        &["produce", "mixed", "--json"],
        Some(&format!("{poison}\n")),
    );
    assert!(out.status.success());
    let poison_offset =
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["partitions"][0]["first_offset"]
            .as_u64()
            .unwrap();
    produce(&server, "mixed", &generator.take(50));
    for (plugin, id) in plugins.iter().zip(&ids) {
        let id = id.replace("payments@", "mixed@");
        deploy(&server, &plugin.path, &id, "mixed", &[]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let failed = loop {
            let v = server.version(&id);
            if v["state"] == "failed" {
                break v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never failed: {v}",
                plugin.language
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let f = &failed["failure"];
        assert_eq!(
            (f["partition"].as_u64(), f["offset"].as_u64()),
            (Some(1), Some(poison_offset)),
            "{}: {f}",
            plugin.language
        );
        let message = f["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("invalid event at offset {poison_offset}")),
            "{}: {message}",
            plugin.language
        );
        assert_eq!(
            failed["applied_offsets"][1].as_u64(),
            Some(poison_offset),
            "{}",
            plugin.language
        );
    }
}
