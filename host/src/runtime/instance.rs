//! One live instance of a plugin: its store (with the memory limiter and
//! the epoch deadline that is the time limit), its exports for the contract
//! version it speaks, and what it prints; created and initialized by
//! [`Runtime::instantiate`]. The calls on it are in [`super::call`].

use wasmtime::Store;

use super::EPOCH_TICK;
use super::bindings::{v0_1, v0_2, v0_3, v0_3_rc1};
use super::call::{CallFailure, FailureKind, GuestError, describe_guest_error};
use super::engine::{Plugin, Runtime};
use super::host::HostState;
use super::sandbox::CapturedOutput;
use super::validate::Pre;
use crate::registry::Settings;

/// The exports of one instance, for the contract version it speaks.
pub(super) enum Bindings {
    V0_1(v0_1::Processor),
    V0_2(v0_2::Processor),
    V0_3Rc1(v0_3_rc1::Processor),
    V0_3(v0_3::Processor),
}

/// One live instance of a plugin. Not reusable after a failure: the worker
/// drops it and creates a fresh one if it needs to call the plugin again.
pub struct Instance {
    pub(super) store: Store<HostState>,
    pub(super) bindings: Option<Bindings>,
    pub(super) output: CapturedOutput,
    pub(super) timeout_ticks: u64,
    pub(super) timeout_ms: u64,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("label", &self.store.data().label)
            .finish()
    }
}

impl Runtime {
    /// Creates an instance of `plugin` for version `label` and runs its
    /// `init` with the deploy configuration.
    pub fn instantiate(
        &self,
        plugin: &Plugin,
        label: &str,
        settings: &Settings,
    ) -> Result<Instance, CallFailure> {
        let output = CapturedOutput::new(4096);
        let state = HostState::new(&output, label, settings);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_trap();
        let timeout_ticks = (settings.batch_timeout_ms / crate::clock::millis(EPOCH_TICK)).max(1);
        let mut instance = Instance {
            store,
            bindings: None,
            output,
            timeout_ticks,
            timeout_ms: settings.batch_timeout_ms,
        };
        instance.store.set_epoch_deadline(timeout_ticks);
        let bindings = match &plugin.pre {
            Pre::V0_1(pre) => pre.instantiate(&mut instance.store).map(Bindings::V0_1),
            Pre::V0_2(pre) => pre.instantiate(&mut instance.store).map(Bindings::V0_2),
            Pre::V0_3Rc1(pre) => pre.instantiate(&mut instance.store).map(Bindings::V0_3Rc1),
            Pre::V0_3(pre) => pre.instantiate(&mut instance.store).map(Bindings::V0_3),
        }
        .map_err(|e| instance.failure("failed to instantiate", None, &e))?;
        instance.store.set_epoch_deadline(timeout_ticks);
        instance.store.data_mut().begin_call(None);
        let init = match &bindings {
            Bindings::V0_1(b) => b
                .call_init(&mut instance.store, &settings.config)
                .map(|r| r.map_err(GuestError::from)),
            Bindings::V0_2(b) => b
                .call_init(&mut instance.store, &settings.config)
                .map(|r| r.map_err(GuestError::from)),
            Bindings::V0_3Rc1(b) => b
                .call_init(&mut instance.store, &settings.config)
                .map(|r| r.map_err(GuestError::from)),
            Bindings::V0_3(b) => b
                .call_init(&mut instance.store, &settings.config)
                .map(|r| r.map_err(GuestError::from)),
        };
        match init {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(CallFailure {
                    kind: FailureKind::GuestError,
                    offset: None,
                    topic: None,
                    message: format!("init refused: {}", describe_guest_error(&e)),
                });
            }
            Err(e) => return Err(instance.failure("trapped in init", None, &e)),
        }
        instance.bindings = Some(bindings);
        Ok(instance)
    }
}
