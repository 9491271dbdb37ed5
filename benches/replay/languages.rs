//! Section 2: the same replay with the Python and JavaScript plugins, as
//! ratios to the Rust plugin.

use std::sync::Arc;
use std::time::Instant;

use kappa::HostOptions;
use kappa::runtime::Plugin;

use super::bench::{Bench, Native};
use super::common::{check_same, fill, median, payments, sha256};
use super::report::Section;

impl Bench {
    pub(crate) fn languages(&self) -> Section {
        let mut s = Section::new(
            2,
            "replay throughput by plugin language, payments v2, 1 partition",
            "events/s / events/s of the Rust plugin (higher is better)",
        );
        let n = self.options.polyglot_events;
        let topic = "poly";
        self.host.create_topic(topic, 1).unwrap();
        fill(
            self.host.log().as_ref(),
            topic,
            payments(12, self.options.keys, n),
        );
        let batch = HostOptions::default().batch_size;
        let mut plugins: Vec<(String, Arc<Plugin>)> = vec![("Rust".into(), self.rust.clone())];
        match &self.options.polyglot {
            Some(dir) => {
                for (lang, file) in [
                    ("Python", "payments-v2-python.wasm"),
                    ("JavaScript", "payments-v2-js.wasm"),
                ] {
                    let path = dir.join(file);
                    let Ok(bytes) = std::fs::read(&path) else {
                        s.note(format!("{lang}: {} not found, skipped", path.display()));
                        continue;
                    };
                    let started = Instant::now();
                    let plugin = self.runtime.load(&bytes, &sha256(&bytes)).unwrap();
                    s.note(format!(
                        "{lang}: {:.1} MB component, compiled in {:.1} s",
                        bytes.len() as f64 / 1e6,
                        started.elapsed().as_secs_f64()
                    ));
                    plugins.push((lang.into(), Arc::new(plugin)));
                }
            }
            None => s.note(
                "Python and JavaScript skipped: build them with plugins/build-polyglot.sh DIR \
                 and pass --polyglot DIR (or set KAPPA_POLYGLOT_DIR)",
            ),
        }
        let mut digests = Vec::new();
        let mut times = vec![Vec::new(); plugins.len()];
        let (mut native, mut native_digest) = (Vec::new(), String::new());
        for _ in 0..self.options.runs {
            let (t, d) = self.timed_replay(topic, &[0], batch, &mut Native::new());
            native.push(t);
            native_digest = d;
            for (i, (lang, plugin)) in plugins.iter().enumerate() {
                let (t, d) = self.timed_replay(topic, &[0], batch, &mut self.wasm(plugin));
                times[i].push(t);
                digests.push((lang.as_str(), d));
            }
        }
        digests.push(("native", native_digest));
        let rust = median(times[0].clone());
        for (i, (lang, _)) in plugins.iter().enumerate() {
            let t = median(times[i].clone());
            s.figure(lang.clone(), n as f64 / t, "events/s", Some(rust / t));
        }
        let native = median(native);
        s.figure(
            "native rules (reference)",
            n as f64 / native,
            "events/s",
            Some(rust / native),
        );
        s.note(format!("{n} events"));
        check_same(&mut s, &digests);
        s
    }
}
