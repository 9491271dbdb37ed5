//! The runnable scenarios a newcomer follows: `kappa demo` (the README's
//! main command) and `examples/quickstart.sh` (the README's quickstart), run
//! for real against the built binary.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::KAPPA;

fn examples_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

/// The sample events are exactly what the generator gives for seed 1, so
/// their expected views can always be recomputed.
const SAMPLE_EVENTS: usize = 2000;

fn sample_lines() -> String {
    kappa::workload::PaymentGenerator::new(1, 100, 1_767_225_600_000)
        .take(SAMPLE_EVENTS)
        .iter()
        .map(|p| serde_json::to_string(&p.to_event_line()).unwrap() + "\n")
        .collect()
}

#[test]
fn sample_events_file_is_the_generator_output() {
    let committed = std::fs::read_to_string(examples_dir().join("payments.jsonl")).unwrap();
    assert!(
        committed == sample_lines(),
        "examples/payments.jsonl is out of date: regenerate it with \
         `cargo test -p kappa --test examples -- --ignored write_sample_events`"
    );
}

#[test]
#[ignore = "writes examples/payments.jsonl"]
fn write_sample_events() {
    std::fs::write(examples_dir().join("payments.jsonl"), sample_lines()).unwrap();
}

#[test]
fn demo_tells_the_whole_story() {
    let out = Command::new(KAPPA)
        .args(["demo", "--events", "20000", "--json", "--log-level", "warn"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["events_history"], 20000);
    assert_eq!(
        summary["promoted"], "1.0.0",
        "the demo ends rolled back: {summary}"
    );
    assert!(
        summary["diff_accounts"]["changed"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(
        summary["diff_flags"]["added"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(
        summary["diff_flags"]["removed"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let digests = summary["digests"].as_object().unwrap();
    assert_eq!(digests.len(), 2);
    check_demo_figures(&summary);

    // The narrated form explains each step, with the host's own logs kept
    // out of it unless asked for (no --log-level here).
    let out = Command::new(KAPPA)
        .args(["demo", "--events", "5000"])
        .env_remove("KAPPA_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{stderr}");
    assert!(!stderr.contains("INFO"), "{stderr}");
    for step in [
        "server: http://127.0.0.1:",
        "5,000 card payments",
        "Deploy payments@1.0.0",
        "replaying",
        "Diff the two views",
        "Promote payments@2.0.0",
        "Roll back",
        "Retire payments@2.0.0",
    ] {
        assert!(text.contains(step), "missing `{step}` in:\n{text}");
    }
}

/// The demo's diff figures, computed again here: the demo's events are the
/// generator's (seed 42, 500 accounts), the history then the live batches in
/// order; each diff compared both views at the log position it reports, so
/// its counts are those of the two rule sets over the events before it.
fn check_demo_figures(summary: &serde_json::Value) {
    use support::{V1_RULES, V2_RULES, expected_diff, expected_view};
    let history = summary["events_history"].as_u64().unwrap() as usize;
    let live = summary["events_live"].as_u64().unwrap() as usize;
    let all =
        kappa::workload::PaymentGenerator::new(42, 500, 1_767_225_600_000).take(history + live);
    for (prefix, counts, offsets) in [
        ("account/", "diff_accounts", "diff_accounts_offsets"),
        ("flag/", "diff_flags", "diff_flags_offsets"),
    ] {
        let offsets: Vec<u64> = (0..4)
            .map(|p| summary[offsets][p.to_string()].as_u64().unwrap_or(0))
            .collect();
        assert!(
            offsets.iter().sum::<u64>() >= history as u64,
            "{prefix}: the diff saw less than the history: {summary}"
        );
        let mut seen = [0u64; 4];
        let prefix_events: Vec<_> = all
            .iter()
            .filter(|p| {
                let part = kappa::log::partition_for_key(p.account.as_bytes(), 4) as usize;
                seen[part] += 1;
                seen[part] <= offsets[part]
            })
            .cloned()
            .collect();
        assert_eq!(
            prefix_events.len() as u64,
            offsets.iter().sum::<u64>(),
            "{prefix}: the diff's position is past the events produced: {summary}"
        );
        let (a, b) = (
            expected_view(&prefix_events, V1_RULES),
            expected_view(&prefix_events, V2_RULES),
        );
        let c = &summary[counts];
        let got = ["added", "removed", "changed", "unchanged"].map(|k| c[k].as_u64().unwrap());
        assert_eq!(
            got,
            expected_diff(&a, &b, prefix),
            "{prefix} at offsets {offsets:?}"
        );
        eprintln!(
            "demo: diff of `{prefix}` at {} events (added, removed, changed, unchanged) = \
             {got:?}, as recomputed",
            prefix_events.len()
        );
    }
}

#[test]
fn quickstart_script_runs() {
    let bin_dir = Path::new(KAPPA).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(examples_dir().join("quickstart.sh"))
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("quickstart finished"));
}

#[test]
fn demo_keep_leaves_its_server_running_until_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(KAPPA)
        .args(["demo", "--events", "2000", "--keep"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = None;
    loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.strip_prefix("server: ") {
            url = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.starts_with("The server stays up at") {
            break;
        }
    }
    let url = url.expect("the demo prints its server's address");
    let out = Command::new(KAPPA)
        .args(["status", "--json", "--server", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["processors"][0]["promoted"], "1.0.0", "{status}");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
}
