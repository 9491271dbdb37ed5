//! The payments v2 processor on contract `kappa:processor@0.3.0-rc.1`: the
//! same rules, the same configuration and the same view rows, byte for byte
//! (`account/<account>`, `window/<account>`, `flag/<txn>`), so that its view
//! digest equals payments-v2's over the same log, however many threads the
//! host processes its partitions on.
//!
//! It is payments-v2's own source, included: the rules (`rules.rs`) and the
//! component around them (`component.rs`), over the bindings of 0.3.0-rc.1,
//! whose batch, `get` and `put` are those of 0.2.0.
//!
//! Under 0.3.0-rc.1 each partition has a shard of the view of its own, and a
//! key belongs to one partition. The rows of an account derive from the
//! event's key (the producer keys payments by account), so all of an
//! account's events, and its rows, are in one partition. Two of its keys do
//! not derive from the key: `flag/<txn>` comes from the payment's `txn`,
//! unique per payment, and an event without a key is filed under its
//! payload's `account`. A log that repeats a `txn` in two partitions, or
//! whose unkeyed events name an account of another partition, makes the host
//! refuse the batch that writes the key a second partition already holds.

// The generated export of `process` takes the 13 flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

#[path = "../../payments-v2/src/rules.rs"]
mod rules;

pub use rules::{Config, Window, process_batch};

wit_bindgen::generate!({
    path: "../../../wit/processor-0.3.0-rc.1",
    world: "processor",
});

include!("../../payments-v2/src/component.rs");
