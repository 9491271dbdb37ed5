//! The plugin runtime: turns component bytes into a validated, compiled
//! plugin, and runs instances of it over batches of events.
//!
//! - Validation happens once, at deploy, and says exactly what is wrong: not
//!   WebAssembly, a core module instead of a component, a contract version
//!   this host does not speak, an import the host does not grant, a missing or
//!   mistyped export ([`validate`]).
//! - Compiled code is cached on disk by digest, so a restart loads machine code
//!   instead of running Cranelift again ([`cache`]).
//! - Isolation: each instance has its own store with a memory limit
//!   ([`budget::InstanceMemory`]) and a time limit per call (epoch
//!   interruption, ticked by one background thread), so a trap, an endless
//!   loop or a memory blow-up fails the call, which fails that version only
//!   ([`instance`], [`call`]; [`CallFailure::kind`] says which limit).
//! - A batch's view writes are buffered in the store's state (so the guest
//!   reads its own writes) and handed back to the caller, which commits them
//!   with the batch's offsets. They count against the memory limit together
//!   with the linear memories and tables ([`budget`]), as do the rows of a
//!   range read of contract 0.3.0-rc.1 while the host holds them.
//! - Everything else a plugin can make the host hold is capped: its log
//!   messages and error strings ([`MAX_GUEST_MESSAGE_BYTES`]), its printed
//!   output (the last 4 KiB), its WASI handles ([`MAX_WASI_HANDLES`]).
//! - Every contract version ([`Contract`]) is linked; a plugin is run through
//!   the version its imports and exports type-check against, and the rest of
//!   the host never sees the difference.
//!
//! Files, by concept: [`engine`] (the engine, linker and epoch ticker),
//! [`cache`] (compiled code on disk), [`validate`] (what a component must be),
//! [`instance`] (instantiating and `init`), [`call`] (`process` and how a call
//! fails), `host` (the imports a plugin is given: one file per interface, with
//! WASI in `sandbox`), [`convert`] (events into the contract's shapes),
//! [`bindings`] (all `bindgen!` output) and [`budget`] (memory accounting).

pub mod bindings;
pub mod budget;
pub mod cache;
pub mod call;
pub mod convert;
pub mod engine;
mod host;
pub mod instance;
mod sandbox;
mod timed;
pub mod timers;
pub mod validate;

use std::time::Duration;

pub use call::{CallFailure, FailureKind};
pub use engine::{Plugin, Runtime};
pub use instance::Instance;
pub use validate::Contract;

/// The contract versions this host speaks, the default ([`DEFAULT_CONTRACT`])
/// first, newest last: [`Contract::ALL`] as version strings.
pub const SUPPORTED_CONTRACTS: &[&str] = &Contract::VERSIONS;
/// The contract `kappa plugin new` writes (one record per event, the simplest
/// to program), and the one a component that names none is checked against
/// first: [`Contract::DEFAULT`] as a version string.
pub const DEFAULT_CONTRACT: &str = Contract::DEFAULT.version();
/// The WIT package of the contract.
pub const CONTRACT_PACKAGE: &str = "kappa:processor";
/// How often the epoch advances; the granularity of batch time limits.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Largest key a plugin may write.
pub const MAX_KEY_BYTES: usize = 64 << 10;
/// Largest single value a plugin may write.
pub const MAX_VALUE_BYTES: usize = 16 << 20;
/// Largest total of writes one batch may buffer before the call is stopped.
pub const MAX_BATCH_WRITE_BYTES: usize = 256 << 20;
/// Guest log messages kept per batch; the rest are counted, not logged.
const LOG_BUDGET_PER_CALL: u32 = 100;
/// Longest guest string the host keeps: a log message, or the message of an
/// error the guest returns (which a failure or a dead letter records); the
/// rest is cut off.
pub const MAX_GUEST_MESSAGE_BYTES: usize = 4096;
/// Most WASI resources (streams, pollables) one instance may hold open at
/// once; a plugin that opens more without closing them traps.
pub const MAX_WASI_HANDLES: usize = 10_000;

#[cfg(test)]
mod payments_v3_tests;
#[cfg(test)]
mod range_tests;
#[cfg(test)]
mod shard_tests;
#[cfg(test)]
mod timer_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_contract_is_listed_first() {
        assert_eq!(SUPPORTED_CONTRACTS.first(), Some(&DEFAULT_CONTRACT));
        assert_eq!(Contract::ALL.first(), Some(&Contract::DEFAULT));
    }
}
