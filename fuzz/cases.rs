//! What each fuzz target does with one input, written once: the targets in
//! `fuzz_targets/` run it under libFuzzer, and `tests/fuzz_regressions.rs` replays the
//! committed corpus and every crasher through it on each `cargo test` (both include this
//! file with `#[path]`). Each function panics only when the property it checks breaks.
#![allow(dead_code)] // each includer uses its own part

use flink_ha_policy::checkpoint_metadata::{self, MetadataError};
use flink_ha_policy::flink_state::{HaPointer, read_completed_checkpoint, read_execution_plan};
use flink_ha_policy::yaml::{parse_stream_full, parse_stream_simple};
use flink_ha_policy::{InputFormat, LintRun, ReviewSettings, review};

/// Any bytes, any declared format, any file name: `lint` returns findings and renders them.
pub fn lint(data: &[u8]) {
    // The first byte picks the format, so every reader is exercised.
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let (name, format) = match selector % 5 {
        0 => ("config.yaml", InputFormat::Auto),
        1 => ("flink-conf.yaml", InputFormat::Auto),
        2 => ("manifests.yaml", InputFormat::Kubernetes),
        3 => ("config.yaml", InputFormat::ConfigYaml),
        _ => ("flink-conf.yaml", InputFormat::FlinkConf),
    };
    // Rendering must hold up too (positions, masking, escaping).
    let run = LintRun::of_one(name, bytes, format);
    assert!(run.to_json().starts_with("{\"files\""));
    let _ = run.to_text();
    let _ = run.to_sarif();
}

/// Any body: `review` returns a response or an error value.
pub fn review_body(data: &[u8]) {
    if let Ok(body) = std::str::from_utf8(data) {
        let _ = review(body, 1_795_829_680_000, &ReviewSettings::default());
    }
}

/// Differential: whenever the YAML fast path answers, it equals the general parser.
/// Returns whether the fast path answered.
pub fn yaml_simple(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Some(fast) = parse_stream_simple(text) else {
        return false;
    };
    let full = parse_stream_full(text);
    assert!(fast == full, "input {text:?}\nfast: {fast:?}\nfull: {full:?}");
    true
}

/// Any bytes as a Flink HA pointer (raw stream or Base64 text) or payload file: a value
/// or an error, within the reader's bounds. Returns how many readings succeeded.
pub fn flink_state(data: &[u8]) -> usize {
    let mut decoded = usize::from(HaPointer::decode_java(data).is_ok());
    decoded += usize::from(read_completed_checkpoint(data).is_ok());
    decoded += usize::from(read_execution_plan(data).is_ok());
    if let Ok(text) = std::str::from_utf8(data) {
        decoded += usize::from(HaPointer::decode(text).is_ok());
    }
    decoded
}

/// Any bytes as a policy settings file (`.flink-ha.yaml`, `webhook --settings`): it is
/// read whole, with every exemption it keeps usable, or refused at a place inside the
/// text; never a panic.
pub fn settings(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match flink_ha_policy::settings::parse(text) {
        Ok(parsed) => {
            for exemption in &parsed.exemptions {
                assert!(exemption.check().is_ok(), "kept an unusable exemption: {exemption:?}");
            }
            true
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            let lines = flink_ha_policy::settings::yaml_lines(text).len();
            assert!(e.line <= lines + 1, "line {} of {lines}", e.line);
            false
        }
    }
}

/// Any bytes as a checkpoint metadata file (`chk-N/_metadata`): a reading or an error that
/// points inside the input, never a panic. A file that reads has nothing the reader skipped:
/// without its last byte it does not read. Returns whether it read.
pub fn checkpoint_metadata(data: &[u8]) -> bool {
    match checkpoint_metadata::read(data) {
        Ok(meta) => {
            assert!(checkpoint_metadata::SUPPORTED_VERSIONS.contains(&meta.version));
            let _ = meta.required_uris("s3://bucket/chk-1");
            assert!(
                checkpoint_metadata::read(&data[..data.len() - 1]).is_err(),
                "a prefix read too"
            );
            true
        }
        Err(err) => {
            let offset = match err {
                MetadataError::Truncated { offset, .. }
                | MetadataError::LengthPastEnd { offset, .. }
                | MetadataError::Invalid { offset, .. }
                | MetadataError::BadString { offset, .. }
                | MetadataError::UnknownHandle { offset, .. }
                | MetadataError::TooDeep { offset }
                | MetadataError::Properties { offset, .. }
                | MetadataError::PropertiesClass { offset, .. }
                | MetadataError::TrailingBytes { offset, .. } => offset,
                MetadataError::TooLarge { .. }
                | MetadataError::NotMetadata { .. }
                | MetadataError::UnsupportedVersion { .. } => 0,
            };
            assert!(offset <= data.len(), "{err} in {} bytes", data.len());
            false
        }
    }
}
