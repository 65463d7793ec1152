#![no_main]

// The body lives in the host library so `make test` can replay the corpus.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pagehook::fuzz_targets::config(data));
