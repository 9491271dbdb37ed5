//! The host's wall clock, in the one unit its records use: milliseconds
//! since the Unix epoch. Plugins never see it (their time is the events'
//! timestamps); the host stamps deploys, failures, dead letters and
//! retirements with it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ms since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
