//! Helpers shared by the sections: the generated payments, the statistics
//! (medians, paired ratios, percentiles), the views' digests and what the
//! process reads about itself from `/proc` (CPU time, memory).

use std::time::{Duration, Instant};

use kappa::Host;
use kappa::eventlog::EventLog;
use kappa::log::NewRecord;
use kappa::registry::VersionId;
use kappa::workload::PaymentGenerator;

use super::report::Section;

/// `n` payments keyed by account, as log records.
pub(crate) fn payments(seed: u64, keys: u64, n: usize) -> Vec<NewRecord> {
    let mut generator = PaymentGenerator::new(seed, keys, 1_767_225_600_000);
    (0..n)
        .map(|_| {
            let p = generator.next_payment();
            NewRecord {
                timestamp: p.timestamp,
                key: Some(p.account.clone().into_bytes()),
                value: serde_json::to_vec(&p).unwrap(),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// Appends `records` to `topic`, each to its key's partition.
pub(crate) fn fill(log: &dyn EventLog, topic: &str, records: Vec<NewRecord>) {
    let partitions = log.topic(topic).unwrap().partitions;
    append_to(log, topic, records, |key| {
        kappa::log::partition_for_key(key, partitions)
    });
}

/// Appends `records` to `topic` with every key in one partition, as
/// [`fill`] does, but the keys spread so that the partitions hold as nearly
/// the same number of events as the keys allow (the busiest keys first, each
/// to the partition holding the fewest events so far): a replay on one thread
/// per partition ends with its largest partition, so hashed keys that give
/// one partition 52% of the events would cap two threads at 1.92 times one.
pub(crate) fn fill_balanced(log: &dyn EventLog, topic: &str, records: Vec<NewRecord>) {
    let partitions = log.topic(topic).unwrap().partitions;
    let mut counts: std::collections::HashMap<&[u8], u64> = std::collections::HashMap::new();
    for r in &records {
        *counts
            .entry(r.key.as_deref().unwrap_or_default())
            .or_default() += 1;
    }
    let mut keys: Vec<(&[u8], u64)> = counts.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut load = vec![0u64; partitions as usize];
    let mut partition_of = std::collections::HashMap::new();
    for (key, count) in keys {
        let p = (0..partitions)
            .min_by_key(|&p| (load[p as usize], p))
            .unwrap();
        load[p as usize] += count;
        partition_of.insert(key.to_vec(), p);
    }
    append_to(log, topic, records, |key| partition_of[key]);
}

/// Appends `records` to `topic` in batches of 50,000, each to the partition
/// `partition_of` gives its key.
fn append_to(
    log: &dyn EventLog,
    topic: &str,
    records: Vec<NewRecord>,
    partition_of: impl Fn(&[u8]) -> u32,
) {
    let mut batch = Vec::with_capacity(50_000);
    for r in records {
        let p = partition_of(r.key.as_deref().unwrap_or_default());
        batch.push((p, r));
        if batch.len() == 50_000 {
            log.append(topic, std::mem::take(&mut batch)).unwrap();
        }
    }
    if !batch.is_empty() {
        log.append(topic, batch).unwrap();
    }
}

/// Which side of a pair runs first in run `run`: native then Wasm in even
/// runs, Wasm then native in odd ones (`true` is the Wasm side), so that an
/// effect of order (the previous run's final sync, a warmer cache) falls on
/// each side equally often and cancels in the median of the ratios.
pub(crate) fn pair_order(run: usize) -> [bool; 2] {
    if run.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

/// The median of the ratios `a[i] / b[i]`: each pair is measured back to
/// back, so a change of the machine's load during the run moves both terms
/// of a pair and cancels out, where a ratio of two medians would not.
pub(crate) fn paired_ratio(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(a, b)| a / b).collect())
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn check_same(s: &mut Section, digests: &[(&str, String)]) {
    let first = &digests[0].1;
    for (who, d) in digests {
        assert_eq!(
            d, first,
            "the view of `{who}` differs from the view of `{}`",
            digests[0].0
        );
    }
    let mut who: Vec<&str> = digests.iter().map(|(w, _)| *w).collect();
    who.dedup();
    who.sort();
    who.dedup();
    s.note(format!(
        "views identical (sha256 {}): {}",
        &first[..12],
        who.join(", ")
    ));
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Waits until `id` has applied `total` events (all partitions summed).
pub(crate) fn wait_applied(host: &Host, id: &VersionId, total: u64, poll: Duration) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    loop {
        let status = host.version_status(id).unwrap();
        assert!(
            status.failure.is_none(),
            "{id} failed: {:?}",
            status.failure
        );
        let applied: u64 = status.applied_offsets.iter().sum();
        if applied >= total && (total > 0 || status.caught_up) {
            return;
        }
        assert!(Instant::now() < deadline, "{id} did not catch up in 600 s");
        std::thread::sleep(next_poll(applied, total, started.elapsed(), poll));
    }
}

/// How long to wait before polling a replay again: an eighth of the time
/// its rate so far says is left, between `finest` and 50 ms. Each poll wakes
/// the benchmark's thread, which takes a core from a replay thread of lower
/// priority: polling every millisecond was most of what preempted a
/// two-thread replay (section 3). Near the end the wait is `finest` again,
/// so the end is seen as closely as before.
fn next_poll(applied: u64, total: u64, elapsed: Duration, finest: Duration) -> Duration {
    if applied == 0 || applied >= total {
        return finest;
    }
    let left = elapsed.mul_f64((total - applied) as f64 / applied as f64);
    (left / 8).clamp(finest, Duration::from_millis(50).max(finest))
}

/// CPU time (user + system) of the calling thread so far, from
/// `/proc/thread-self/stat` (in clock ticks of 10 ms; the replays timed
/// with it last seconds). Zero where that file does not exist.
pub(crate) fn thread_cpu_seconds() -> f64 {
    cpu_seconds("/proc/thread-self/stat")
}

/// CPU time (user + system) of every thread of this process so far, from
/// `/proc/self/stat`: what the product's worker threads use, read from the
/// benchmark's thread.
pub(crate) fn process_cpu_seconds() -> f64 {
    cpu_seconds("/proc/self/stat")
}

fn cpu_seconds(stat: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses: state is
    // field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

pub(crate) fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn rss_bytes() -> u64 {
    status_kb("VmRSS:") * 1024
}

pub(crate) fn peak_bytes() -> u64 {
    status_kb("VmHWM:") * 1024
}

/// Resets the peak resident set (VmHWM) to the current one (Linux).
pub(crate) fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").ok();
}

/// Bytes this process has caused to be written to storage so far
/// (`write_bytes` of `/proc/self/io`: counted when a page is first dirtied,
/// so a page rewritten before the kernel writes it back counts once). Zero
/// where that file does not exist.
pub(crate) fn storage_written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}
