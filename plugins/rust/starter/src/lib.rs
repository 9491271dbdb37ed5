//! The smallest useful processor: counts the events of each key.
//!
//! It is the plugin to copy when writing a new one. For every event it adds
//! one to the count of the event's key: the view maps the key bytes (or
//! `(no key)`) to the count as ASCII decimal.

// Generates the Rust side of the contract: the `Guest` trait to implement
// (`init`, `process`), the imported `view` and `logging` interfaces, and the
// `Event` and `Error` types. The path is the frozen contract this plugin is
// written against; a new contract version would be a new path.
wit_bindgen::generate!({
    path: "../../../wit/processor-0.1.0",
    world: "processor",
});

use kappa::processor::logging::{self, Level};
use kappa::processor::view;

struct Starter;

impl Guest for Starter {
    /// Called once per instance before any batch, with the configuration
    /// given at deploy. Instances come and go (a restart, a new worker), so
    /// anything that must survive belongs in the view, not in memory.
    fn init(config: String) -> Result<(), Error> {
        // The starter takes no configuration: refuse one rather than
        // silently ignore what the operator meant to set.
        if !config.trim().is_empty() {
            return Err(Error::InvalidConfig(
                "starter takes no configuration".into(),
            ));
        }
        logging::log(Level::Info, "starter ready");
        Ok(())
    }

    /// Called with the events of one partition, in offset order. All the
    /// writes of a batch reach the view together with the batch's offsets,
    /// or none do: after an error or a trap nothing of the batch is kept and
    /// the version stops there, to be fixed and redeployed.
    ///
    /// Replays must rebuild the same view, so the outcome may depend only on
    /// the events and the view: no wall clock (use `event.timestamp`), no
    /// randomness.
    fn process(events: Vec<Event>) -> Result<(), Error> {
        for event in events {
            let key = event.key.as_deref().unwrap_or(b"(no key)");
            // A write of this batch is visible to the reads that follow it,
            // so a key seen twice in one batch counts twice.
            let count = match view::get(key) {
                None => 0,
                // A payload this plugin cannot handle would be refused with
                // `Error::InvalidEvent`, naming `event.offset`; a count it
                // cannot read is not the event's fault, hence `Internal`.
                Some(bytes) => parse_count(&bytes)
                    .ok_or_else(|| Error::Internal("a stored count is not a number".into()))?,
            };
            view::put(key, (count + 1).to_string().as_bytes());
        }
        Ok(())
    }
}

/// Reads a count written by `process`.
fn parse_count(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

// Makes `Starter` the component's implementation of the exports.
export!(Starter);
