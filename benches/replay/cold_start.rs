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
        for (lang, bytes) in &plugins {
            // Interpreters take ~15 s to compile: one run each for them.
            let runs = if lang == "Rust" { self.options.runs } else { 1 };
            let (mut cold, mut warm) = (Vec::new(), Vec::new());
            for run in 0..runs {
                let base = self.dir.path().join(format!("cold-{lang}-{run}"));
                let first = base.join("first");
                let (t, report) = first_event(&first, bytes);
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
                let (t, report) = first_event(&second, bytes);
                assert!(report.compiled_from_cache);
                warm.push(t);
                std::fs::remove_dir_all(&base).ok();
            }
            let (cold, warm) = (median(cold), median(warm));
            s.figure(format!("{lang}, compiling"), cold * 1e3, "ms", Some(1.0));
            s.figure(
                format!("{lang}, from the cache"),
                warm * 1e3,
                "ms",
                Some(warm / cold),
            );
        }
        s.note(
            "each figure is a fresh host: deploy call (validate, compile or load, instantiate, \
             init) until the version has applied its first event",
        );
        s
    }
}

/// Seconds from a deploy on a fresh host at `dir` to its first event
/// applied.
fn first_event(dir: &Path, bytes: &[u8]) -> (f64, kappa::model::DeployReport) {
    let host = Host::open(dir, HostOptions::default()).unwrap();
    host.create_topic("cold", 1).unwrap();
    fill(host.log().as_ref(), "cold", payments(16, 100, 1_000));
    let id = VersionId::parse("cold@1.0.0").unwrap();
    let started = Instant::now();
    let report = host
        .deploy(&id, "cold", bytes, Settings::default())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let status = host.version_status(&id).unwrap();
        if status.applied_offsets.iter().sum::<u64>() > 0 {
            break;
        }
        assert!(status.failure.is_none(), "{:?}", status.failure);
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_micros(200));
    }
    (started.elapsed().as_secs_f64(), report)
}
