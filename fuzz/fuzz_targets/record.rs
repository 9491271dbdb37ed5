//! Fuzz target: One framed log record (length, CRC-32, body) as the log's readers decode it.
//! The property is `kappa_log::fuzzing::check_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kappa_log::fuzzing::check_record(data);
});
