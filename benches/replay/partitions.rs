//! Section 3: a two-partition topic replayed by one thread (what a
//! version's worker does) against one thread per partition.

use std::time::Instant;

use kappa::HostOptions;

use super::bench::{Bench, Native, Processor, TWO, replay};
use super::common::{check_same, median};
use super::report::Section;

impl Bench {
    pub(crate) fn partitions(&self) -> Section {
        let mut s = Section::new(
            3,
            "replay scaling with partitions, 2 partitions, payments v2",
            "time of one thread / time of this row (speedup; 2.0 is perfect on 2 cores)",
        );
        let n = self.options.events as f64;
        let batch = HostOptions::default().batch_size;
        let mut digests = Vec::new();
        let (mut n1, mut n2, mut w1, mut w2, mut host) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..self.options.runs {
            let (t, d) = self.timed_replay(TWO, &[0, 1], batch, &mut Native::new());
            n1.push(t);
            digests.push(("native 1 thread", d));
            let (t, d) = self.parallel_replay(TWO, batch, || Box::new(Native::new()));
            n2.push(t);
            digests.push(("native 2 threads", d));
            let (t, d) = self.timed_replay(TWO, &[0, 1], batch, &mut self.wasm(&self.rust));
            w1.push(t);
            digests.push(("wasm 1 thread", d));
            let (t, d) = self.parallel_replay(TWO, batch, || Box::new(self.wasm(&self.rust)));
            w2.push(t);
            digests.push(("wasm 2 threads", d));
            let (t, d) = self.host_replay("scaling", TWO, kappa_plugins::PAYMENTS_V2.bytes);
            host.push(t);
            digests.push(("host", d));
        }
        let (n1, n2, w1, w2, host) = (median(n1), median(n2), median(w1), median(w2), median(host));
        s.figure("native, 1 thread", n / n1, "events/s", Some(1.0));
        s.figure(
            "native, 1 thread per partition",
            n / n2,
            "events/s",
            Some(n1 / n2),
        );
        s.figure("Wasm, 1 thread", n / w1, "events/s", Some(1.0));
        s.figure(
            "Wasm, 1 thread per partition",
            n / w2,
            "events/s",
            Some(w1 / w2),
        );
        s.figure(
            "Wasm, product worker (deploy to caught up)",
            n / host,
            "events/s",
            Some(w1 / host),
        );
        s.note(format!(
            "{} cores available; other processes on the machine share them",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
        check_same(&mut s, &digests);
        s
    }

    /// One thread per partition of `topic`, each with its own processor,
    /// all committing to one view (redb serializes the commits).
    fn parallel_replay(
        &self,
        topic: &str,
        batch: usize,
        make: impl Fn() -> Box<dyn Processor>,
    ) -> (f64, String) {
        let partitions = self.host.log().topic(topic).unwrap().partitions;
        let (view, path) = self.fresh_view(topic);
        let mut processors: Vec<_> = (0..partitions).map(|_| make()).collect();
        let log = self.host.log().as_ref();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for (p, processor) in processors.iter_mut().enumerate() {
                let view = &view;
                scope.spawn(move || replay(log, topic, &[p as u32], view, batch, &mut **processor));
            }
        });
        let seconds = started.elapsed().as_secs_f64();
        let digest = view.snapshot().unwrap().digest().unwrap().sha256;
        drop(view);
        std::fs::remove_file(path).ok();
        (seconds, digest)
    }
}
