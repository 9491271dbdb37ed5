//! Replay throughput of the same processor logic (payments v2) written in
//! Rust, Python, JavaScript and C, as ratios to the Rust plugin measured in
//! the same run, over the same log, through the real `kappa` binary.
//!
//! Run: `plugins/build-polyglot.sh target/polyglot && KAPPA_POLYGLOT_DIR=$PWD/target/polyglot cargo bench -p kappa --bench languages`
//! (`KAPPA_BENCH_EVENTS` sets the log size, default 100000;
//! `KAPPA_BENCH_EXTRA=NAME=FILE,NAME=FILE` measures more components of the
//! same logic in the same run, such as an earlier build to compare with;
//! `KAPPA_BENCH_ROUNDS=N` measures N rounds, one replay of each plugin a
//! round, and prints each ratio's median).
//!
//! Each component is first deployed once so that its machine code is in the
//! compiled-code cache; the measured replay is a second version of the same
//! bytes, timed from the deploy's answer (compilation done, replay starting)
//! to the moment its view has applied every event; it also prints the rate
//! per CPU second of the server over that time. It prints a figure per
//! language; it asserts nothing about speed, since this machine is shared.

#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;

/// CPU seconds the server process has used (user and system, all threads),
/// from `/proc/PID/stat` in USER_HZ ticks (100 a second on Linux).
fn cpu_seconds(server: &Server) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).unwrap();
    // The fields after the command name (which may hold spaces), from the 3rd.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Deploys `path` as `name@version` and returns the seconds and the server's
/// CPU seconds from the deploy's answer until it has applied `total` events.
fn replay_seconds(
    server: &Server,
    path: &str,
    name: &str,
    version: &str,
    total: u64,
) -> (f64, f64) {
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
    let cpu = cpu_seconds(server);
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
            return (started.elapsed().as_secs_f64(), cpu_seconds(server) - cpu);
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
    let built = |file: &str| dir.join(file).display().to_string();
    let mut plugins = vec![
        (
            "rust".to_owned(),
            kappa_plugins::PAYMENTS_V2.path.to_owned(),
        ),
        ("python".to_owned(), built("payments-v2-python.wasm")),
        ("js".to_owned(), built("payments-v2-js.wasm")),
        ("c".to_owned(), built("payments-v2-c.wasm")),
    ];
    for extra in std::env::var("KAPPA_BENCH_EXTRA")
        .unwrap_or_default()
        .split(',')
    {
        if let Some((name, file)) = extra.split_once('=') {
            plugins.push((name.to_owned(), file.to_owned()));
        }
    }
    let rounds: usize = std::env::var("KAPPA_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    for (lang, path) in &plugins {
        // Warm the compiled-code cache (and check the component loads).
        let name = format!("warm-{lang}");
        replay_seconds(&server, path, &name, "1.0.0", events as u64);
    }
    // Rounds of one replay per plugin, in the same order: a change of load
    // during the run moves the terms of one round alike. The rate per CPU
    // second of the server (which replays one version at a time here) is not
    // inflated by waiting for a core, so it is the steadier figure on a
    // shared machine.
    let mut ratios: Vec<Vec<(f64, f64)>> = vec![Vec::new(); plugins.len()];
    println!("replay of {events} payments (4 partitions), payments v2 logic, views byte-identical");
    for round in 0..rounds {
        let version = format!("1.{round}.0");
        let mut results = Vec::new();
        for (lang, path) in &plugins {
            let (seconds, cpu) = replay_seconds(&server, path, lang, &version, events as u64);
            results.push((lang, seconds, events as f64 / seconds, events as f64 / cpu));
        }
        let digests: Vec<String> = plugins
            .iter()
            .map(|(l, _)| {
                server.json(&["digest", &format!("{l}@{version}")])["sha256"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(
            digests.windows(2).all(|w| w[0] == w[1]),
            "views differ: {digests:?}"
        );
        let (rust, rust_cpu) = (results[0].2, results[0].3);
        println!("round {}", round + 1);
        println!(
            "{:<14} {:>10} {:>14} {:>14} {:>16} {:>14}",
            "plugin", "seconds", "events/s", "ratio to rust", "events/CPU-s", "ratio to rust"
        );
        for (i, (lang, seconds, rate, per_cpu)) in results.iter().enumerate() {
            println!(
                "{lang:<14} {seconds:>10.3} {rate:>14.0} {:>14.3} {per_cpu:>16.0} {:>14.3}",
                rate / rust,
                per_cpu / rust_cpu
            );
            ratios[i].push((rate / rust, per_cpu / rust_cpu));
        }
    }
    if rounds > 1 {
        println!("median ratio to rust over {rounds} rounds: of events/s, of events/CPU-s");
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        for ((lang, _), r) in plugins.iter().zip(ratios) {
            let wall = median(r.iter().map(|x| x.0).collect());
            let cpu = median(r.iter().map(|x| x.1).collect());
            println!("{lang:<14} {wall:>14.3} {cpu:>14.3}");
        }
    }
}
