//! Section 9: what the capabilities of contract 0.3.0 cost per event, in the
//! product's worker (deploy to caught up) over the one-partition log:
//! key-totals on 0.3.0-rc.1 (one view read and one write per event) against
//! the same on 0.3.0 with nothing added, with a range read per event, with a
//! timer per key moved at every event, and with a timer per event that fires
//! after a later event (an expiry: the host then cuts the batch after almost
//! every event, to fire it where the contract says); and the same events
//! read from two topics (every other event in each) against one.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kappa::registry::VersionId;

use super::bench::{Bench, ONE};
use super::common::{fill, median, paired_ratio, payments};
use super::report::Section;

/// The two topics of the two-topic replay: every other event of the log in
/// each, one partition each.
const HALVES: [&str; 2] = ["half-a", "half-b"];

/// The variants measured: label, component, configuration.
const VARIANTS: &[(&str, &str, &str)] = &[
    (
        "key-totals on 0.3.0-rc.1: a get and a put per event",
        "rc1",
        "",
    ),
    ("key-totals on 0.3.0, nothing added", "timed", ""),
    (
        "+ a range read of 8 rows per event",
        "timed",
        r#"{"range":8}"#,
    ),
    (
        "+ a timer per key, moved at every event (an idle timeout)",
        "timed",
        r#"{"idle_ms":3600000}"#,
    ),
    (
        "+ a timer per event, firing 1 s of event time later (an expiry)",
        "timed",
        r#"{"expire_ms":1000}"#,
    ),
];

impl Bench {
    pub(crate) fn capabilities(&self) -> Section {
        let mut s = Section::new(
            9,
            "what contract 0.3.0's capabilities cost, key-totals, 1 partition, product worker",
            "time / key-totals on 0.3.0-rc.1 in the same run",
        );
        let n = self.options.events as f64;
        let replay = |(_, which, config): &(&str, &str, &str)| {
            let bytes = match *which {
                "rc1" => kappa_plugins::KEY_TOTALS_V3.bytes,
                _ => kappa_plugins::KEY_TOTALS_TIMED.bytes,
            };
            let mut settings = self.settings.clone();
            settings.config = (*config).to_owned();
            self.host_replay_with("capabilities", ONE, bytes, settings)
                .0
        };
        // Warm up: page cache, compiled code.
        replay(&VARIANTS[0]);
        replay(&VARIANTS[1]);
        self.split_into_halves();
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
        let mut two_topics = Vec::new();
        for _ in 0..self.options.runs {
            for (i, variant) in VARIANTS.iter().enumerate() {
                times[i].push(replay(variant));
            }
            two_topics.push(self.two_topic_replay());
        }
        for (i, (label, _, _)) in VARIANTS.iter().enumerate() {
            let ratio = paired_ratio(&times[i], &times[0]);
            s.figure(
                *label,
                n / median(times[i].clone()),
                "events/s",
                Some(ratio),
            );
        }
        s.figure(
            "key-totals on 0.3.0, the same events from two topics (every other one in each)",
            n / median(two_topics.clone()),
            "events/s",
            Some(paired_ratio(&two_topics, &times[1])),
        );
        s.note(
            "the two-topic figure's ratio is to key-totals on 0.3.0 from one topic, the \
             nothing-added line",
        );
        s.note(
            "timers that fire do nothing and the rows are key-totals' in every variant; the \
             views differ only in the host's rows (timers, event time), so their digests are \
             not compared",
        );
        s
    }
}

impl Bench {
    /// Writes the benchmark's events into the two topics of [`HALVES`],
    /// alternately, with their timestamps: the same events as the one-topic
    /// log, in the same (timestamp, offset) order once merged.
    fn split_into_halves(&self) {
        let log = self.host.log();
        if log.topic(HALVES[0]).is_ok() {
            return;
        }
        let mut halves = [Vec::new(), Vec::new()];
        for (i, record) in payments(11, self.options.keys, self.options.events)
            .into_iter()
            .enumerate()
        {
            halves[i % 2].push(record);
        }
        for (topic, records) in HALVES.iter().zip(halves) {
            self.host.create_topic(topic, 1).unwrap();
            fill(log.as_ref(), topic, records);
        }
    }

    /// Seconds to deploy key-totals on 0.3.0 over both halves and catch up.
    fn two_topic_replay(&self) -> f64 {
        let id = VersionId::parse(&format!(
            "capabilities-two-topics@1.0.{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ))
        .unwrap();
        let topics: Vec<String> = HALVES.iter().map(|t| (*t).to_owned()).collect();
        let started = Instant::now();
        self.host
            .deploy_topics(
                &id,
                &topics,
                kappa_plugins::KEY_TOTALS_TIMED.bytes,
                self.settings.clone(),
            )
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let status = self.host.version_status(&id).unwrap();
            assert!(status.failure.is_none(), "{id}: {:?}", status.failure);
            if status.caught_up && status.lag == Some(0) {
                return started.elapsed().as_secs_f64();
            }
            assert!(Instant::now() < deadline, "{id} did not catch up in 600 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
