//! # flink-ha-policy: the flink-ha policy core
//!
//! Lints Apache Flink Kubernetes-HA configuration in every form it comes in and enforces
//! the ownership rules of Flink's HA ConfigMaps. The same rules run in the `flink-ha`
//! CLI, in the admission webhook (compiled to a Wasm component), in the browser (wasm-
//! bindgen) and inside the HA runtime before it starts.
//!
//! The crate is pure: no I/O, no clock, no environment, no async. Time is an input
//! (`review(.., now_unix_ms, ..)`), and bad input is a finding (HA001) or an error value,
//! never a panic.
//!
//! ```
//! let report = flink_ha_policy::lint("config.yaml", "high-availability.type: kubernets\n");
//! assert_eq!(report.findings[0].rule.as_str(), "HA109");
//! assert_eq!(report.findings[0].line, Some(1));
//! ```
//!
//! Entry points: [`lint`] / [`lint_inputs`] (files and bundles), [`review`] and
//! [`review_in_context`] (AdmissionReview), [`rules::catalogue`], [`schema::schema`].

// Bad input is an error value, never a panic: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

// Public modules are the ones the CLI, the webhook, the runtime and the page name; the
// rest are internals, reached through the re-exports below.
#[cfg(feature = "admission")]
mod admission;
mod bundle;
pub mod checkpoint_metadata;
pub mod config;
pub mod duration;
#[cfg(any(feature = "admission", feature = "settings"))]
pub mod exemptions;
mod finding;
pub mod flink_state;
pub mod ha_config;
pub mod ha_layout;
pub mod ha_state;
pub mod input;
pub mod java_serial;
pub mod leader_record;
mod objects;
pub mod options;
mod render;
pub mod rules;
mod scan;
pub mod schema;
#[cfg(feature = "settings")]
pub mod settings;
pub mod storage_layout;
mod storage_uri;
mod suppress;
pub mod typecheck;
pub mod yaml;
mod yaml_simple;
mod yaml_tree;

#[cfg(feature = "admission")]
pub use admission::{
    MAX_REVIEW_BYTES, ObjectRef, ReviewContext, ReviewError, ReviewSettings, Reviewed, review, review_in_context,
};
pub use config::{ConfigFile, read_config_text};
pub use finding::{Finding, Report, Severity, Summary};
pub use input::{InputFormat, LintInput, MAX_INPUT_BYTES, detect, lint_inputs};
pub use render::LintRun;
pub use rules::RuleId;

/// Lints one text, the format decided from its name and content.
pub fn lint(name: &str, text: &str) -> Report {
    lint_as(name, text.as_bytes(), InputFormat::Auto)
}

/// Lints one input of raw bytes (checked for size and UTF-8) in the given format.
pub fn lint_as(name: &str, bytes: &[u8], format: InputFormat) -> Report {
    lint_inputs(&[LintInput { name, bytes }], format)
        .pop()
        .unwrap_or_default()
}

/// The version of the policy (the crate version), as the component reports it.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
