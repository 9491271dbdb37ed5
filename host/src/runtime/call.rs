//! The call path: running `process` on a batch, and how a call into a
//! plugin fails ([`CallFailure`]), with which limit or fault as data
//! ([`FailureKind`]) and, as text, what happened and what the guest printed.
//!
//! The host's own reasons to stop a call (a limit, a failed view read) are
//! raised inside the call as a [`HostTrap`], which carries its kind through
//! wasmtime's error chain; a wasm trap carries its [`Trap`] code.

use wasmtime::Trap;
use wasmtime::component::ResourceTableError;

use super::MAX_GUEST_MESSAGE_BYTES;
use super::bindings::{v0_1, v0_2, v0_3, v0_3_rc1};
use super::convert::{to_columns, to_columns_v0_3_rc1, to_event};
use super::host::{Batch, TimerCall};
use super::instance::{Bindings, Instance};
use super::timed::{self, Refused};
use super::timers::Keys;
use crate::log::Record;
use crate::store::{Snapshot, Writes};

/// Which limit or fault made a call into a plugin fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The call ran past its version's time limit (`--batch-timeout-ms`),
    /// stopped by epoch interruption: an endless loop, or too slow a plugin.
    TimeLimit,
    /// The version's memory limit (`--memory-limit-mb`): growing a linear
    /// memory or a table, or the batch's pending view writes, would pass it.
    MemoryLimit,
    /// A view write over the host's fixed caps: a key over
    /// [`MAX_KEY_BYTES`](super::MAX_KEY_BYTES), a value over
    /// [`MAX_VALUE_BYTES`](super::MAX_VALUE_BYTES), or one batch's writes
    /// over [`MAX_BATCH_WRITE_BYTES`](super::MAX_BATCH_WRITE_BYTES).
    WriteLimit,
    /// More WASI handles open at once than
    /// [`MAX_WASI_HANDLES`](super::MAX_WASI_HANDLES).
    HandleLimit,
    /// The guest trapped: a panic, `unreachable`, an out-of-bounds access, a
    /// view call in `init`.
    Trap,
    /// The guest returned its `error` from `init` or `process`.
    GuestError,
    /// The host failed, not the guest: reading the view, laying out a batch,
    /// a lost call state.
    Host,
}

impl FailureKind {
    /// Whether the call was stopped for passing one of its limits.
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            FailureKind::TimeLimit
                | FailureKind::MemoryLimit
                | FailureKind::WriteLimit
                | FailureKind::HandleLimit
        )
    }
}

/// Why a call into a plugin failed. `offset` names the event when the guest
/// reported one (an `invalid-event` error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    /// Which limit or fault it was.
    pub kind: FailureKind,
    /// The offending event's offset, when known.
    pub offset: Option<u64>,
    /// The index of the offending event's topic among the version's topics,
    /// when the guest reported one (an `invalid-event` error of contract
    /// 0.3.0, whose `event-error` has a topic).
    pub topic: Option<u32>,
    /// What happened, including what the guest printed just before.
    pub message: String,
}

impl CallFailure {
    /// A failure of the host around the call (reading the view's snapshot,
    /// say), not of the guest.
    pub fn host(message: impl Into<String>) -> Self {
        CallFailure {
            kind: FailureKind::Host,
            offset: None,
            topic: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallFailure {}

/// A reason of the host's to stop a call, raised from inside it (a host
/// import or the memory limiter) as the call's error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct HostTrap {
    kind: FailureKind,
    message: String,
}

impl HostTrap {
    pub(crate) fn new(kind: FailureKind, message: String) -> Self {
        HostTrap { kind, message }
    }
}

/// The kind of a call's error (a trap, or an error a host function returned).
pub(super) fn classify(e: &wasmtime::Error) -> FailureKind {
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => FailureKind::TimeLimit,
            _ => FailureKind::Trap,
        };
    }
    if let Some(host) = e.downcast_ref::<HostTrap>() {
        return host.kind;
    }
    if matches!(
        e.downcast_ref::<ResourceTableError>(),
        Some(ResourceTableError::Full)
    ) {
        return FailureKind::HandleLimit;
    }
    FailureKind::Trap
}

/// A guest's `error`, whatever the contract version (the same type in every
/// version but for the topic of 0.3.0's `event-error`).
pub(super) enum GuestError {
    InvalidConfig(String),
    InvalidEvent {
        topic: Option<u32>,
        offset: u64,
        message: String,
    },
    Internal(String),
}

/// Reads a contract version's `error` as a [`GuestError`].
macro_rules! guest_error_from {
    ($v:ident) => {
        guest_error_from!($v, _ev => None);
    };
    ($v:ident, $ev:ident => $topic:expr) => {
        impl From<$v::GuestError> for GuestError {
            fn from(e: $v::GuestError) -> Self {
                match e {
                    $v::GuestError::InvalidConfig(m) => GuestError::InvalidConfig(m),
                    $v::GuestError::InvalidEvent($ev) => GuestError::InvalidEvent {
                        topic: $topic,
                        offset: $ev.offset,
                        message: $ev.message,
                    },
                    $v::GuestError::Internal(m) => GuestError::Internal(m),
                }
            }
        }
    };
}

guest_error_from!(v0_1);
guest_error_from!(v0_2);
guest_error_from!(v0_3_rc1);
guest_error_from!(v0_3, ev => Some(ev.topic));

pub(super) fn describe_guest_error(e: &GuestError) -> String {
    match e {
        // Plugins often start their message with the same words: say them once.
        GuestError::InvalidConfig(m) => {
            let m = cut(m);
            let m = m
                .strip_prefix("invalid configuration: ")
                .or_else(|| m.strip_prefix("invalid config: "))
                .unwrap_or(&m);
            format!("invalid configuration: {m}")
        }
        GuestError::InvalidEvent {
            offset, message, ..
        } => {
            format!("invalid event at offset {offset}: {}", cut(message))
        }
        GuestError::Internal(m) => cut(m).into_owned(),
    }
}

/// `s` cut to [`MAX_GUEST_MESSAGE_BYTES`] (at a character boundary), saying
/// how long it was.
pub(super) fn cut(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_GUEST_MESSAGE_BYTES {
        return s.into();
    }
    let mut end = MAX_GUEST_MESSAGE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (cut; {} bytes in all)", &s[..end], s.len()).into()
}

impl Instance {
    /// Runs `process` on `events` (one partition, offset order) against the
    /// view as of `snapshot`, and returns the batch's writes, for the caller
    /// to commit with the batch's offsets. They are held in host memory until
    /// then, counted against the memory limit: a batch whose writes would
    /// exceed it fails. Every event is of the version's first topic; see
    /// [`process_topics`](Self::process_topics).
    pub fn process(
        &mut self,
        snapshot: Snapshot,
        events: Vec<Record>,
    ) -> Result<Writes, CallFailure> {
        self.process_topics(snapshot, events, &[])
    }

    /// [`process`](Self::process) of events of several topics: `topics[i]`
    /// is the index of the topic of `events[i]` (0 past the end of
    /// `topics`), which contract 0.3.0 passes to the plugin. Under 0.3.0 the
    /// batch may become several calls of `process` and `fire`, as timers fall
    /// due (`super::timed`); the writes of all of them are returned together.
    pub fn process_topics(
        &mut self,
        snapshot: Snapshot,
        events: Vec<Record>,
        topics: &[u32],
    ) -> Result<Writes, CallFailure> {
        let partition = events.first().map(|r| r.partition);
        let timers = match (&self.bindings, events.first()) {
            (Some(Bindings::V0_3(_)), Some(first)) => {
                let floor = self.store.data_mut().floors.remove(&first.partition);
                Some(TimerCall::new(Keys::new(first.partition), floor))
            }
            _ => None,
        };
        self.store
            .data_mut()
            .begin_call(Some(Batch::new(snapshot, timers)));
        self.store.set_epoch_deadline(self.timeout_ticks);
        let Some(bindings) = self.bindings.as_ref() else {
            return Err(CallFailure::host("the instance was not initialized"));
        };
        let result = match bindings {
            Bindings::V0_1(b) => {
                let events: Vec<v0_1::Event> = events.into_iter().map(to_event).collect();
                b.call_process(&mut self.store, &events)
                    .map(|r| r.map_err(Refused::guest))
            }
            Bindings::V0_2(b) => match to_columns(events) {
                Ok(batch) => b
                    .call_process(&mut self.store, &batch)
                    .map(|r| r.map_err(Refused::guest)),
                Err(message) => Ok(Err(Refused::host(message))),
            },
            Bindings::V0_3Rc1(b) => match to_columns_v0_3_rc1(events) {
                Ok(batch) => b
                    .call_process(&mut self.store, &batch)
                    .map(|r| r.map_err(Refused::guest)),
                Err(message) => Ok(Err(Refused::host(message))),
            },
            Bindings::V0_3(b) => {
                timed::run(b, &mut self.store, &events, topics, self.timeout_ticks)
            }
        };
        let batch = self.store.data_mut().end_call();
        let printed = self.output.take();
        if !printed.is_empty() {
            tracing::info!(plugin = %self.store.data().label, "plugin output: {}", printed.trim_end());
        }
        match (result, batch) {
            (Ok(Ok(())), Some(mut batch)) => {
                // The floor holds for the shard as this batch leaves it,
                // which the caller commits before the partition's next batch.
                if let (Some(timers), Some(first)) = (batch.timers.take(), partition)
                    && let Some(floor) = timers.floor
                {
                    self.store.data_mut().floors.insert(first, floor);
                }
                Ok(batch.writes.into_writes())
            }
            (Ok(Ok(())), None) => Err(CallFailure::host("internal error: batch state lost")),
            (Ok(Err(refused)), _) => {
                let (offset, topic) = match &refused.error {
                    GuestError::InvalidEvent { offset, topic, .. } => (Some(*offset), *topic),
                    _ => (refused.at, None),
                };
                // A batch no guest could address fails as the guest's error
                // would, but is the host's: the kind says so.
                let kind = if refused.host {
                    FailureKind::Host
                } else {
                    FailureKind::GuestError
                };
                let during = if refused.at.is_some() {
                    " while timers fired"
                } else {
                    ""
                };
                Err(CallFailure {
                    kind,
                    offset,
                    topic,
                    message: format!(
                        "returned an error{during}: {}",
                        describe_guest_error(&refused.error)
                    ),
                })
            }
            (Err(e), _) => Err(CallFailure {
                kind: classify(&e),
                offset: None,
                topic: None,
                message: self.describe_trap(&e, &printed),
            }),
        }
    }

    /// The failure of a call that trapped with `e` while doing `what`.
    pub(super) fn failure(
        &mut self,
        what: &str,
        offset: Option<u64>,
        e: &wasmtime::Error,
    ) -> CallFailure {
        let printed = self.output.take();
        CallFailure {
            kind: classify(e),
            offset,
            topic: None,
            message: format!("{what}: {}", self.describe_trap(e, &printed)),
        }
    }

    fn describe_trap(&self, e: &wasmtime::Error, printed: &str) -> String {
        let mut message = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!(
                "exceeded the time limit of {} ms for one call (an endless loop?)",
                self.timeout_ms
            ),
            Some(trap) => format!("trapped: {trap}"),
            // Not a wasm trap code: a host-side limit (memory growth refused,
            // an oversized view write). The root cause says which; the outer
            // layers are wasmtime's backtrace framing.
            None => format!("trapped: {}", first_line(&e.root_cause().to_string())),
        };
        // The guest's own last words (a Rust panic message, a Python
        // traceback) are the most useful part for the plugin author.
        let printed = printed.trim();
        if !printed.is_empty() {
            let tail: String = printed
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ");
            message.push_str(&format!("; plugin output: {tail}"));
        }
        message
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
