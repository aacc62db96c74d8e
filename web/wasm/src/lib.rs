//! The browser's entry points into the policy core (wasm-bindgen).
//!
//! Thin wrappers over [`api`], which holds the logic as plain Rust so it is tested
//! natively (`cargo test -p flink-ha-web`). Every answer is a string: the JSON and
//! SARIF texts must reach the page byte for byte as the CLI prints them, and a string
//! crosses the boundary with one copy and no extra JS dependency.

// Bad input is an error value, never a panic: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;

use wasm_bindgen::prelude::*;

/// Lints one input; the CLI's `--format json` output (compact JSON and a newline).
/// `format` is one of `auto`, `flink-conf`, `config-yaml`, `kubernetes`.
#[wasm_bindgen]
pub fn lint(name: &str, bytes: &[u8], format: &str) -> Result<String, JsError> {
    api::lint_json(name, bytes, format).map_err(|e| JsError::new(&e))
}

/// Lints one input; the CLI's `--format sarif` output.
#[wasm_bindgen(js_name = lintSarif)]
pub fn lint_sarif(name: &str, bytes: &[u8], format: &str) -> Result<String, JsError> {
    api::lint_sarif(name, bytes, format).map_err(|e| JsError::new(&e))
}

/// The format `auto` would read the input as, or `None` when the input is not read at
/// all (not UTF-8, too large).
#[wasm_bindgen(js_name = detectFormat)]
pub fn detect_format(name: &str, bytes: &[u8]) -> Option<String> {
    api::detect_format(name, bytes).map(str::to_string)
}

/// The rule catalogue as `flink-ha rules --format json` prints it.
#[wasm_bindgen]
pub fn rules() -> String {
    api::rules_json()
}

/// The most bytes the core reads; larger inputs are one HA001 finding.
#[wasm_bindgen(js_name = maxInputBytes)]
pub fn max_input_bytes() -> usize {
    flink_ha_policy::MAX_INPUT_BYTES
}

/// The policy version (the core crate's version).
#[wasm_bindgen]
pub fn version() -> String {
    flink_ha_policy::version().to_string()
}

/// Lints `bytes` `runs` times and returns the elapsed milliseconds measured by the
/// caller's clock around the whole batch. Batches exist because browsers coarsen
/// `performance.now()` (100 µs without cross-origin isolation), far above one lint of
/// a typical config; timing a batch and dividing keeps the measurement meaningful.
#[wasm_bindgen(js_name = lintBatch)]
pub fn lint_batch(name: &str, bytes: &[u8], format: &str, runs: u32) -> Result<usize, JsError> {
    let mut total = 0;
    for _ in 0..runs {
        // Sum the lengths so the optimiser cannot drop the work.
        total += api::lint_json(name, bytes, format).map_err(|e| JsError::new(&e))?.len();
    }
    Ok(total)
}
