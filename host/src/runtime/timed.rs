//! A batch of contract 0.3.0: the calls of `process` and `fire` that one
//! batch of events becomes, so that timers fire exactly where the contract
//! says whatever the host's batch sizes.
//!
//! A timer fires right after the first event, from the one that set it on,
//! whose event time reaches its moment. The host knows the timers set before
//! the batch, so it cuts the batch right after the event where the first of
//! them is due, passes those events to `process`, fires what is due, and goes
//! on with the rest of the batch. A timer set within a call is seen only once
//! the call returns: if it is due before the last event the call was given,
//! the host takes back the call's writes and passes the events again, cut at
//! that event. The second call sees the same events and the same shard, so it
//! sets the same timers, and the cut converges. Every call of one batch
//! shares its pending writes, committed once, with the batch's offsets, by
//! the caller.
//!
//! Taking a call back needs the values its writes replaced. Keeping them (a
//! journal of the pending writes) cost a batch without such a timer 18% of
//! its time (BENCHMARKS.md section 9), and most batches have none; so the
//! first time a batch needs it, the host starts the batch again from its
//! first event with the cut it found, journaling from then on: a batch is
//! processed at most twice over, and one that never sets a timer due within
//! itself keeps no journal.
//!
//! After a cut a timer set in the call made, the next calls are given at
//! most twice as many events as the last one, growing back to the whole
//! batch: a processor that sets a timer due right away at every event costs
//! a few calls per event rather than a call per event for each event left.

use std::collections::BTreeSet;

use wasmtime::Store;

use super::bindings::v0_3;
use super::call::GuestError;
use super::convert::to_columns_v0_3;
use super::host::HostState;
use super::timers::{event_times, fire_point};
use crate::log::Record;

/// Timers passed to one call of `fire` at most.
pub const FIRE_CALL_TIMERS: u32 = 1024;

/// Calls of `fire` in a row after one event at most: a processor that keeps
/// setting timers for moments already reached fails here instead of looping.
pub const MAX_FIRE_CALLS: usize = 10_000;

/// How a batch's calls ended when the processor (or, for a batch too large
/// to lay out, the host) refused it.
pub(super) struct Refused {
    /// The processor's error.
    pub(super) error: GuestError,
    /// The offset of the event the failing call followed, when it was
    /// `fire` (whose error names no event).
    pub(super) at: Option<u64>,
    /// Whether the host failed (a batch too large to lay out), not the guest.
    pub(super) host: bool,
}

impl Refused {
    /// The processor's error from `process`.
    pub(super) fn guest(error: impl Into<GuestError>) -> Self {
        Refused {
            error: error.into(),
            at: None,
            host: false,
        }
    }

    /// A batch the host cannot lay out for the plugin.
    pub(super) fn host(message: String) -> Self {
        Refused {
            error: GuestError::Internal(message),
            at: None,
            host: true,
        }
    }
}

/// Runs `events` (`topics[i]`: the topic of `events[i]`) through the
/// plugin `b`, firing timers as they fall due. The batch's state (snapshot,
/// pending writes, timers) is in `store`'s data, begun by the caller.
pub(super) fn run(
    b: &v0_3::Processor,
    store: &mut Store<HostState>,
    events: &[Record],
    topics: &[u32],
    timeout_ticks: u64,
) -> wasmtime::Result<Result<(), Refused>> {
    let Some(partition) = events.first().map(|r| r.partition) else {
        return Ok(Ok(()));
    };
    let before = store.data_mut().event_time()?;
    let times = event_times(before, events.iter().map(|r| r.timestamp));
    let floor = store.data_mut().timer_floor()?;
    // The cuts found by taking a call back. Until the first, calls keep no
    // journal (most batches set no timer due within themselves): that first
    // time, the batch starts again from its first event, journaled.
    let mut found: BTreeSet<usize> = BTreeSet::new();
    'batch: loop {
        let journaled = !found.is_empty();
        let (mut pos, mut window) = (0, events.len());
        while pos < events.len() {
            let mut cut = pos.saturating_add(window).min(events.len()) - 1;
            if let Some(&at) = found.range(pos..).next() {
                cut = cut.min(at);
            }
            if let Some(due) = store.data_mut().next_due()?
                && let Some(at) = fire_point(&times, pos, due)
            {
                cut = cut.min(at);
            }
            loop {
                let given = &events[pos..=cut];
                let batch = match to_columns_v0_3(given, topics.get(pos..).unwrap_or_default()) {
                    Ok(batch) => batch,
                    Err(message) => return Ok(Err(Refused::host(message))),
                };
                let count = u32::try_from(given.len()).unwrap_or(u32::MAX);
                store.data_mut().begin_timer_call(count)?;
                if journaled {
                    store.data_mut().begin_journal()?;
                }
                // The time limit is per call into the plugin, however many
                // calls a batch becomes.
                store.set_epoch_deadline(timeout_ticks);
                if let Err(e) = b.call_process(&mut *store, &batch)? {
                    return Ok(Err(Refused::guest(e)));
                }
                let earliest = store
                    .data_mut()
                    .timers_set()?
                    .into_iter()
                    .filter_map(|(event, at)| fire_point(&times, pos + event as usize, at))
                    .min();
                match earliest {
                    Some(at) if at < cut => {
                        found.insert(at);
                        if !journaled {
                            store.data_mut().restart_batch(floor.clone())?;
                            continue 'batch;
                        }
                        store.data_mut().end_journal(false)?;
                        cut = at;
                        window = cut - pos + 1;
                    }
                    _ => {
                        if journaled {
                            store.data_mut().end_journal(true)?;
                        }
                        break;
                    }
                }
            }
            let after = (partition, times[cut], events[cut].offset);
            if let Err(refused) = fire(b, store, after, timeout_ticks)? {
                return Ok(Err(refused));
            }
            pos = cut + 1;
            window = window.saturating_mul(2);
        }
        break;
    }
    if let Some(&after) = times.last()
        && after > before
    {
        store.data_mut().set_event_time(after)?;
    }
    Ok(Ok(()))
}

/// Fires every timer due at event time `time`, right after the event at
/// `offset` of `partition` (`after`), including those the firing sets for
/// moments already reached.
fn fire(
    b: &v0_3::Processor,
    store: &mut Store<HostState>,
    (partition, time, offset): (u32, i64, u64),
    timeout_ticks: u64,
) -> wasmtime::Result<Result<(), Refused>> {
    for _ in 0..MAX_FIRE_CALLS {
        let due = store.data_mut().take_due(time, FIRE_CALL_TIMERS)?;
        if due.is_empty() {
            return Ok(Ok(()));
        }
        store.data_mut().begin_timer_call(0)?;
        store.set_epoch_deadline(timeout_ticks);
        if let Err(e) = b.call_fire(&mut *store, partition, time, &due)? {
            return Ok(Err(Refused {
                error: e.into(),
                at: Some(offset),
                host: false,
            }));
        }
    }
    Ok(Err(Refused {
        error: GuestError::Internal(format!(
            "fire was called {MAX_FIRE_CALLS} times in a row at event time {time} and timers are \
             still due: the processor keeps setting timers for moments already reached"
        )),
        at: Some(offset),
        host: false,
    }))
}
