//! The records the HA runtime reads from ConfigMaps that others (Flink, an operator,
//! kubectl) may have written: payload pointers, leader entries, fences and checkpoint
//! keys. The property is in `runtime_records_check.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("runtime_records_check.rs");

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_runtime_records(text);
    }
});
