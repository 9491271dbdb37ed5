//! The key-totals aggregation on contract `kappa:processor@0.3.0-rc.1`: the
//! same logic and the same view rows as `key-totals` (each event key mapped
//! to `{"events":N,"total_cents":S}`), for the replay benchmark of a plugin
//! whose partitions may be processed in parallel. Every row is under its
//! event's key, so no key is written by two partitions.
//!
//! It is key-totals' own source, included: the logic (`totals.rs`) and the
//! component (`component.rs`), over the bindings of 0.3.0-rc.1, whose batch,
//! `get` and `put` are those of 0.2.0.

#[path = "../../key-totals/src/totals.rs"]
mod totals;

pub use totals::{Totals, process_batch};

/// The component, built for the guest target only, as in key-totals.
#[cfg(target_family = "wasm")]
mod component {
    // The generated export of `process` takes the 13 flattened fields of
    // `event-batch` as parameters, as the canonical ABI passes them.
    #![allow(clippy::too_many_arguments)]

    wit_bindgen::generate!({
        path: "../../../wit/processor-0.3.0-rc.1",
        world: "processor",
    });

    include!("../../key-totals/src/component.rs");
}
