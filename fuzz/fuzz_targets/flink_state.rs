//! Any bytes as a Flink HA pointer (Base64 text or raw stream) or payload file: the Java
//! serialization reader and Flink's classes on top of it return a value or an error, never
//! panic, and stay within their memory and depth bounds.
#![no_main]

use flink_ha_policy::flink_state::{HaPointer, read_completed_checkpoint, read_execution_plan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = HaPointer::decode_java(data);
    let _ = read_completed_checkpoint(data);
    let _ = read_execution_plan(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = HaPointer::decode(text);
    }
});
