//! Replay throughput of the same processor logic (payments v2) written in
//! Rust, Python and JavaScript, as ratios to the Rust plugin measured in the
//! same run, over the same log, through the real `kappa` binary.
//!
//! Run: `plugins/build-polyglot.sh target/polyglot && KAPPA_POLYGLOT_DIR=$PWD/target/polyglot cargo bench -p kappa --bench languages`
//! (`KAPPA_BENCH_EVENTS` sets the log size, default 100000).
//!
//! Each component is first deployed once so that its machine code is in the
//! compiled-code cache; the measured replay is a second version of the same
//! bytes, timed from the deploy's answer (compilation done, replay starting)
//! to the moment its view has applied every event. It prints a figure per
//! language; it asserts nothing about speed, since this machine is shared.

#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;

fn replay_seconds(server: &Server, path: &str, name: &str, version: &str, total: u64) -> f64 {
    let out = server.json(&[
        "deploy",
        path,
        "--name",
        name,
        "--version",
        version,
        "--topic",
        "payments",
    ]);
    assert_eq!(out["created"], true);
    let started = Instant::now();
    let id = format!("{name}@{version}");
    loop {
        let v = server.version(&id);
        assert_ne!(v["state"], "failed", "{v}");
        let applied: u64 = v["applied_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_u64().unwrap())
            .sum();
        if applied >= total {
            return started.elapsed().as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let Some(dir) = std::env::var_os("KAPPA_POLYGLOT_DIR") else {
        eprintln!(
            "KAPPA_POLYGLOT_DIR is not set: build the Python and JS components first (see the header of benches/languages.rs)"
        );
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    let events: usize = std::env::var("KAPPA_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    server.json(&["topic", "create", "payments", "--partitions", "4"]);
    let mut generator = kappa::workload::PaymentGenerator::new(9, 500, 1_767_225_600_000);
    let file = data.path().join("events.jsonl");
    let mut left = events;
    while left > 0 {
        let n = left.min(50_000);
        write_jsonl(&file, &generator.take(n));
        server.json(&[
            "produce",
            "payments",
            "--file",
            file.to_str().unwrap(),
            "--batch",
            "10000",
        ]);
        left -= n;
    }
    let python = dir.join("payments-v2-python.wasm");
    let js = dir.join("payments-v2-js.wasm");
    let plugins = [
        ("rust", kappa_plugins::PAYMENTS_V2.path.to_owned()),
        ("python", python.display().to_string()),
        ("js", js.display().to_string()),
    ];
    let mut results = Vec::new();
    for (lang, path) in &plugins {
        // Warm the compiled-code cache (and check the component loads).
        let name = format!("warm-{lang}");
        replay_seconds(&server, path, &name, "1.0.0", events as u64);
        let seconds = replay_seconds(&server, path, lang, "1.0.0", events as u64);
        results.push((lang, seconds, events as f64 / seconds));
    }
    let digests: Vec<String> = ["rust", "python", "js"]
        .iter()
        .map(|l| {
            server.json(&["digest", &format!("{l}@1.0.0")])["sha256"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "views differ: {digests:?}"
    );
    let rust = results[0].2;
    println!("replay of {events} payments (4 partitions), payments v2 logic, views byte-identical");
    println!(
        "{:<8} {:>10} {:>14} {:>14}",
        "plugin", "seconds", "events/s", "ratio to rust"
    );
    for (lang, seconds, rate) in &results {
        println!(
            "{lang:<8} {seconds:>10.3} {rate:>14.0} {:>14.3}",
            rate / rust
        );
    }
}
