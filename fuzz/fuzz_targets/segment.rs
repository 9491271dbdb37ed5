//! Fuzz target: A whole segment file, opened (recovery scan: torn tail cut, damage refused) and read back.
//! The property is `kappa::fuzzing::check_segment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kappa::fuzzing::check_segment(data);
});
