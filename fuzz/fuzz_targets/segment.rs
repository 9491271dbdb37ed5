//! Fuzz target: A whole segment file, opened (recovery scan: torn tail cut, damage refused) and read back.
//! The property is `kappa_log::fuzzing::check_segment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kappa_log::fuzzing::check_segment(data);
});
