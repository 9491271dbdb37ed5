//! Every `bindgen!` output of the host lives here, so generated names stay in
//! one place and the rest of the runtime imports them from this module.
//!
//! One module per contract version (`v0_1`, `v0_2`), each generated from its
//! frozen WIT package under `wit/`. The host links the imports of every
//! version it supports, so a plugin built against any of them loads.
//!
//! The view imports are `trappable`: a view read can fail in the store, and an
//! oversized write must stop the guest, and both are host-side errors that the
//! guest cannot handle, so they trap the call instead of returning to it.

/// `kappa:processor@0.1.0`: one `event` record per event.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        world: "processor",
        path: "../wit/processor-0.1.0",
        imports: {
            "kappa:processor/view": trappable,
        },
    });

    pub use self::kappa::processor::logging::Level;
    pub use self::kappa::processor::types::{Error as GuestError, Header};
}

/// `kappa:processor@0.2.0`: a batch in columns.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        world: "processor",
        path: "../wit/processor-0.2.0",
        imports: {
            "kappa:processor/view": trappable,
        },
    });

    pub use self::kappa::processor::logging::Level;
    pub use self::kappa::processor::types::{Error as GuestError, EventHeader};
}
