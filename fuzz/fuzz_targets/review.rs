//! Any body: `review` returns a response or an error value, never panics.
#![no_main]

#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cases::review_body(data));
