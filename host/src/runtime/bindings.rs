//! Every `bindgen!` output of the host lives here, so generated names stay in
//! one place and the rest of the runtime imports them from this module.
//!
//! The view imports are `trappable`: a view read can fail in the store, and an
//! oversized write must stop the guest, and both are host-side errors that the
//! guest cannot handle, so they trap the call instead of returning to it.

wasmtime::component::bindgen!({
    world: "processor",
    path: "../wit/processor-0.1.0",
    imports: {
        "kappa:processor/view": trappable,
    },
});

pub use self::kappa::processor::logging::Level;
pub use self::kappa::processor::types::{Error as GuestError, EventError, Header};
