//! Differential: whenever the YAML fast path answers, it must equal the general parser.
#![no_main]

use flink_ha_policy::yaml::{parse_stream_full, parse_stream_simple};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(fast) = parse_stream_simple(text) {
        let full = parse_stream_full(text);
        assert!(fast == full, "input {text:?}\nfast: {fast:?}\nfull: {full:?}");
    }
});
