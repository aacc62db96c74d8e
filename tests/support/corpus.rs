//! Test support for everything that reads the committed corpus (`tests/fixtures`,
//! `samples`, `benches/inputs`, `fuzz/corpus`): the instant reviews of it are judged at,
//! and one walker over its folders. Included with `#[path]` by the policy's tests and
//! benches, the parity test, the webhook's bench and the runtime's corpus replay, so it
//! needs no crate of its own.

// Each includer uses a part.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The instant reviews of the corpus are judged at: 7 s after the leader records in it
/// were renewed (`2026-11-24T01:34:33Z`), so their 15 s leases are live.
pub const REVIEW_NOW: &str = "2026-11-24T01:34:40Z";

/// [`REVIEW_NOW`] in Unix milliseconds, as `review` takes it (`tests/fixtures.rs` checks
/// that the two agree).
pub const REVIEW_NOW_MS: i64 = 1_795_484_080_000;

/// Every file under `dir`, in subfolders too, sorted; none if `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|entry| entry.path()) {
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A review fixture's `context.json`, what a host's lookup would have given the review.
pub enum ContextFile {
    /// `{"found": [<ConfigMap>, ...]}`: the objects, each as JSON text.
    Found(Vec<String>),
    /// `{"unknown": "<why>"}`: the lookup failed.
    Unknown(String),
}

/// The `context.json` beside a review fixture; `None` without one.
pub fn review_context(dir: &Path) -> Option<ContextFile> {
    let text = std::fs::read_to_string(dir.join("context.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).expect("a valid context.json");
    if let Some(why) = value["unknown"].as_str() {
        return Some(ContextFile::Unknown(why.to_string()));
    }
    let found = value["found"]
        .as_array()
        .expect("context.json has `found` or `unknown`");
    Some(ContextFile::Found(
        found.iter().map(serde_json::Value::to_string).collect(),
    ))
}
