//! Replays the fuzz corpus and every crasher the fuzzer ever found
//! (`fuzz/corpus/*`, `fuzz/artifacts/*`) through `lint` and `review` on every
//! `cargo test`, so a fixed crash stays fixed without running the fuzzer.

use std::path::Path;

#[path = "../fuzz/cases.rs"]
mod cases;

#[path = "support/corpus.rs"]
mod corpus;

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    corpus::files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
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
        cases::lint(&std::fs::read(&path).expect("readable"));
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
        cases::review_body(&std::fs::read(&path).expect("readable"));
    }
}

/// `fuzz/fuzz_targets/yaml_simple.rs`'s case, over its own corpus and the lint corpus
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
    let answered = texts.iter().filter(|bytes| cases::yaml_simple(bytes)).count();
    assert!(answered > 0, "no corpus input took the fast path");
}

/// `fuzz/fuzz_targets/flink_state.rs`'s case; the seeds are a real Flink 2.3 cluster's
/// pointers and payloads, so the replay also proves they still decode.
#[test]
fn flink_state_corpus_and_crashers_replay() {
    let cases: Vec<_> = files("fuzz/corpus/flink_state")
        .into_iter()
        .chain(files("fuzz/artifacts/flink_state"))
        .collect();
    assert!(
        cases.len() >= 10,
        "the flink_state corpus is committed ({} files)",
        cases.len()
    );
    let decoded: usize = cases
        .iter()
        .map(|path| cases::flink_state(&std::fs::read(path).expect("readable")))
        .sum();
    // The four raw pointers, four Base64 pointers, one checkpoint and one plan (at least).
    assert!(decoded >= 10, "only {decoded} corpus files decoded");
}

/// `fuzz/fuzz_targets/checkpoint_metadata.rs`'s case; the seeds are a real Flink 2.3
/// checkpoint's `_metadata`, the files Flink 2.3's serializers write for each format version
/// (`tests/real-flink/serializer-2.3`) and hand-built ones, which must all still read.
#[test]
fn checkpoint_metadata_corpus_and_crashers_replay() {
    let cases: Vec<_> = files("fuzz/corpus/checkpoint_metadata")
        .into_iter()
        .chain(files("fuzz/artifacts/checkpoint_metadata"))
        .collect();
    assert!(
        cases.len() >= 9,
        "the checkpoint_metadata corpus is committed ({} files)",
        cases.len()
    );
    let read = cases
        .iter()
        .filter(|path| cases::checkpoint_metadata(&std::fs::read(path).expect("readable")))
        .count();
    assert!(read >= 9, "only {read} corpus files read");
}

#[test]
fn settings_corpus_and_crashers_replay() {
    let cases: Vec<_> = files("fuzz/corpus/settings")
        .into_iter()
        .chain(files("fuzz/artifacts/settings"))
        .collect();
    assert!(
        cases.len() >= 7,
        "the settings corpus is committed ({} files)",
        cases.len()
    );
    let parsed = cases
        .iter()
        .filter(|path| cases::settings(&std::fs::read(path).expect("readable")))
        .count();
    assert!(parsed >= 2, "the corpus holds files that parse ({parsed})");
}
