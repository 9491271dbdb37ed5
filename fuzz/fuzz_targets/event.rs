//! Fuzz target: a `kappa produce` JSON line, or a produce request body.
//! The property is `kappa_log::fuzzing::check_event_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kappa_log::fuzzing::check_event_input(data);
});
