//! How fast a worker goes: how many events it reads into one batch
//! ([`BatchSize`]) and how long it waits before retrying a log it cannot
//! reach ([`Backoff`], [`wait_out`]).

use std::time::{Duration, Instant};

use super::running::Running;
use crate::eventlog::LogError;

/// Size of a worker's first batch; see [`BatchSize`].
const FIRST_BATCH: usize = 1024;
/// First and longest wait before retrying an unreachable log.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// How many events go into the next batch. Batches start at `FIRST_BATCH`
/// events and double with each full one up to the host's `batch_size`: a
/// replay shows progress (or meets a failing event) at once, and a long one
/// soon runs at the full batch size. A batch that fails as a whole while
/// each of its events succeeds alone (its writes together over the memory
/// limit, say) lowers the ceiling to half its size, so the next ones fit.
pub(super) struct BatchSize {
    /// Most events in the next batch.
    pub(super) limit: usize,
    max: usize,
}

impl BatchSize {
    /// Batches of at most `max` events, starting smaller.
    pub(super) fn new(max: usize) -> Self {
        let max = max.max(1);
        BatchSize {
            limit: FIRST_BATCH.min(max),
            max,
        }
    }

    /// A batch of `count` events succeeded.
    pub(super) fn succeeded(&mut self, count: usize) {
        if count >= self.limit {
            self.limit = (self.limit * 2).min(self.max);
        }
    }

    /// A batch of `count` events failed though each succeeded alone.
    pub(super) fn too_large(&mut self, count: usize) {
        self.max = (count / 2).max(1);
        self.limit = self.limit.min(self.max);
    }
}

/// The wait before retrying an unreachable log, doubling up to `RETRY_MAX`.
pub(super) struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(RETRY_FIRST)
    }
}

impl Backoff {
    /// Back to the first wait; whether it had grown (the log was
    /// unreachable since the last reset).
    pub(super) fn reset(&mut self) -> bool {
        std::mem::take(self).0 != RETRY_FIRST
    }
}

/// The log cannot be reached: shows why in the version's status, warns
/// once, and waits `backoff` (doubling it up to `RETRY_MAX`) before the
/// caller retries. Nothing was applied, so the retry resumes from the
/// offsets committed in the view: no event is lost or applied twice.
pub(super) fn wait_out(run: &Running, e: &LogError, backoff: &mut Backoff) {
    let message = e.to_string();
    let first = run
        .progress
        .lock()
        .log_error
        .replace(message.clone())
        .is_none();
    if first {
        tracing::warn!(version = %run.record.id(), "{message}");
    }
    let until = Instant::now() + backoff.0;
    while !run.stopping() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    backoff.0 = (backoff.0 * 2).min(RETRY_MAX);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_double_up_to_the_ceiling_and_a_too_large_one_halves_it() {
        let mut batch = BatchSize::new(4096);
        assert_eq!(batch.limit, FIRST_BATCH);
        batch.succeeded(FIRST_BATCH - 1);
        assert_eq!(batch.limit, FIRST_BATCH, "a short batch does not grow it");
        for _ in 0..4 {
            let full = batch.limit;
            batch.succeeded(full);
        }
        assert_eq!(batch.limit, 4096);
        batch.too_large(4096);
        assert_eq!((batch.limit, batch.max), (2048, 2048));
        batch.too_large(1);
        assert_eq!((batch.limit, batch.max), (1, 1));
        assert_eq!(BatchSize::new(0).limit, 1);
    }

    #[test]
    fn a_reset_says_whether_the_backoff_had_grown() {
        let mut backoff = Backoff::default();
        assert!(!backoff.reset());
        backoff.0 = RETRY_MAX;
        assert!(backoff.reset());
        assert_eq!(backoff.0, RETRY_FIRST);
    }
}
