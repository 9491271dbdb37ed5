//! A worker's live figures, as `kappa status` shows them: the offsets it has
//! applied, where it started, why the log cannot be read right now, and its
//! rate of events, measured over a sliding window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Live figures of a worker.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    pub(super) applied: Vec<u64>,
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

    /// Events per second over the last second or so (zero when idle).
    pub(super) fn rate(&self) -> f64 {
        let now = Instant::now();
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, n0)), Some(&(_, n1))) if now.duration_since(t0) <= 2 * RATE_WINDOW => {
                let elapsed = now.duration_since(t0).as_secs_f64().max(1e-3);
                (self.processed.max(n1) - n0) as f64 / elapsed
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
