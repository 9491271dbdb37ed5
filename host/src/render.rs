//! What the `kappa` commands and `kappa demo` print as text: numbers with
//! thousands separators, short digests, ETAs, the status table, a diff, and
//! a version's replay progress with the rate measured between polls
//! ([`Meter`]). A leaf: it reads the library's report shapes and nothing of
//! the command line.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::diff::{Change, DiffReport};
use crate::model::{ProcessorStatus, State, StatusReport, VersionStatus};

/// `n` with thousands separators: `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate rounded to a whole number, with thousands separators.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a float-to-int `as` saturates, and the value is rounded and not negative"
)]
pub fn group_rate(rate: f64) -> String {
    group(rate.max(0.0).round() as u64)
}

/// The first 12 characters of a digest, as every command shows one.
pub fn short_digest(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// An estimated time to go: `6.2 s`, or `-` when there is none.
pub fn eta(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s"))
}

/// A JSON value as text: a string without its quotes, anything else as JSON.
pub fn render_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where a processor's alias points, and where it pointed before.
pub fn alias_text(p: &ProcessorStatus) -> String {
    match (&p.promoted, &p.previous) {
        (Some(cur), Some(prev)) => format!("{}@{cur} (previous: {prev})", p.name),
        (Some(cur), None) => format!("{}@{cur}", p.name),
        (None, _) => "nothing".into(),
    }
}

/// Why a version failed, and where in the log.
pub fn failure_text(v: &VersionStatus) -> String {
    match &v.failure {
        Some(f) => {
            let topic = f
                .event_topic
                .as_ref()
                .map(|t| format!("topic {t} "))
                .unwrap_or_default();
            let place = match (f.partition, f.offset) {
                (Some(p), Some(o)) => format!("at {topic}partition {p} offset {o}: "),
                (Some(p), None) => format!("at {topic}partition {p}: "),
                _ => String::new(),
            };
            format!("{place}{}", f.message)
        }
        None => "unknown failure".into(),
    }
}

/// Status as a table.
pub fn render_status(report: &StatusReport) -> String {
    let mut out = String::new();
    if report.processors.is_empty() {
        out.push_str("no processors deployed\n");
    }
    for p in &report.processors {
        out.push_str(&format!(
            "{}  (topic {}; alias -> {})\n",
            p.name,
            p.topic,
            alias_text(p)
        ));
        out.push_str(&format!(
            "  {:<12} {:<10} {:>8} {:>10} {:>12} {:>8}  {}\n",
            "VERSION", "STATE", "PROGRESS", "LAG", "EVENTS/S", "ETA", "DIGEST"
        ));
        for v in &p.versions {
            out.push_str(&status_row(v));
        }
    }
    for t in &report.topics {
        out.push_str(&format!(
            "topic {}: {} partitions, {} events (end offsets {:?})\n",
            t.name,
            t.partitions,
            group(t.end_offsets.iter().sum::<u64>()),
            t.end_offsets
        ));
    }
    out
}

/// A version's row of the status table, and the lines under it.
fn status_row(v: &VersionStatus) -> String {
    // A retired version has no view: no progress, lag or rate.
    let (progress, lag, rate) = match (v.progress, v.lag) {
        (Some(progress), Some(lag)) => (
            format!("{:.1}%", progress * 100.0),
            group(lag),
            group_rate(v.events_per_second),
        ),
        _ => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
    };
    let mut out = format!(
        "  {:<12} {:<10} {:>8} {:>10} {:>12} {:>8}  {}\n",
        v.version,
        v.state.to_string(),
        progress,
        lag,
        rate,
        eta(v.eta_seconds),
        short_digest(&v.digest)
    );
    if v.state == State::Replaying && v.end_offsets.len() > 1 {
        out.push_str(&partition_progress(v));
    }
    if !v.inputs.is_empty() {
        out.push_str(&inputs_line(v));
    }
    if v.state == State::Failed {
        out.push_str(&format!("      failed {}\n", failure_text(v)));
    }
    if let Some(e) = &v.log_error {
        out.push_str(&format!("      waiting for the log: {e}\n"));
    }
    if let Some(last) = v.dead_letters.last() {
        out.push_str(&format!(
            "      {} dead letters; latest at {}partition {} offset {}: {}\n",
            v.dead_letter_count,
            last.topic
                .as_ref()
                .map(|t| format!("topic {t} "))
                .unwrap_or_default(),
            last.partition,
            last.offset,
            last.message
        ));
    }
    out
}

/// The topics of a version that reads several, each with its events
/// applied and in the log, and its late events: `topics orders 1,200/1,200,
/// limits 300/310; 2 late events`.
fn inputs_line(v: &VersionStatus) -> String {
    let topics: Vec<String> = v
        .inputs
        .iter()
        .map(|i| {
            let applied: u64 = i
                .applied_offsets
                .iter()
                .zip(&i.end_offsets)
                .map(|(a, e)| *a.min(e))
                .sum();
            let end: u64 = i.end_offsets.iter().sum();
            format!("{} {}/{}", i.topic, group(applied), group(end))
        })
        .collect();
    format!(
        "      topics {}; {} late events\n",
        topics.join(", "),
        group(v.late_events.unwrap_or(0))
    )
}

/// Where a replaying version is in each partition, so that a lagging one
/// shows: `partition 0 12,000/50,000` and so on, on one line.
fn partition_progress(v: &VersionStatus) -> String {
    let parts: Vec<String> = v
        .end_offsets
        .iter()
        .enumerate()
        .map(|(p, end)| {
            let applied = v.applied_offsets.get(p).copied().unwrap_or(0).min(*end);
            format!("{p}: {}/{}", group(applied), group(*end))
        })
        .collect();
    format!(
        "      partitions (applied/end, {} threads)  {}\n",
        v.threads,
        parts.join("  ")
    )
}

/// A diff as text: the counts, then each differing row side by side.
pub fn render_diff(r: &DiffReport) -> String {
    let mut out = format!(
        "{} vs {} at offsets {:?}{}\n  added {}  removed {}  changed {}  unchanged {}\n",
        r.a,
        r.b,
        r.offsets,
        if r.prefix.is_empty() {
            String::new()
        } else {
            format!(" (keys {}*)", r.prefix)
        },
        group(r.counts.added),
        group(r.counts.removed),
        group(r.counts.changed),
        group(r.counts.unchanged)
    );
    let show =
        |v: &Option<serde_json::Value>| v.as_ref().map_or_else(|| "-".to_owned(), render_json);
    for row in &r.rows {
        let mark = match row.change {
            Change::Added => "+",
            Change::Removed => "-",
            Change::Changed => "~",
        };
        out.push_str(&format!("{mark} {}\n", row.key));
        if row.fields.is_empty() {
            out.push_str(&format!(
                "    {:<8} {}\n    {:<8} {}\n",
                version_label(&r.a),
                show(&row.a),
                version_label(&r.b),
                show(&row.b)
            ));
        } else {
            for f in &row.fields {
                out.push_str(&format!(
                    "    {:<14} {:>14} -> {}\n",
                    f.path,
                    show(&f.a),
                    show(&f.b)
                ));
            }
        }
    }
    if let Some(next) = &r.next_after {
        out.push_str(&format!("(more differing rows: --after '{next}')\n"));
    }
    out
}

/// The version of `NAME@VERSION` (all of it without an `@`).
fn version_label(id: &str) -> &str {
    id.split_once('@').map_or(id, |(_, v)| v)
}

/// Events applied and events to apply in all, from where the version
/// started reading (0/0 once retired: it has no view).
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a float-to-int `as` saturates, and the value is rounded and not negative"
)]
pub fn done_total(v: &VersionStatus) -> (u64, u64) {
    let Some(lag) = v.lag else {
        return (0, 0);
    };
    let total: u64 = match v.progress {
        // The total counts from where the version started (the earliest
        // retained offsets on Kafka): done / total is the progress.
        Some(p) if p < 1.0 => (lag as f64 / (1.0 - p)).round() as u64,
        _ => v.end_offsets.iter().sum::<u64>().max(lag),
    };
    (total.saturating_sub(lag), total)
}

/// The rate and time to go shown beside a replay's progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub events_per_second: f64,
    /// `None` while nothing moves.
    pub eta_seconds: Option<f64>,
}

impl Rate {
    /// The figures the server reports for a version.
    pub fn reported(v: &VersionStatus) -> Rate {
        Rate {
            events_per_second: v.events_per_second,
            eta_seconds: v.eta_seconds,
        }
    }
}

/// Measures a version's replay rate from the progress seen at successive
/// polls: no rate before two polls a real interval apart, then the events
/// applied over the last few seconds of polls.
#[derive(Debug, Default)]
pub struct Meter {
    /// (when, events applied then), oldest first, covering `METER_WINDOW`.
    samples: VecDeque<(Instant, u64)>,
    last: Option<Rate>,
}

/// How far back the rate looks.
const METER_WINDOW: Duration = Duration::from_secs(5);
/// The shortest interval a rate is measured over.
const METER_MIN_SPAN: Duration = Duration::from_millis(50);

impl Meter {
    /// Records the status of a poll made at `at`; the rate and ETA to show
    /// with it, if there is a measurement yet.
    pub fn observe(&mut self, at: Instant, v: &VersionStatus) -> Option<Rate> {
        let (done, _) = done_total(v);
        self.samples.push_back((at, done));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| at.saturating_duration_since(*t) >= METER_WINDOW)
        {
            self.samples.pop_front();
        }
        let &(t0, done0) = self.samples.front()?;
        let span = at.saturating_duration_since(t0);
        if span < METER_MIN_SPAN {
            return self.last;
        }
        let rate = done.saturating_sub(done0) as f64 / span.as_secs_f64();
        let lag = v.lag.unwrap_or(0);
        self.last = Some(Rate {
            events_per_second: rate,
            eta_seconds: (rate > 0.0).then(|| lag as f64 / rate),
        });
        self.last
    }

    /// The last rate measured, if any.
    pub fn last(&self) -> Option<Rate> {
        self.last
    }
}

/// One line of replay progress: done/total and percent, then the rate and
/// ETA once measured. With nothing left to apply, it says so rather than
/// "replaying".
pub fn progress_line(v: &VersionStatus, rate: Option<Rate>) -> String {
    let (done, total) = done_total(v);
    if v.lag.unwrap_or(0) == 0 {
        return format!(
            "{}: all {} events applied, finishing the replay",
            v.id,
            group(total)
        );
    }
    let counts = format!(
        "{}: replaying {}/{} events ({:.1}%)",
        v.id,
        group(done),
        group(total),
        v.progress.unwrap_or(0.0) * 100.0
    );
    match rate {
        Some(r) => format!(
            "{counts}, {} events/s, ETA {}",
            group_rate(r.events_per_second),
            eta(r.eta_seconds)
        ),
        None => format!("{counts}, measuring the rate"),
    }
}

/// The message of a version's progress bar: done/total, then state, rate
/// and ETA (`rate`: `None` while not measured yet), or lag once caught up.
pub fn bar_message(v: &VersionStatus, rate: Option<Rate>) -> String {
    let pct = v.progress.unwrap_or(0.0) * 100.0;
    let lag = v.lag.unwrap_or(0);
    let (done, total) = done_total(v);
    let counts = format!("{}/{}", group(done), group(total));
    let rest = match (v.state, rate) {
        (State::Replaying, Some(r)) => format!(
            "{pct:.1}% · {} events/s · ETA {}",
            group_rate(r.events_per_second),
            eta(r.eta_seconds)
        ),
        (State::Replaying, None) => format!("{pct:.1}% · measuring the rate"),
        (State::Failed, _) => format!("failed {}", failure_text(v)),
        (State::Retired, _) => "retired · view dropped".to_owned(),
        _ if lag > 0 => format!(
            "{} · lag {} · {} events/s",
            v.state,
            group(lag),
            group_rate(v.events_per_second)
        ),
        _ => format!("{} · {} events/s", v.state, group_rate(v.events_per_second)),
    };
    match v.state {
        State::Retired => rest,
        _ => format!("{counts} {rest}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Meter, Rate, bar_message, done_total, progress_line};

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(super::group(0), "0");
        assert_eq!(super::group(999), "999");
        assert_eq!(super::group(1000), "1,000");
        assert_eq!(super::group(89_237), "89,237");
        assert_eq!(super::group(1_234_567), "1,234,567");
        assert_eq!(super::group_rate(89_236.6), "89,237");
    }

    fn version(
        state: &str,
        lag: serde_json::Value,
        progress: serde_json::Value,
    ) -> super::VersionStatus {
        serde_json::from_value(serde_json::json!({
            "id": "p@1.0.0", "name": "p", "version": "1.0.0", "digest": "00", "topic": "t",
            "state": state, "caught_up": false, "applied_offsets": [],
            "end_offsets": [1_000_000, 2_200_000], "lag": lag, "progress": progress,
            "events_per_second": 89_237.4, "eta_seconds": 2.0, "processed_since_start": 0,
            "failure": null, "settings": {}, "deployed_at_ms": 0
        }))
        .unwrap()
    }

    #[test]
    fn progress_counts_and_percentages_agree_and_a_retired_version_has_none() {
        let v = version("replaying", 2_600_000.into(), 0.1875.into());
        assert_eq!(done_total(&v), (600_000, 3_200_000));
        assert_eq!(
            bar_message(&v, Some(Rate::reported(&v))),
            "600,000/3,200,000 18.8% · 89,237 events/s · ETA 2.0 s"
        );
        assert!(progress_line(&v, None).contains("600,000/3,200,000 events (18.8%)"));
        let retired = version("retired", serde_json::Value::Null, serde_json::Value::Null);
        assert_eq!(done_total(&retired), (0, 0));
        assert_eq!(bar_message(&retired, None), "retired · view dropped");
    }

    #[test]
    fn a_replaying_version_shows_each_partition_so_a_lagging_one_stands_out() {
        let mut v = version("replaying", 2_600_000.into(), 0.1875.into());
        v.applied_offsets = vec![600_000, 0];
        v.threads = 2;
        let row = super::status_row(&v);
        assert!(
            row.contains(
                "partitions (applied/end, 2 threads)  0: 600,000/1,000,000  1: 0/2,200,000"
            ),
            "{row}"
        );
        let caught_up = version("caught_up", 0.into(), 1.0.into());
        assert!(!super::status_row(&caught_up).contains("partitions"));
    }

    #[test]
    fn no_rate_or_eta_before_two_polls_a_real_interval_apart() {
        // The first poll of a deploy: one batch of 1,024 of 20,000 applied,
        // and the server's rate measured over next to no time.
        let mut first = version("replaying", 18_976.into(), 0.0512.into());
        first.events_per_second = 1_024_000.0;
        first.eta_seconds = Some(0.0);
        let start = Instant::now();
        let mut meter = Meter::default();
        let rate = meter.observe(start, &first);
        assert_eq!(rate, None);
        let line = progress_line(&first, rate);
        assert_eq!(
            line,
            "p@1.0.0: replaying 1,024/20,000 events (5.1%), measuring the rate"
        );
        assert_eq!(
            bar_message(&first, rate),
            "1,024/20,000 5.1% · measuring the rate"
        );
        // A second poll at the same instant measures nothing either.
        assert_eq!(meter.observe(start, &first), None);

        // One second later, 10,000 more applied: 10,000 events/s, and the
        // 8,976 left take 0.9 s.
        let second = version("replaying", 8_976.into(), 0.5512.into());
        let rate = meter.observe(start + Duration::from_secs(1), &second);
        let r = rate.unwrap();
        assert!((r.events_per_second - 10_000.0).abs() < 1e-6, "{r:?}");
        assert_eq!(
            progress_line(&second, rate),
            "p@1.0.0: replaying 11,024/20,000 events (55.1%), 10,000 events/s, ETA 0.9 s"
        );
        assert_eq!(meter.last(), rate);
    }

    #[test]
    fn nothing_left_to_apply_is_not_called_replaying() {
        let v = version("replaying", 0.into(), 1.0.into());
        let line = progress_line(&v, Some(Rate::reported(&v)));
        assert!(!line.contains("replaying"), "{line}");
        assert!(!line.contains("ETA"), "{line}");
        assert_eq!(
            line,
            "p@1.0.0: all 3,200,000 events applied, finishing the replay"
        );
    }
}
