//! Section 6: cold start, deploy to first event processed, without and
//! with the compiled-code cache.

use std::path::Path;
use std::time::{Duration, Instant};

use kappa::registry::{Settings, VersionId};
use kappa::{Host, HostOptions};

use super::bench::Bench;
use super::common::{fill, median, payments};
use super::report::Section;

impl Bench {
    pub(crate) fn cold_start(&self) -> Section {
        let mut s = Section::new(
            6,
            "cold start, deploy to first event processed",
            "time with the compiled-code cache / time without it",
        );
        let plugins = self.plugins();
        let mut rust_warm = f64::NAN;
        for (lang, bytes) in &plugins {
            // Interpreters take ~15 s to compile: one run each for them.
            let runs = if lang == "Rust" { self.options.runs } else { 1 };
            let (mut cold, mut warm) = (Vec::new(), Vec::new());
            for run in 0..runs {
                let base = self.dir.path().join(format!("cold-{lang}-{run}"));
                let first = base.join("first");
                let (t, report) = first_event(&first, bytes, 1);
                assert!(!report.compiled_from_cache);
                cold.push(t);
                // A second host with an empty data directory except for the
                // compiled code the first one left.
                let second = base.join("second");
                std::fs::create_dir_all(second.join("compiled")).unwrap();
                for entry in std::fs::read_dir(first.join("compiled")).unwrap() {
                    let entry = entry.unwrap();
                    std::fs::copy(
                        entry.path(),
                        second.join("compiled").join(entry.file_name()),
                    )
                    .unwrap();
                }
                let (t, report) = first_event(&second, bytes, 1);
                assert!(report.compiled_from_cache);
                warm.push(t);
                std::fs::remove_dir_all(&base).ok();
            }
            let (cold, warm) = (median(cold), median(warm));
            if lang == "Rust" {
                rust_warm = warm;
            }
            s.figure(format!("{lang}, compiling"), cold * 1e3, "ms", Some(1.0));
            s.figure(
                format!("{lang}, from the cache"),
                warm * 1e3,
                "ms",
                Some(warm / cold),
            );
        }
        // State per partition: one instance per thread, each started (and
        // `init` called) before its thread's first event.
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let mut every = Vec::new();
        for run in 0..self.options.runs {
            let dir = self.dir.path().join(format!("cold-threads-{run}"));
            // Compiled once, then timed from the cache like the row above.
            first_event(
                &dir.join("first"),
                kappa_plugins::PAYMENTS_V2_SHARDS.bytes,
                1,
            );
            let second = dir.join("second");
            std::fs::create_dir_all(&second).unwrap();
            std::fs::rename(dir.join("first").join("compiled"), second.join("compiled")).unwrap();
            let (t, report) =
                first_event(&second, kappa_plugins::PAYMENTS_V2_SHARDS.bytes, threads);
            assert!(report.compiled_from_cache);
            every.push(t);
            std::fs::remove_dir_all(&dir).ok();
        }
        let every = median(every);
        s.figure(
            format!(
                "Rust, contract 0.3.0-rc.1, from the cache, first event on each of {threads} threads"
            ),
            every * 1e3,
            "ms",
            Some(every / rust_warm),
        );
        s.note(
            "each figure is a fresh host: deploy call (validate, compile or load, instantiate, \
             init) until the version has applied its first event (in every partition, one per \
             thread, for the last row, whose ratio is to the Rust plugin from the cache)",
        );
        s
    }
}

/// Seconds from a deploy on a fresh host at `dir` to its first event
/// applied in each of the topic's `partitions`.
fn first_event(dir: &Path, bytes: &[u8], partitions: usize) -> (f64, kappa::model::DeployReport) {
    let host = Host::open(dir, HostOptions::default()).unwrap();
    host.create_topic("cold", partitions as u32).unwrap();
    fill(host.log().as_ref(), "cold", payments(16, 100, 1_000));
    let id = VersionId::parse("cold@1.0.0").unwrap();
    let started = Instant::now();
    let report = host
        .deploy(&id, "cold", bytes, Settings::default())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let status = host.version_status(&id).unwrap();
        if status.applied_offsets.len() == partitions
            && status.applied_offsets.iter().all(|a| *a > 0)
        {
            break;
        }
        assert!(status.failure.is_none(), "{:?}", status.failure);
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_micros(200));
    }
    (started.elapsed().as_secs_f64(), report)
}
