//! The `timers` interface of contract 0.3.0: a processor sets, moves,
//! cancels and reads the timers of the batch's partition.
//!
//! A timer is two host rows of the shard (`super::super::timers`), written
//! through the batch's pending writes like any view write, so a timer set in
//! a batch is committed with it, taken back with it when the call fails, and
//! counted against the same memory limit. Each `set` is also noted with the
//! event it counts from, which is how the host finds whether the timer is
//! due within the same batch (`super::super::timed`).

use super::super::MAX_KEY_BYTES;
use super::super::bindings::v0_3;
use super::super::call::{FailureKind, HostTrap};
use super::super::timers::{decode_time, encode_time};
use super::{HostState, TimerCall};

/// The longest timer name: a view key, less the room its host rows take
/// before it.
pub(in super::super) const MAX_TIMER_NAME_BYTES: usize = MAX_KEY_BYTES - 64;

impl HostState {
    fn timer_call(&mut self) -> wasmtime::Result<&mut TimerCall> {
        self.batch()?.timers.as_mut().ok_or_else(|| {
            wasmtime::format_err!("timers are available only while processing events, not in init")
        })
    }

    /// The moment the timer named `name` is set for, as the batch sees it.
    pub(in super::super) fn timer_moment(&mut self, name: &[u8]) -> wasmtime::Result<Option<i64>> {
        let key = self.timer_call()?.keys.timer(name);
        let Some(value) = self.view_get(key)? else {
            return Ok(None);
        };
        decode_time(&value).map(Some).ok_or_else(|| {
            HostTrap::new(
                FailureKind::Host,
                format!(
                    "the shard's row of timer \"{}\" holds {} bytes, not a moment",
                    name.escape_ascii(),
                    value.len()
                ),
            )
            .into()
        })
    }

    /// Removes the timer named `name` (its two rows), if set.
    pub(in super::super) fn remove_timer(&mut self, name: &[u8]) -> wasmtime::Result<Option<i64>> {
        let Some(at) = self.timer_moment(name)? else {
            return Ok(None);
        };
        let keys = self.timer_call()?.keys.clone();
        self.pend(keys.due(at, name), None)?;
        self.pend(keys.timer(name), None)?;
        Ok(Some(at))
    }

    fn timer_set(&mut self, event: u32, name: Vec<u8>, at: i64) -> wasmtime::Result<()> {
        if name.len() > MAX_TIMER_NAME_BYTES {
            return Err(HostTrap::new(
                FailureKind::WriteLimit,
                format!(
                    "timer name of {} bytes exceeds the limit of {MAX_TIMER_NAME_BYTES}",
                    name.len()
                ),
            )
            .into());
        }
        let events = self.timer_call()?.events;
        if events > 0 && event >= events {
            return Err(HostTrap::new(
                FailureKind::Trap,
                format!(
                    "timers.set named event {event} of a batch of {events} events: pass the \
                     index of the event being processed"
                ),
            )
            .into());
        }
        self.remove_timer(&name)?;
        let keys = self.timer_call()?.keys.clone();
        let due = keys.due(at, &name);
        let call = self.timer_call()?;
        if call.floor.as_ref().is_some_and(|floor| due < *floor) {
            call.floor = Some(due.clone());
        }
        self.pend(due, Some(Vec::new()))?;
        self.pend(keys.timer(&name), Some(encode_time(at).to_vec()))?;
        // While timers fire, `events` is 0 and the timer counts from the
        // event the firing follows, which is where the host checks it.
        let call = self.timer_call()?;
        let event = if call.events == 0 { 0 } else { event };
        call.sets.push((event, at));
        Ok(())
    }
}

impl v0_3::kappa::processor::timers::Host for HostState {
    fn set(&mut self, event: u32, key: Vec<u8>, at: i64) -> wasmtime::Result<()> {
        self.timer_set(event, key, at)
    }

    fn cancel(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        self.remove_timer(&key).map(|_| ())
    }

    fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<i64>> {
        self.timer_moment(&key)
    }
}

/// What `super::super::timed` reads and writes of the timers between calls.
impl HostState {
    /// The keys of the batch's host rows.
    fn keys(&mut self) -> wasmtime::Result<super::super::timers::Keys> {
        Ok(self.timer_call()?.keys.clone())
    }

    /// The partition's event time before the batch.
    pub(in super::super) fn event_time(&mut self) -> wasmtime::Result<i64> {
        let key = self.keys()?.time();
        Ok(self
            .view_get(key)?
            .and_then(|v| decode_time(&v))
            .unwrap_or(super::super::timers::NO_TIME))
    }

    /// Records the partition's event time `time` with the batch.
    pub(in super::super) fn set_event_time(&mut self, time: i64) -> wasmtime::Result<()> {
        let key = self.keys()?.time();
        self.pend(key, Some(encode_time(time).to_vec()))
    }

    /// The moment of the partition's next timer, as the batch sees it.
    pub(in super::super) fn next_due(&mut self) -> wasmtime::Result<Option<i64>> {
        let keys = self.keys()?;
        let (first_key, end) = keys.due_range();
        let start = self.timer_call()?.floor.clone().unwrap_or(first_key);
        let first = self.view_range(start, Some(end.clone()), 1)?;
        let next = first.into_iter().next().map(|(key, _)| key);
        let at = next
            .as_ref()
            .and_then(|key| keys.parse_due(key).map(|(at, _)| at));
        self.timer_call()?.floor = Some(next.unwrap_or(end));
        Ok(at)
    }

    /// Up to `limit` of the timers due at event time `time`, in firing order,
    /// removed from the shard.
    pub(in super::super) fn take_due(
        &mut self,
        time: i64,
        limit: u32,
    ) -> wasmtime::Result<Vec<v0_3::Timer>> {
        let keys = self.keys()?;
        let (first_key, _) = keys.due_range();
        let start = self.timer_call()?.floor.clone().unwrap_or(first_key);
        // The due rows of moments up to `time`: before the first key of the
        // moment after it (none after i64::MAX).
        let end = match time.checked_add(1) {
            Some(next) => keys.due(next, b""),
            None => keys.due_range().1,
        };
        let rows = self.view_range(start, Some(end), limit)?;
        let mut due = Vec::with_capacity(rows.len());
        for (key, _) in rows {
            if let Some((at, name)) = keys.parse_due(&key) {
                due.push(v0_3::Timer {
                    key: name.to_vec(),
                    at,
                });
            }
        }
        for timer in &due {
            self.pend(keys.due(timer.at, &timer.key), None)?;
            self.pend(keys.timer(&timer.key), None)?;
        }
        if let Some(last) = due.last() {
            let mut after = keys.due(last.at, &last.key);
            after.push(0);
            self.timer_call()?.floor = Some(after);
        }
        Ok(due)
    }

    /// Starts a call into the batch: `process` of `events` events, or (0)
    /// `fire`; no timers set by it yet.
    pub(in super::super) fn begin_timer_call(&mut self, events: u32) -> wasmtime::Result<()> {
        let call = self.timer_call()?;
        call.events = events;
        call.sets.clear();
        Ok(())
    }

    /// The event (within the call) and moment of each timer the call set.
    pub(in super::super) fn timers_set(&mut self) -> wasmtime::Result<Vec<(u32, i64)>> {
        Ok(std::mem::take(&mut self.timer_call()?.sets))
    }

    /// The timer floor the batch started from.
    pub(in super::super) fn timer_floor(&mut self) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.timer_call()?.floor.clone())
    }

    /// Takes back everything the batch's calls did so far, to process it
    /// again from its first event: no pending writes, the timer floor it
    /// started from (`floor`).
    pub(in super::super) fn restart_batch(
        &mut self,
        floor: Option<Vec<u8>>,
    ) -> wasmtime::Result<()> {
        let batch = self.batch()?;
        batch.writes = super::super::budget::PendingWrites::new();
        if let Some(timers) = batch.timers.as_mut() {
            timers.floor = floor;
            timers.sets.clear();
        }
        self.memory.pending = 0;
        Ok(())
    }

    /// Starts keeping what takes back the writes of the next call.
    pub(in super::super) fn begin_journal(&mut self) -> wasmtime::Result<()> {
        self.batch()?.writes.begin_journal();
        Ok(())
    }

    /// Keeps the writes of the call (`keep`), or takes them back.
    pub(in super::super) fn end_journal(&mut self, keep: bool) -> wasmtime::Result<()> {
        let writes = &mut self.batch()?.writes;
        if keep {
            writes.end_journal();
        } else {
            writes.rollback();
        }
        self.memory.pending = self.batch()?.writes.cost();
        Ok(())
    }
}
