//! The `view` interface: the plugin's reads and writes of its own view.
//!
//! Reads see the batch's own pending writes first, then the snapshot the
//! batch started from. Writes are buffered in the batch ([`super::Batch`])
//! within the key, value and per-batch caps and the instance's memory limit;
//! a write over any of them traps the call with a [`HostTrap`] that says
//! which, as does a failed read of the snapshot. The range reads of
//! 0.3.0-rc.1 are in `super::range`.
//!
//! Under 0.3.0 the shard also holds the host's rows (timers, event time,
//! from [`RESERVED`] on): the processor's reads skip them and its writes of
//! them fail the call, so that a processor can neither see nor forge them.

use super::super::bindings::{v0_1, v0_2, v0_3, v0_3_rc1};
use super::super::budget::{ENTRY_OVERHEAD, mib};
use super::super::call::{FailureKind, HostTrap};
use super::super::timers::{RESERVED, RESERVED_END};
use super::super::{MAX_BATCH_WRITE_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES};
use super::HostState;

impl HostState {
    pub(super) fn view_get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        let batch = self.batch()?;
        if let Some(pending) = batch.writes.get(&key) {
            return Ok(pending.clone());
        }
        batch.snapshot.get(&key).map_err(|e| {
            HostTrap::new(FailureKind::Host, format!("reading the view failed: {e}")).into()
        })
    }

    fn view_put(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        check_key(&key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(HostTrap::new(
                FailureKind::WriteLimit,
                format!(
                    "view value of {} bytes exceeds the limit of {MAX_VALUE_BYTES}",
                    value.len()
                ),
            )
            .into());
        }
        self.pend(key, Some(value))
    }

    fn view_delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        check_key(&key)?;
        self.pend(key, None)
    }

    /// Adds a write to the batch's pending writes, within the per-batch cap
    /// and the memory limit.
    pub(super) fn pend(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> wasmtime::Result<()> {
        let (limit, allowed) = (self.memory.limit, self.memory.allowed_for_writes());
        let instance = self.memory.linear + self.memory.tables;
        let batch = self.batch()?;
        if let Err(over) = batch.writes.set(key, value, allowed) {
            return Err(HostTrap::new(
                FailureKind::MemoryLimit,
                format!(
                    "exceeded its memory limit of {} (raise it with --memory-limit-mb): the \
                     batch's pending view writes would take {} of host memory ({} keys pending, \
                     each counted at its key and value bytes plus {ENTRY_OVERHEAD}) beside {} of \
                     linear memory and tables",
                    mib(limit),
                    mib(over.cost),
                    over.entries,
                    mib(instance)
                ),
            )
            .into());
        }
        let (cost, data_bytes) = (batch.writes.cost(), batch.writes.data_bytes());
        if data_bytes > MAX_BATCH_WRITE_BYTES {
            return Err(HostTrap::new(
                FailureKind::WriteLimit,
                format!("one batch wrote over {MAX_BATCH_WRITE_BYTES} bytes to the view"),
            )
            .into());
        }
        self.memory.pending = cost;
        Ok(())
    }
}

fn check_key(key: &[u8]) -> wasmtime::Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(HostTrap::new(
            FailureKind::WriteLimit,
            format!(
                "view key of {} bytes exceeds the limit of {MAX_KEY_BYTES}",
                key.len()
            ),
        )
        .into());
    }
    Ok(())
}

/// Binds the methods above to a contract version's `view::Host`, with the
/// functions the version adds, if any.
macro_rules! view_host {
    ($v:ident $(, $($added:tt)+)?) => {
        impl $v::kappa::processor::view::Host for HostState {
            fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
                self.view_get(key)
            }

            fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
                self.view_put(key, value)
            }

            fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
                self.view_delete(key)
            }

            $($($added)+)?
        }
    };
}

view_host!(v0_1);
view_host!(v0_2);
view_host!(
    v0_3_rc1,
    fn range(
        &mut self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: u32,
    ) -> wasmtime::Result<Vec<v0_3_rc1::Row>> {
        let rows = self.view_range(start, end, limit)?;
        Ok(rows
            .into_iter()
            .map(|(key, value)| v0_3_rc1::Row { key, value })
            .collect())
    }
);

/// Refuses a processor's write of one of the host's rows.
fn refuse_reserved(key: &[u8]) -> wasmtime::Result<()> {
    if key.starts_with(RESERVED) {
        return Err(HostTrap::new(
            FailureKind::Trap,
            format!(
                "wrote the view key \"{}\": the keys from 0xff 0xff \"kappa/\" on are the \
                 host's (timers, event time); choose keys outside them",
                key[..key.len().min(64)].escape_ascii()
            ),
        )
        .into());
    }
    Ok(())
}

impl v0_3::kappa::processor::view::Host for HostState {
    fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        if key.starts_with(RESERVED) {
            return Ok(None);
        }
        self.view_get(key)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        refuse_reserved(&key)?;
        self.view_put(key, value)
    }

    fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        refuse_reserved(&key)?;
        self.view_delete(key)
    }

    fn range(
        &mut self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: u32,
    ) -> wasmtime::Result<Vec<v0_3::Row>> {
        // The range less the host's rows: the part before them, then the
        // part after them (keys from 0xff 0xff "kappa0" on are the
        // processor's again).
        let below = |bound: &[u8]| end.as_deref().is_none_or(|end| bound < end);
        let mut rows = Vec::new();
        if start.as_slice() < RESERVED {
            let first_end = match end.as_deref() {
                Some(end) if end <= RESERVED => end.to_vec(),
                _ => RESERVED.to_vec(),
            };
            rows = self.view_range(start.clone(), Some(first_end), limit)?;
        }
        let left = limit.saturating_sub(u32::try_from(rows.len()).unwrap_or(u32::MAX));
        if left > 0 && below(RESERVED_END) {
            let second_start = start.max(RESERVED_END.to_vec());
            rows.extend(self.view_range(second_start, end, left)?);
        }
        Ok(rows
            .into_iter()
            .map(|(key, value)| v0_3::Row { key, value })
            .collect())
    }
}
