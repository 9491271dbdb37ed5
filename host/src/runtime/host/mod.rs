//! What a plugin instance is given by the host: its per-instance state
//! ([`HostState`]: WASI context, memory limit, the batch in progress) and
//! the imports of the contract, one file per interface: [`view`] (with
//! the range reads of 0.3.0-rc.1 in [`range`]), [`timers`] (0.3.0) and
//! [`logging`] (`types` has no functions; WASI is in `super::sandbox`).
//!
//! Every contract version so far has the same `logging` interface and the
//! same `get`, `put` and `delete` in `view` (0.3.0-rc.1 adds `range`), so
//! each file implements one set of methods on [`HostState`] and a small
//! macro binds them to each version's generated `Host` trait.

mod logging;
mod range;
mod timers;
mod view;

use std::collections::HashMap;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{v0_1, v0_2, v0_3, v0_3_rc1};
use super::budget::{InstanceMemory, PendingWrites};
use super::sandbox::{self, CapturedOutput};
use super::timers::Keys;
use super::{LOG_BUDGET_PER_CALL, MAX_WASI_HANDLES};
use crate::registry::Settings;
use crate::store::Snapshot;

/// The view state of the call in progress.
pub(super) struct Batch {
    pub(super) snapshot: Snapshot,
    pub(super) writes: PendingWrites,
    /// Under contract 0.3.0: the partition's timers.
    pub(super) timers: Option<TimerCall>,
}

impl Batch {
    /// A batch reading `snapshot`, with no writes yet.
    pub(super) fn new(snapshot: Snapshot, timers: Option<TimerCall>) -> Self {
        Batch {
            snapshot,
            writes: PendingWrites::new(),
            timers,
        }
    }
}

/// What the host tracks of the timers while it runs a call into a batch of
/// contract 0.3.0 (see `super::timed`).
pub(super) struct TimerCall {
    /// The keys of the partition's host rows.
    pub(super) keys: Keys,
    /// Events of the `process` call in progress; 0 while timers fire, when
    /// the event `timers.set` names is ignored.
    pub(super) events: u32,
    /// The event (within the call) and moment of each timer set by the
    /// call in progress.
    pub(super) sets: Vec<(u32, i64)>,
    /// A firing-order key below which the partition has no timer: the
    /// first found by the last read of the next timer, past the timers
    /// fired, lowered by every timer set below it. Reading from here rather
    /// than from the first key steps over the deletions of the timers fired
    /// or moved before (held in the view's write buffer until it is written)
    /// once, not at every read.
    pub(super) floor: Option<Vec<u8>>,
}

impl TimerCall {
    /// The timers of the partition whose host rows `keys` name, for a new
    /// batch, with the floor its previous batch left (`floor`).
    pub(super) fn new(keys: Keys, floor: Option<Vec<u8>>) -> Self {
        TimerCall {
            keys,
            events: 0,
            sets: Vec::new(),
            floor,
        }
    }
}

/// Per-instance host state: WASI, limits, and the batch in progress.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) memory: InstanceMemory,
    pub(super) batch: Option<Batch>,
    pub(super) label: String,
    pub(super) log_budget: u32,
    /// Under 0.3.0, the timer floor (see [`TimerCall::floor`]) each
    /// partition's last committed batch left, by partition: kept by the
    /// instance from batch to batch, since only it processes the partition
    /// until it is dropped.
    pub(super) floors: HashMap<u32, Vec<u8>>,
}

impl HostState {
    pub(super) fn new(output: &CapturedOutput, label: &str, settings: &Settings) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_WASI_HANDLES);
        HostState {
            wasi: sandbox::wasi_ctx(output),
            table,
            memory: InstanceMemory::new(
                usize::try_from(settings.memory_limit_bytes).unwrap_or(usize::MAX),
            ),
            batch: None,
            label: label.to_owned(),
            log_budget: LOG_BUDGET_PER_CALL,
            floors: HashMap::new(),
        }
    }

    /// Starts a call: no pending writes, a fresh log budget, and for
    /// `process` the view as of `batch`'s snapshot.
    pub(super) fn begin_call(&mut self, batch: Option<Batch>) {
        self.batch = batch;
        self.memory.pending = 0;
        self.log_budget = LOG_BUDGET_PER_CALL;
    }

    /// Ends a call, returning its batch (with the pending writes).
    pub(super) fn end_call(&mut self) -> Option<Batch> {
        self.memory.pending = 0;
        self.batch.take()
    }

    fn batch(&mut self) -> wasmtime::Result<&mut Batch> {
        self.batch.as_mut().ok_or_else(|| {
            wasmtime::format_err!("the view is available only while processing events, not in init")
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl v0_1::kappa::processor::types::Host for HostState {}
impl v0_2::kappa::processor::types::Host for HostState {}
impl v0_3_rc1::kappa::processor::types::Host for HostState {}
impl v0_3::kappa::processor::types::Host for HostState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_state_caps_wasi_handles_and_counts_from_zero() {
        let settings = Settings {
            memory_limit_bytes: 64 << 20,
            ..Settings::default()
        };
        let state = HostState::new(&CapturedOutput::new(16), "p@1.0.0", &settings);
        assert_eq!(state.table.max_capacity(), MAX_WASI_HANDLES);
        assert_eq!(state.memory.limit, 64 << 20);
        assert_eq!(state.memory.allowed_for_writes(), 64 << 20);
    }
}
