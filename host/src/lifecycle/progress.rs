//! A worker's live figures, as `kappa status` shows them: the offsets it has
//! applied, where it started, why the log cannot be read right now, and its
//! rate of events, measured over a sliding window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Live figures of a worker.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    pub(super) applied: Vec<u64>,
    /// With several topics: the next offsets of the topics past the first
    /// (by topic index less one, then partition).
    pub(super) applied_more: Vec<Vec<u64>>,
    /// With several topics: events delivered late since the host started
    /// (see `super::inputs`).
    pub(super) late: u64,
    /// Where this version started reading each partition (0 on the
    /// embedded log, the low watermark on Kafka); empty until known.
    pub(super) start: Vec<u64>,
    /// Why the log cannot be read right now (a broker down), while the
    /// worker retries.
    pub(super) log_error: Option<String>,
    pub(super) processed: u64,
    /// (when, `processed` then), at most one per `SAMPLE_EVERY`, covering
    /// the last `RATE_WINDOW`: the rate is measured over a sliding window so
    /// it is right both for a sub-second replay and for an idle version.
    samples: VecDeque<(Instant, u64)>,
}

const RATE_WINDOW: Duration = Duration::from_secs(1);
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// The shortest span a rate is measured over: the first batch of a stretch
/// of work is only known once it is done, so over less than this a rate
/// would be one batch divided by almost nothing (a million events/s).
const MIN_SPAN: Duration = Duration::from_millis(100);

impl Progress {
    /// `events` more were applied.
    pub(super) fn record(&mut self, events: u64) {
        let now = Instant::now();
        if self.samples.is_empty() {
            // The start of this stretch of work.
            self.samples.push_back((now, self.processed));
        }
        self.processed += events;
        if self
            .samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= SAMPLE_EVERY)
        {
            self.samples.push_back((now, self.processed));
        }
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Events per second over the last second or so (zero when idle, and
    /// before there is a span of `MIN_SPAN` to measure over).
    pub(super) fn rate(&self) -> f64 {
        self.rate_at(Instant::now())
    }

    fn rate_at(&self, now: Instant) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, n0)), Some(&(_, n1))) => {
                let span = now.duration_since(t0);
                if span < MIN_SPAN || span > 2 * RATE_WINDOW {
                    return 0.0;
                }
                (self.processed.max(n1) - n0) as f64 / span.as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// The worker found nothing to do: a stretch of work that ended more
    /// than a window ago no longer counts towards the rate.
    pub(super) fn idle(&mut self) {
        let now = Instant::now();
        if self
            .samples
            .back()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.samples.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rate_from_one_batch_measured_over_almost_nothing() {
        let mut p = Progress::default();
        p.record(1024);
        let start = p.samples.front().map(|(at, _)| *at);
        let Some(start) = start else {
            panic!("a sample was taken");
        };
        // Right after the first batch: no rate (it used to read 1,024,000/s).
        assert_eq!(p.rate_at(start + Duration::from_millis(1)), 0.0);
        // Over a real span, events over that span.
        let rate = p.rate_at(start + Duration::from_millis(500));
        assert!((rate - 2048.0).abs() < 1e-6, "{rate}");
        // Long idle: nothing.
        assert_eq!(p.rate_at(start + Duration::from_secs(3)), 0.0);
    }
}
