//! Replays the fuzz corpus and every crasher the fuzzer ever found
//! (`fuzz/corpus/*`, `fuzz/artifacts/*`) through `lint` and `review` on every
//! `cargo test`, so a fixed crash stays fixed without running the fuzzer.

use std::path::Path;

use flink_ha_policy::yaml::{parse_stream_full, parse_stream_simple};
use flink_ha_policy::{InputFormat, LintRun, ReviewSettings, review};

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Mirrors `fuzz/fuzz_targets/lint.rs`.
fn lint_case(data: &[u8]) {
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
    let run = LintRun::of_one(name, bytes, format);
    assert!(run.to_json().starts_with("{\"files\""));
    let _ = run.to_text();
    let _ = run.to_sarif();
}

#[test]
fn lint_corpus_and_crashers_replay() {
    let cases: Vec<_> = files("fuzz/corpus/lint")
        .into_iter()
        .chain(files("fuzz/artifacts/lint"))
        .collect();
    assert!(
        cases.len() >= 40,
        "the lint corpus is committed ({} files)",
        cases.len()
    );
    for path in cases {
        lint_case(&std::fs::read(&path).expect("readable"));
    }
}

#[test]
fn review_corpus_and_crashers_replay() {
    let cases: Vec<_> = files("fuzz/corpus/review")
        .into_iter()
        .chain(files("fuzz/artifacts/review"))
        .collect();
    assert!(
        cases.len() >= 10,
        "the review corpus is committed ({} files)",
        cases.len()
    );
    for path in cases {
        let bytes = std::fs::read(&path).expect("readable");
        if let Ok(body) = std::str::from_utf8(&bytes) {
            let _ = review(body, 1_795_829_680_000, &ReviewSettings::default());
        }
    }
}

/// Mirrors `fuzz/fuzz_targets/yaml_simple.rs`, over its own corpus and the lint corpus
/// (whose inputs are mostly configs; their first byte selects the format there).
#[test]
fn yaml_fast_path_corpus_replays() {
    let own = files("fuzz/corpus/yaml_simple")
        .into_iter()
        .chain(files("fuzz/artifacts/yaml_simple"));
    let mut texts: Vec<Vec<u8>> = own.map(|p| std::fs::read(p).expect("readable")).collect();
    for path in files("fuzz/corpus/lint") {
        let bytes = std::fs::read(&path).expect("readable");
        texts.push(bytes.get(1..).unwrap_or_default().to_vec());
    }
    let mut answered = 0;
    for bytes in &texts {
        let Ok(text) = std::str::from_utf8(bytes) else { continue };
        if let Some(fast) = parse_stream_simple(text) {
            let full = parse_stream_full(text);
            assert!(fast == full, "input {text:?}\nfast: {fast:?}\nfull: {full:?}");
            answered += 1;
        }
    }
    assert!(answered > 0, "no corpus input took the fast path");
}

/// Mirrors `fuzz/fuzz_targets/flink_state.rs`; the seeds are a real Flink 2.3 cluster's
/// pointers and payloads, so the replay also proves they still decode.
#[test]
fn flink_state_corpus_and_crashers_replay() {
    use flink_ha_policy::flink_state::{HaPointer, read_completed_checkpoint, read_execution_plan};
    let cases: Vec<_> = files("fuzz/corpus/flink_state")
        .into_iter()
        .chain(files("fuzz/artifacts/flink_state"))
        .collect();
    assert!(
        cases.len() >= 10,
        "the flink_state corpus is committed ({} files)",
        cases.len()
    );
    let mut decoded = 0;
    for path in cases {
        let data = std::fs::read(&path).expect("readable");
        decoded += usize::from(HaPointer::decode_java(&data).is_ok());
        decoded += usize::from(read_completed_checkpoint(&data).is_ok());
        decoded += usize::from(read_execution_plan(&data).is_ok());
        if let Ok(text) = std::str::from_utf8(&data) {
            decoded += usize::from(HaPointer::decode(text).is_ok());
        }
    }
    // The four raw pointers, four Base64 pointers, one checkpoint and one plan (at least).
    assert!(decoded >= 10, "only {decoded} corpus files decoded");
}
