//! Section 4: live latency from `produce` acknowledged to the promoted view
//! updated, idle and while a new version replays beside it on every core (a
//! version whose state is per partition, one thread per core, which the host
//! runs below the live version's priority).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kappa::log::NewRecord;
use kappa::registry::VersionId;
use kappa::workload::PaymentGenerator;
use kappa::{Host, HostOptions};

use super::bench::Bench;
use super::common::{fill, payments, percentile, wait_applied};
use super::report::Section;

impl Bench {
    pub(crate) fn latency(&self) -> Section {
        let mut s = Section::new(
            4,
            "live latency, produce acknowledged to promoted view updated",
            "latency / the same percentile with nothing replaying beside it",
        );
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        // The benchmark's host, whose replays run below live work (the
        // default), and one where they compete as equals: the difference is
        // what the priority gives.
        let equal = Host::open(
            &self.dir.path().join("equal-priority"),
            HostOptions {
                lower_replay_priority: false,
                ..HostOptions::default()
            },
        )
        .unwrap();
        let lowered = self.live_latency(&self.host, cores);
        let equal = self.live_latency(&equal, cores);
        let idle = &lowered.idle;
        let base_p50 = percentile(&idle.latencies, 0.5);
        let base_p99 = percentile(&idle.latencies, 0.99);
        let rows = [
            ("nothing else running", idle, None),
            (
                "a replay on every core beside it, at lower priority (the default)",
                &lowered.busy,
                Some(lowered.replay_rate),
            ),
            (
                "a replay on every core beside it, at equal priority",
                &equal.busy,
                Some(equal.replay_rate),
            ),
        ];
        for (label, l, replay_rate) in rows {
            let (p50, p99, p999, max) = (
                percentile(&l.latencies, 0.5),
                percentile(&l.latencies, 0.99),
                percentile(&l.latencies, 0.999),
                percentile(&l.latencies, 1.0),
            );
            let idle_row = replay_rate.is_none();
            let ratio = |v: f64, base: f64| Some(if idle_row { 1.0 } else { v / base });
            s.figure(format!("p50, {label}"), p50, "ms", ratio(p50, base_p50));
            s.figure(format!("p99, {label}"), p99, "ms", ratio(p99, base_p99));
            s.figure(format!("p999, {label}"), p999, "ms", None);
            s.figure(format!("max, {label}"), max, "ms", None);
            s.figure(
                format!("events/s produced, {label}"),
                l.events as f64 / l.seconds,
                "events/s",
                None,
            );
            if let Some(rate) = replay_rate {
                s.figure(
                    format!("replay beside it ({cores} threads), {label}"),
                    rate,
                    "events/s",
                    None,
                );
            }
        }
        let rate = self.options.live_rate;
        let p99 = percentile(&lowered.busy.latencies, 0.99);
        s.note(format!(
            "{} produce calls per measurement (each acknowledged after fsync), {rate} events/s \
             asked for {} s, 2 partitions; latency from the acknowledgement to the promoted \
             version's applied offsets covering the events (polled every 200 us); beside it, \
             versions of contract 0.3.0-rc.1 replay a log of {cores} partitions on {cores} \
             threads, one after another",
            idle.latencies.len(),
            self.options.live_seconds
        ));
        s.note(format!(
            "target p99 at most 5 ms at 10,000 events/s with a replay on every core beside it: \
             {} ({p99:.2} ms)",
            if p99 <= 5.0 && rate >= 10_000 {
                "met"
            } else {
                "NOT met"
            }
        ));
        s
    }

    /// On `host`: the live version's latency idle, then beside replays on
    /// every core, and the replays' rate.
    fn live_latency(&self, host: &Arc<Host>, cores: usize) -> LiveLatency {
        let topic = "live";
        host.create_topic(topic, 2).unwrap();
        let live = VersionId::parse("live@1.0.0").unwrap();
        host.deploy(
            &live,
            topic,
            kappa_plugins::PAYMENTS_V2.bytes,
            self.settings.clone(),
        )
        .unwrap();
        wait_applied(host, &live, 0, Duration::from_millis(1));
        let mut generator = PaymentGenerator::new(13, self.options.keys, 1_767_225_600_000);
        let rate = self.options.live_rate;
        let seconds = self.options.live_seconds;
        let idle = measure_latency(host, &live, topic, &mut generator, rate, seconds);

        host.create_topic(BESIDE, cores as u32).unwrap();
        fill(
            host.log().as_ref(),
            BESIDE,
            payments(11, self.options.keys, self.options.events),
        );
        let stop = AtomicBool::new(false);
        let replayed = AtomicU64::new(0);
        let (busy, replay_rate) = std::thread::scope(|scope| {
            let background = scope.spawn(|| self.replay_beside(host, &stop, &replayed));
            // Let the replay get going before measuring.
            std::thread::sleep(Duration::from_millis(200));
            let started = Instant::now();
            let before = replayed.load(Ordering::Relaxed);
            let lat = measure_latency(host, &live, topic, &mut generator, rate, seconds);
            let during = replayed.load(Ordering::Relaxed) - before;
            let elapsed = started.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            background.join().unwrap();
            (lat, during as f64 / elapsed)
        });
        LiveLatency {
            idle,
            busy,
            replay_rate,
        }
    }

    fn replay_beside(&self, host: &Arc<Host>, stop: &AtomicBool, replayed: &AtomicU64) {
        let total: u64 = host.log().end_offsets(BESIDE).unwrap().iter().sum();
        let mut k = 0;
        while !stop.load(Ordering::Relaxed) {
            let id = VersionId::parse(&format!("beside@1.0.{k}")).unwrap();
            k += 1;
            host.deploy(
                &id,
                BESIDE,
                kappa_plugins::PAYMENTS_V2_SHARDS.bytes,
                self.settings.clone(),
            )
            .unwrap();
            let mut last = 0;
            loop {
                let status = host.version_status(&id).unwrap();
                let applied: u64 = status.applied_offsets.iter().sum();
                replayed.fetch_add(applied - last, Ordering::Relaxed);
                last = applied;
                if applied >= total || stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // The first version is promoted when it catches up; the others
            // are retired so that only one replays at a time.
            // (Retiring the promoted one fails: it stays, idle.)
            let _ = host.retire(&id);
        }
    }
}

/// The live version `id`'s latencies on `host` at `rate` events/s for
/// `seconds`.
fn measure_latency(
    host: &Host,
    id: &VersionId,
    topic: &str,
    generator: &mut PaymentGenerator,
    rate: u64,
    seconds: f64,
) -> Latencies {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<(u32, u64)>)>();
    std::thread::scope(|scope| {
        let observer = scope.spawn(move || {
            let mut pending: VecDeque<(Instant, Vec<(u32, u64)>)> = VecDeque::new();
            let mut latencies = Vec::new();
            let mut open = true;
            while open || !pending.is_empty() {
                loop {
                    match rx.try_recv() {
                        Ok(item) => pending.push_back(item),
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                if !pending.is_empty() {
                    let applied = host.version_status(id).unwrap().applied_offsets;
                    let now = Instant::now();
                    while let Some((acked, ends)) = pending.front() {
                        if ends
                            .iter()
                            .all(|&(p, end)| applied.get(p as usize).is_some_and(|&a| a >= end))
                        {
                            latencies.push(now.duration_since(*acked).as_secs_f64() * 1e3);
                            pending.pop_front();
                        } else {
                            break;
                        }
                    }
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            latencies
        });
        let started = Instant::now();
        let mut sent = 0u64;
        let mut calls = 0;
        while started.elapsed().as_secs_f64() < seconds {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            if due <= sent {
                std::thread::sleep(Duration::from_micros(500));
                continue;
            }
            let n = (due - sent).min(5_000) as usize;
            let events = generator
                .take(n)
                .into_iter()
                .map(|p| {
                    (
                        None,
                        NewRecord {
                            timestamp: p.timestamp,
                            key: Some(p.account.clone().into_bytes()),
                            value: serde_json::to_vec(&p).unwrap(),
                            headers: Vec::new(),
                        },
                    )
                })
                .collect();
            let report = host.produce(topic, events).unwrap();
            let acked = Instant::now();
            let ends = report
                .partitions
                .iter()
                .map(|r| (r.partition, r.last_offset + 1))
                .collect();
            tx.send((acked, ends)).unwrap();
            sent += n as u64;
            calls += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        drop(tx);
        let mut latencies = observer.join().unwrap();
        latencies.sort_by(f64::total_cmp);
        assert_eq!(latencies.len(), calls);
        Latencies {
            latencies,
            events: sent,
            seconds,
        }
    })
}

/// The topic replayed beside the live version: one partition per core.
const BESIDE: &str = "beside";

/// The latency of the live version idle and beside replays, and their rate.
struct LiveLatency {
    idle: Latencies,
    busy: Latencies,
    replay_rate: f64,
}

struct Latencies {
    latencies: Vec<f64>,
    events: u64,
    seconds: f64,
}
