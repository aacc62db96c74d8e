//! Any bytes as a Flink HA pointer (Base64 text or raw stream) or payload file: the Java
//! serialization reader and Flink's classes on top of it return a value or an error, never
//! panic, and stay within their memory and depth bounds.
#![no_main]

#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cases::flink_state(data);
});
