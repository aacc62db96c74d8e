//! Any bytes, any declared format, any file name: `lint` returns findings, never panics.
#![no_main]

#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cases::lint(data));
