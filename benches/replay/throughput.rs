//! Section 1: replay throughput of the payments v2 rules as a Rust Wasm
//! plugin against the same rules compiled natively, plus the product's
//! worker and a batch size sweep.

use kappa::HostOptions;

use super::bench::{Bench, Native, ONE};
use super::common::{check_same, median, pair_order, paired_ratio};
use super::report::Section;

impl Bench {
    pub(crate) fn replay_throughput(&self) -> Section {
        let mut s = Section::new(
            1,
            "replay throughput, payments v2, 1 partition, 1 core",
            "Wasm time / native time (target: at most 1.5)",
        );
        let n = self.options.events as f64;
        let batch = HostOptions::default().batch_size;
        // Warm up both (page cache, allocator, compiled code).
        self.timed_replay(ONE, &[0], batch, &mut Native::new());
        self.timed_replay(ONE, &[0], batch, &mut self.wasm(&self.rust));
        let (mut native, mut wasm, mut host) = (Vec::new(), Vec::new(), Vec::new());
        let (mut native_cpu, mut wasm_cpu) = (Vec::new(), Vec::new());
        let mut digests = Vec::new();
        for run in 0..self.options.runs {
            for wasm_side in pair_order(run) {
                let (t, cpu, d) = if wasm_side {
                    self.cpu_timed_replay(ONE, &[0], batch, &mut self.wasm(&self.rust))
                } else {
                    self.cpu_timed_replay(ONE, &[0], batch, &mut Native::new())
                };
                let (times, cpus, name) = if wasm_side {
                    (&mut wasm, &mut wasm_cpu, "wasm")
                } else {
                    (&mut native, &mut native_cpu, "native")
                };
                times.push(t);
                cpus.push(cpu);
                digests.push((name, d));
            }
            let (t, d) = self.host_replay("replay", ONE, kappa_plugins::PAYMENTS_V2.bytes);
            host.push(t);
            digests.push(("host", d));
        }
        let wasm_ratio = paired_ratio(&wasm, &native);
        let host_ratio = paired_ratio(&host, &native);
        let cpu_ratio = paired_ratio(&wasm_cpu, &native_cpu);
        let native_busy = paired_ratio(&native_cpu, &native);
        let (native, wasm, host) = (median(native), median(wasm), median(host));
        let (native_cpu, wasm_cpu) = (median(native_cpu), median(wasm_cpu));
        s.figure(
            format!("native rules, batch {batch}"),
            n / native,
            "events/s",
            Some(1.0),
        );
        s.figure(
            format!("Rust Wasm plugin, batch {batch}"),
            n / wasm,
            "events/s",
            Some(wasm_ratio),
        );
        s.figure(
            "Rust Wasm plugin, product worker (deploy to caught up)",
            n / host,
            "events/s",
            Some(host_ratio),
        );
        s.figure(
            "native rules, per CPU-second of the replaying thread",
            n / native_cpu,
            "events/s",
            Some(native_busy),
        );
        s.figure(
            "Rust Wasm plugin, per CPU-second of the replaying thread",
            n / wasm_cpu,
            "events/s",
            Some(cpu_ratio),
        );
        check_same(&mut s, &digests);
        s.note(
            "CPU-second rows: the native row's ratio is its CPU time / its elapsed time (below \
             1 when the thread waited for a core), the Wasm row's is Wasm CPU time / native CPU \
             time; every ratio is the median of the ratios of runs made back to back, every rate \
             the median of the rates",
        );
        s.note(format!(
            "target 1,000,000 events/s for the Wasm plugin: {} ({:.0} events/s elapsed, {:.0} \
             per CPU-second)",
            if n / wasm >= 1_000_000.0 {
                "met"
            } else {
                "NOT met"
            },
            n / wasm,
            n / wasm_cpu
        ));
        // Batch size sweep: the same comparison at other batch sizes, in
        // CPU time (less disturbed by other processes than elapsed time).
        for &b in &self.options.batch_sweep {
            let (mut tn, mut tw) = (Vec::new(), Vec::new());
            for run in 0..self.options.runs {
                for wasm_side in pair_order(run) {
                    if wasm_side {
                        let cpu = self.cpu_timed_replay(ONE, &[0], b, &mut self.wasm(&self.rust));
                        tw.push(cpu.1);
                    } else {
                        tn.push(self.cpu_timed_replay(ONE, &[0], b, &mut Native::new()).1);
                    }
                }
            }
            let ratio = paired_ratio(&tw, &tn);
            let (tn, tw) = (median(tn), median(tw));
            s.figure(
                format!("sweep: native, batch {b}, per CPU-second"),
                n / tn,
                "events/s",
                Some(tn / native_cpu),
            );
            s.figure(
                format!("sweep: Wasm, batch {b}, per CPU-second"),
                n / tw,
                "events/s",
                Some(ratio),
            );
        }
        s.note(
            "sweep ratios: native rows are CPU time / native CPU time at the default batch, Wasm \
             rows are Wasm CPU time / native CPU time at the same batch",
        );
        s
    }
}
