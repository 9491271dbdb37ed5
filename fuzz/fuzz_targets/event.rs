//! Fuzz target: a `kappa produce` JSON line, or a produce request body.
//! The property is `kappa::fuzzing::check_event_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kappa::fuzzing::check_event_input(data);
});
