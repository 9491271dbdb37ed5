//! Section 3: replay scaling with partitions. A topic of P partitions (2 by
//! default; `--scaling-partitions P` on a machine with more cores) replayed
//! on one thread against one thread per partition: by the benchmark's own
//! loop, natively and in Wasm, into one shared view and into one shard per
//! partition; and by the product's worker, for a version of contract 0.2.0
//! (one shared view, one thread) and for one whose state is per partition
//! (0.3.0-rc.1), deployed with 1 and with P threads. Every way must give the
//! same view (digest), whatever the thread count.

use std::time::Instant;

use kappa::HostOptions;
use kappa::registry::Settings;
use kappa::store::{Layout, Shards};

use super::bench::{Bench, HostReplay, Native, Processor, Target, replay};
use super::common::{check_same, fill_balanced, median, payments, process_cpu_seconds};
use super::report::Section;

const TOPIC: &str = "scaling";

/// Seconds of each way of replaying, one entry per run.
#[derive(Default)]
struct Times {
    native_one: Vec<f64>,
    native_shared: Vec<f64>,
    native_one_sharded: Vec<f64>,
    native_shards: Vec<f64>,
    wasm_one: Vec<f64>,
    wasm_one_sharded: Vec<f64>,
    wasm_shards: Vec<f64>,
    product_shared: Vec<f64>,
    product_one: Vec<f64>,
    product_all: Vec<f64>,
    /// CPU-seconds of the process in the Wasm loop's two shard rows.
    wasm_one_sharded_cpu: Vec<f64>,
    wasm_shards_cpu: Vec<f64>,
    /// The two rows above, measured more closely.
    product_one_measured: Vec<HostReplay>,
    product_all_measured: Vec<HostReplay>,
}

impl Bench {
    pub(crate) fn partitions(&self) -> Section {
        let partitions = self.options.scaling_partitions;
        let mut s = Section::new(
            3,
            &format!("replay scaling with partitions, {partitions} partitions, payments v2 rules"),
            "time on one thread / time of this row (speedup; the partition count is perfect)",
        );
        self.host.create_topic(TOPIC, partitions).unwrap();
        let records = payments(11, self.options.keys, self.options.events);
        fill_balanced(self.host.log().as_ref(), TOPIC, records);
        let all: Vec<u32> = (0..partitions).collect();
        let n = self.options.events as f64;
        let batch = HostOptions::default().batch_size;
        let threads = |n: u32| Settings {
            threads: n,
            ..self.settings.clone()
        };
        let v3 = kappa_plugins::PAYMENTS_V2_SHARDS.bytes;
        let mut digests = Vec::new();
        let mut t = Times::default();
        for _ in 0..self.options.runs {
            let (x, d) = self.timed_replay(TOPIC, &all, batch, &mut Native::new());
            t.native_one.push(x);
            digests.push(("native 1 thread", d));
            let (x, _, d) = self.threads_replay(Layout::Shared, batch, || Box::new(Native::new()));
            t.native_shared.push(x);
            digests.push(("native 1 thread per partition, shared view", d));
            let (x, _, d) = self.sharded_replay(batch, &mut Native::new());
            t.native_one_sharded.push(x);
            digests.push(("native 1 thread, shards", d));
            let (x, _, d) =
                self.threads_replay(Layout::PerPartition, batch, || Box::new(Native::new()));
            t.native_shards.push(x);
            digests.push(("native 1 thread per partition, shards", d));
            let (x, d) = self.timed_replay(TOPIC, &all, batch, &mut self.wasm(&self.rust));
            t.wasm_one.push(x);
            digests.push(("wasm 1 thread", d));
            let (x, cpu, d) = self.sharded_replay(batch, &mut self.wasm(&self.rust));
            t.wasm_one_sharded.push(x);
            t.wasm_one_sharded_cpu.push(cpu);
            digests.push(("wasm 1 thread, shards", d));
            let (x, cpu, d) = self.threads_replay(Layout::PerPartition, batch, || {
                Box::new(self.wasm(&self.rust))
            });
            t.wasm_shards.push(x);
            t.wasm_shards_cpu.push(cpu);
            digests.push(("wasm 1 thread per partition, shards", d));
            let (x, d) = self.host_replay("shared", TOPIC, kappa_plugins::PAYMENTS_V2.bytes);
            t.product_shared.push(x);
            digests.push(("product, contract 0.2.0", d));
            let r = self.host_replay_measured("one", TOPIC, v3, threads(1));
            t.product_one.push(r.seconds);
            digests.push(("product, 0.3.0-rc.1, 1 thread", r.digest.clone()));
            t.product_one_measured.push(r);
            let r = self.host_replay_measured("all", TOPIC, v3, threads(partitions));
            t.product_all.push(r.seconds);
            let d = r.digest.clone();
            t.product_all_measured.push(r);
            digests.push(("product, 0.3.0-rc.1, 1 thread per partition", d));
        }
        let m = |v: &[f64]| median(v.to_vec());
        let (n1, w1, p1) = (m(&t.native_one), m(&t.wasm_one), m(&t.product_one));
        let (ns1, ws1) = (m(&t.native_one_sharded), m(&t.wasm_one_sharded));
        let rows: [(&str, f64, f64); 10] = [
            ("native, 1 thread", m(&t.native_one), n1),
            (
                "native, 1 thread per partition, one shared view",
                m(&t.native_shared),
                n1,
            ),
            ("native, 1 thread, one shard per partition", ns1, ns1),
            (
                "native, 1 thread per partition, one shard each",
                m(&t.native_shards),
                ns1,
            ),
            ("Wasm, 1 thread", w1, w1),
            ("Wasm, 1 thread, one shard per partition", ws1, ws1),
            (
                "Wasm, 1 thread per partition, one shard each",
                m(&t.wasm_shards),
                ws1,
            ),
            (
                "product, contract 0.2.0 (one shared view: 1 thread)",
                m(&t.product_shared),
                p1,
            ),
            ("product, contract 0.3.0-rc.1, 1 thread", p1, p1),
            (
                "product, contract 0.3.0-rc.1, 1 thread per partition",
                m(&t.product_all),
                p1,
            ),
        ];
        for (label, seconds, base) in rows {
            s.figure(label, n / seconds, "events/s", Some(base / seconds));
        }
        let ends = self.host.log().end_offsets(TOPIC).unwrap();
        let largest = ends.iter().copied().max().unwrap_or(0).max(1);
        s.note(format!(
            "the partitions hold {} events: one thread each is at most {:.3}x one thread \
             (all events / the largest partition's)",
            ends.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            n / largest as f64,
        ));
        let of =
            |rows: &[HostReplay], f: fn(&HostReplay) -> f64| median(rows.iter().map(f).collect());
        let (one, all) = (&t.product_one_measured, &t.product_all_measured);
        let (c1, ca) = (of(one, |r| r.cpu), of(all, |r| r.cpu));
        s.note(format!(
            "product, contract 0.3.0-rc.1: {:.0} ns of CPU per event on 1 thread, {:.0} on \
             {partitions} ({:.2}x: above 1 the threads cost each other work); cores busy {:.2} \
             and {:.2} (below the thread count: time a thread waited)",
            c1 / n * 1e9,
            ca / n * 1e9,
            ca / c1,
            of(one, |r| r.cpu / r.seconds),
            of(all, |r| r.cpu / r.seconds),
        ));
        let (w1, wa) = (m(&t.wasm_one_sharded_cpu), m(&t.wasm_shards_cpu));
        s.note(format!(
            "Wasm in the benchmark's loop, shards: {:.0} ns of CPU per event on 1 thread, {:.0} \
             on {partitions} ({:.2}x); cores busy {:.2} and {:.2}",
            w1 / n * 1e9,
            wa / n * 1e9,
            wa / w1,
            w1 / ws1,
            wa / m(&t.wasm_shards),
        ));
        let (a1, aa) = (of(one, |r| r.applied), of(all, |r| r.applied));
        s.note(format!(
            "product, contract 0.3.0-rc.1: every event applied after {a1:.3} s on 1 thread and \
             {aa:.3} s on {partitions} ({:.3}x); the view's last buffer then written and synced \
             in {:.3} s and {:.3} s",
            a1 / aa,
            of(one, |r| r.seconds - r.applied),
            of(all, |r| r.seconds - r.applied),
        ));
        s.note(format!(
            "{} cores available; other processes on the machine share them; product rows are \
             deploy to caught up, the others the benchmark's own loop (as a worker does it)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
        check_same(&mut s, &digests);
        s
    }

    /// One thread replaying every partition of the section's topic,
    /// round-robin, each into its shard (the checked commits of state per
    /// partition): the baseline of the one-thread-per-shard rows.
    fn sharded_replay(&self, batch: usize, processor: &mut dyn Processor) -> (f64, f64, String) {
        let partitions = self.host.log().topic(TOPIC).unwrap().partitions;
        let all: Vec<u32> = (0..partitions).collect();
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.path().join(format!("sharded-{n}"));
        let view = Shards::open(&path, Layout::PerPartition, self.view_options.clone()).unwrap();
        let started = Instant::now();
        let cpu = process_cpu_seconds();
        replay(
            self.host.log().as_ref(),
            TOPIC,
            &all,
            &view,
            batch,
            processor,
        );
        let seconds = started.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds() - cpu;
        let digest = Shards::snapshot(&view).unwrap().digest().unwrap().sha256;
        drop(view);
        std::fs::remove_dir_all(&path).ok();
        (seconds, cpu, digest)
    }

    /// One thread per partition of the section's topic, each with its own
    /// processor, committing to one view (`Shared`: redb serializes the
    /// commits) or each to its partition's shard (`PerPartition`). Returns
    /// the seconds, the CPU-seconds of the process meanwhile and the digest.
    fn threads_replay(
        &self,
        layout: Layout,
        batch: usize,
        make: impl Fn() -> Box<dyn Processor>,
    ) -> (f64, f64, String) {
        let partitions = self.host.log().topic(TOPIC).unwrap().partitions;
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.path().join(format!("threads-{n}"));
        let view = Shards::open(&path, layout, self.view_options.clone()).unwrap();
        let mut processors: Vec<_> = (0..partitions).map(|_| make()).collect();
        let log = self.host.log().as_ref();
        let started = Instant::now();
        let cpu = process_cpu_seconds();
        std::thread::scope(|scope| {
            for (p, processor) in processors.iter_mut().enumerate() {
                let view = &view;
                scope.spawn(move || {
                    replay(log, TOPIC, &[p as u32], view, batch, &mut **processor);
                });
            }
        });
        let seconds = started.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds() - cpu;
        Target::sync(&view);
        let digest = Shards::snapshot(&view).unwrap().digest().unwrap().sha256;
        drop(view);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).ok();
        } else {
            std::fs::remove_file(&path).ok();
        }
        (seconds, cpu, digest)
    }
}
