//! Differential: whenever the YAML fast path answers, it must equal the general parser.
#![no_main]

#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cases::yaml_simple(data);
});
