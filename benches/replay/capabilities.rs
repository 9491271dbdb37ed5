//! Section 9: what the capabilities of contract 0.3.0 cost per event, in the
//! product's worker (deploy to caught up) over the one-partition log:
//! key-totals on 0.3.0-rc.1 (one view read and one write per event) against
//! the same on 0.3.0 with nothing added, with a range read per event, with a
//! timer per key moved at every event, and with a timer per event that fires
//! after a later event (an expiry: the host then cuts the batch after almost
//! every event, to fire it where the contract says).

use super::bench::{Bench, ONE};
use super::common::{median, paired_ratio};
use super::report::Section;

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
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
        for _ in 0..self.options.runs {
            for (i, variant) in VARIANTS.iter().enumerate() {
                times[i].push(replay(variant));
            }
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
        s.note(
            "timers that fire do nothing and the rows are key-totals' in every variant; the \
             views differ only in the host's rows (timers, event time), so their digests are \
             not compared",
        );
        s
    }
}
