//! Any body: `review` returns a response or an error value, never panics.
#![no_main]

use flink_ha_policy::{ReviewSettings, review};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = std::str::from_utf8(data) {
        let _ = review(body, 1_795_829_680_000, &ReviewSettings::default());
    }
});
