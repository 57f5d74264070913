#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aiocop_fuzz::rule_spec_input(data));
