//! Any bytes as a Flink checkpoint metadata file (`chk-N/_metadata`): the reader returns the
//! checkpoint or an error naming a place inside the input, never panics, and stays within its
//! memory and depth bounds. The property is `cases::checkpoint_metadata`.
#![no_main]

#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cases::checkpoint_metadata(data);
});
