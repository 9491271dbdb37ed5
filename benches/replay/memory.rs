//! Section 7: memory per deployed version (resident and peak).

use std::time::Duration;

use kappa::registry::VersionId;

use super::bench::Bench;
use super::common::{fill, payments, peak_bytes, reset_peak, rss_bytes, wait_applied};
use super::report::Section;

impl Bench {
    pub(crate) fn memory(&self) -> Section {
        /// Growth below this is the allocator's reuse, not a measurement.
        const MEASURABLE_BYTES: f64 = 100_000.0;
        let mut s = Section::new(
            7,
            "memory per deployed version (resident set of the host process)",
            "bytes per version / bytes per version of the Rust plugin",
        );
        let topic = "mem";
        let events = (self.options.events / 10).max(1000);
        self.host.create_topic(topic, 1).unwrap();
        fill(
            self.host.log().as_ref(),
            topic,
            payments(15, self.options.keys, events),
        );
        let plugins = self.plugins();
        let mut rust_steady = f64::NAN;
        let mut rust_peak = f64::NAN;
        for (i, (lang, bytes)) in plugins.iter().enumerate() {
            // The first deploy compiles (or loads) the code, which all later
            // versions with these bytes share: measured apart.
            let name = format!("mem{i}");
            let first = VersionId::parse(&format!("{name}@0.0.1")).unwrap();
            let before_code = rss_bytes();
            self.host
                .deploy(&first, topic, bytes, self.settings.clone())
                .unwrap();
            wait_applied(&self.host, &first, events as u64, Duration::from_millis(2));
            let code = rss_bytes().saturating_sub(before_code);
            let k = self.options.memory_versions;
            reset_peak();
            let before = rss_bytes();
            let mut ids = Vec::new();
            for v in 0..k {
                let id = VersionId::parse(&format!("{name}@1.0.{v}")).unwrap();
                self.host
                    .deploy(&id, topic, bytes, self.settings.clone())
                    .unwrap();
                ids.push(id);
            }
            for id in &ids {
                wait_applied(&self.host, id, events as u64, Duration::from_millis(2));
            }
            let steady = rss_bytes().saturating_sub(before) as f64 / k as f64;
            let peak = peak_bytes().saturating_sub(before) as f64 / k as f64;
            if i == 0 {
                rust_steady = steady;
                rust_peak = peak;
            }
            // A ratio only to a baseline that grew measurably: the
            // allocator may serve a version from memory that earlier
            // sections freed but kept resident, which shows as no growth.
            let ratio = |x: f64, base: f64| (base >= MEASURABLE_BYTES).then(|| x / base);
            s.figure(
                format!("{lang}, resident per version"),
                steady / 1e6,
                "MB",
                ratio(steady, rust_steady),
            );
            s.figure(
                format!("{lang}, peak per version"),
                peak / 1e6,
                "MB",
                ratio(peak, rust_peak),
            );
            s.figure(
                format!("{lang}, compiled code and first version"),
                code as f64 / 1e6,
                "MB",
                None,
            );
            for id in ids {
                self.host.retire(&id).unwrap();
            }
        }
        // State per partition: one instance per thread, so memory per thread.
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let parallel = "mem-threads";
        self.host.create_topic(parallel, threads as u32).unwrap();
        fill(
            self.host.log().as_ref(),
            parallel,
            payments(15, self.options.keys, events),
        );
        let bytes = kappa_plugins::PAYMENTS_V2_SHARDS.bytes;
        let first = VersionId::parse("memthreads@0.0.1").unwrap();
        self.host
            .deploy(&first, parallel, bytes, self.settings.clone())
            .unwrap();
        wait_applied(&self.host, &first, events as u64, Duration::from_millis(2));
        let k = self.options.memory_versions;
        let before = rss_bytes();
        let ids: Vec<VersionId> = (0..k)
            .map(|v| {
                let id = VersionId::parse(&format!("memthreads@1.0.{v}")).unwrap();
                self.host
                    .deploy(&id, parallel, bytes, self.settings.clone())
                    .unwrap();
                id
            })
            .collect();
        for id in &ids {
            wait_applied(&self.host, id, events as u64, Duration::from_millis(2));
        }
        let per_thread = rss_bytes().saturating_sub(before) as f64 / (k * threads) as f64;
        s.figure(
            format!("Rust, contract 0.3.0-rc.1, resident per thread ({threads} a version)"),
            per_thread / 1e6,
            "MB",
            (rust_steady >= MEASURABLE_BYTES).then(|| per_thread / rust_steady),
        );
        for id in ids {
            self.host.retire(&id).unwrap();
        }
        s.note(format!(
            "{} versions per language deployed at once, each replaying {events} events; \
             resident and peak (VmHWM, reset before deploying) growth of the whole process \
             divided by the number of versions (no ratio when the Rust figure is under 0.1 MB: \
             the allocator reused memory freed earlier); host resident before: {:.1} MB",
            self.options.memory_versions,
            rss_bytes() as f64 / 1e6
        ));
        s
    }
}
