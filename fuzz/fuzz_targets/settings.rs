//! Any bytes as a policy settings file: parsed whole or refused with a place inside it,
//! never a panic.
#![no_main]

#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cases::settings(data);
});
