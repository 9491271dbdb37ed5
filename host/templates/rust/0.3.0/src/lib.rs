//! {{name}}: a kappa processor plugin that counts the events of each key and
//! forgets a key that has been quiet for an hour of event time.
//!
//! For every event it adds one to the count of the event's key: the view maps
//! the key bytes to the count, as ASCII decimal. Events without a key are
//! counted per partition, under `(no key)/<partition>`. Each event also
//! (re)sets a timer named by the key for an hour after the event's
//! timestamp; when it fires, `fire` deletes the count. Replace the bodies of
//! `process` and `fire` with your own logic.
//!
//! Contract 0.3.0 gives each input partition a state of its own (its shard
//! of the view), range reads of it, event-time timers, and several input
//! topics:
//! - A batch of partition P reads and writes P's shard only, so the host may
//!   process the partitions on several threads at once. A key belongs to one
//!   partition: a batch that writes a key another partition already holds is
//!   refused. Rows under the event's key are safe; a row for events of several
//!   partitions (a global count) is kept once per partition, as
//!   `(no key)/<partition>` is here, and the reader adds them up.
//! - A timer fires right after the first event, from the one that set it on,
//!   whose timestamp brings the partition's event time (the largest timestamp
//!   so far) to the timer's moment. Timers are kept in the shard and
//!   committed with the batch, so a replay fires them exactly as the first
//!   run did. Nothing fires while no event comes.
//! - A version deployed with several `--topic`s gets every topic's events of
//!   the partition in one batch, in (timestamp, topic, offset) order;
//!   `event.topic` says which (0 for the first topic given).

// The generated export of `process` takes the flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

// Generates the Rust side of the contract in `wit/processor.wit`: the `Guest`
// trait to implement (`init`, `process`, `fire`), the imported `view`,
// `timers` and `logging` interfaces, and the `EventBatch`, `Timer` and
// `Error` types. The file is the frozen contract
// `kappa:processor@{{contract}}`; do not edit it.
wit_bindgen::generate!({
    path: "wit",
    world: "processor",
});

// Reads the batch's columns event by event (src/columns.rs):
// `columns_topics!` borrows the columns of an `EventBatch`, each event's
// topic included. Public, so that the parts this processor does not use yet
// draw no warnings.
pub mod columns;
use columns::Columns;

// Reads the view by key range in pages (src/range.rs). Every row under a
// prefix, the batch's own writes included, in key order:
//
//     for (key, value) in range::prefix(crate::view_range!(view), b"w/", 64) { ... }
//
// `view::range` itself returns at most `limit` rows, which count against the
// plugin's memory limit: read a large range in pages, as `range::prefix` does.
pub mod range;

use kappa::processor::logging::{self, Level};
use kappa::processor::{timers, view};

/// How long a key may stay quiet before it is forgotten, in milliseconds of
/// event time.
const IDLE_MS: i64 = 60 * 60 * 1000;

struct Component;

impl Guest for Component {
    /// Called once per instance, before any batch, with the configuration
    /// string given at deploy (`kappa deploy --config`; empty when none).
    /// The host may create an instance per thread and create one again at
    /// any time, so anything that must survive belongs in the view, not in
    /// memory.
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

    /// Called with a batch of events of one partition, in columns:
    /// `crate::columns_topics!(batch).events()` yields each event with its
    /// key and value borrowed from the batch (no copy). All the writes and
    /// timer changes of a batch reach the shard together with the batch's
    /// offsets, or none do: after an error or a trap nothing of the batch is
    /// kept and the version stops there, to be fixed and deployed as a new
    /// version.
    ///
    /// Replays must rebuild the same view, so the outcome may depend only on
    /// the events and the view: no wall clock (use `event.timestamp`), no
    /// randomness, no files, no network. And it may not depend on where the
    /// host cuts the log into batches: process the events in order, each one
    /// from the events before it and the view, never from the events after
    /// it (the host may pass the first events of a batch again, alone, to
    /// fire a timer right after them).
    fn process(batch: EventBatch) -> Result<(), Error> {
        let columns: Columns = crate::columns_topics!(batch);
        // Columns that disagree are a host bug, never the event's fault.
        let events = columns
            .events()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let unkeyed = format!("(no key)/{}", batch.partition);
        for event in events {
            let event = event.map_err(|e| Error::Internal(e.to_string()))?;
            let key = event.key.unwrap_or(unkeyed.as_bytes());
            // A write of this batch is visible to the reads that follow it,
            // so a key seen twice in one batch counts twice.
            let count = match view::get(key) {
                None => 0,
                // A payload the plugin cannot handle is refused with
                // `Error::InvalidEvent(EventError { topic: event.topic,
                // offset: event.offset, .. })`; a stored count it cannot read
                // is not the event's fault, hence `Internal`.
                Some(bytes) => parse_count(&bytes)
                    .ok_or_else(|| Error::Internal("a stored count is not a number".into()))?,
            };
            view::put(key, (count + 1).to_string().as_bytes());
            // Setting a timer of the same name moves it: the key is
            // forgotten an hour after its last event. `event.index` is the
            // event the timer counts from.
            timers::set(event.index, key, event.timestamp.saturating_add(IDLE_MS));
        }
        // Headers are `batch.headers`: (event index, name, value), by event.
        Ok(())
    }

    /// Called right after the event at which the timers in `fired` fell due,
    /// with the partition's event time. It reads and writes the shard like
    /// `process`, and its writes are committed with that event's batch.
    fn fire(_partition: u32, _time: i64, fired: Vec<Timer>) -> Result<(), Error> {
        for timer in fired {
            view::delete(&timer.key);
        }
        Ok(())
    }
}

/// Reads a count written by `process`.
fn parse_count(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

// Makes `Component` the implementation of the component's exports.
export!(Component);
