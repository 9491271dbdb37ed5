//! {{name}}: a kappa processor plugin that counts the events of each key.
//!
//! For every event it adds one to the count of the event's key: the view maps
//! the key bytes (or `(no key)` for events without a key) to the count, as
//! ASCII decimal. Replace the body of `process` with your own logic.

// The generated export of `process` takes the flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

// Generates the Rust side of the contract in `wit/processor.wit`: the `Guest`
// trait to implement (`init`, `process`), the imported `view` and `logging`
// interfaces, and the `EventBatch` and `Error` types. The file is the frozen
// contract `kappa:processor@0.2.0`; do not edit it.
wit_bindgen::generate!({
    path: "wit",
    world: "processor",
});

// Reads the batch's columns event by event (src/columns.rs): `columns!`
// borrows the columns of an `EventBatch`. Public, so that the parts this
// processor does not use yet draw no warnings.
pub mod columns;
use columns::Columns;

use kappa::processor::logging::{self, Level};
use kappa::processor::view;

struct Component;

impl Guest for Component {
    /// Called once per instance, before any batch, with the configuration
    /// string given at deploy (`kappa deploy --config`; empty when none).
    /// Instances come and go (a restart, a new worker), so anything that must
    /// survive belongs in the view, not in memory.
    fn init(config: String) -> Result<(), Error> {
        // This processor takes no configuration: refuse one rather than
        // silently ignore what the operator meant to set. The deploy fails
        // with this message.
        if !config.trim().is_empty() {
            return Err(Error::InvalidConfig(
                "{{name}} takes no configuration".into(),
            ));
        }
        logging::log(Level::Info, "{{name}} ready");
        Ok(())
    }

    /// Called with a batch of events of one partition, in offset order, in
    /// columns: `crate::columns!(batch).events()` yields each event with its
    /// key and value borrowed from the batch (no copy). All the writes of a
    /// batch reach the view together with the batch's offsets, or none do:
    /// after an error or a trap nothing of the batch is kept and the version
    /// stops there, to be fixed and deployed as a new version.
    ///
    /// Replays must rebuild the same view, so the outcome may depend only on
    /// the events and the view: no wall clock (use `event.timestamp`), no
    /// randomness, no files, no network.
    fn process(batch: EventBatch) -> Result<(), Error> {
        let columns: Columns = crate::columns!(batch);
        // Columns that disagree are a host bug, never the event's fault.
        let events = columns
            .events()
            .map_err(|e| Error::Internal(e.to_string()))?;
        for event in events {
            let event = event.map_err(|e| Error::Internal(e.to_string()))?;
            let key = event.key.unwrap_or(b"(no key)");
            // A write of this batch is visible to the reads that follow it,
            // so a key seen twice in one batch counts twice.
            let count = match view::get(key) {
                None => 0,
                // A payload the plugin cannot handle is refused with
                // `Error::InvalidEvent(EventError { offset: event.offset, .. })`;
                // a stored count it cannot read is not the event's fault,
                // hence `Internal`.
                Some(bytes) => parse_count(&bytes)
                    .ok_or_else(|| Error::Internal("a stored count is not a number".into()))?,
            };
            view::put(key, (count + 1).to_string().as_bytes());
        }
        // Headers are `batch.headers`: (event index, name, value), by event.
        Ok(())
    }
}

/// Reads a count written by `process`.
fn parse_count(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

// Makes `Component` the implementation of the component's exports.
export!(Component);
