#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aiocop_fuzz::format_event_input(data));
