#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aiocop_fuzz::redact_input(data));
