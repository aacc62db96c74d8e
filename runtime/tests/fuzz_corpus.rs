//! Replays `fuzz/corpus/runtime_records` (and any crasher in `fuzz/artifacts/`) through
//! the record parsers on every `cargo test`, with the fuzz target's own check.

use std::path::Path;

include!("../../fuzz/fuzz_targets/runtime_records_check.rs");

#[path = "../../tests/support/corpus.rs"]
mod corpus;

#[test]
fn the_runtime_records_corpus_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for dir in ["corpus/runtime_records", "artifacts/runtime_records"] {
        for file in corpus::files_under(&root.join(dir)) {
            let bytes = std::fs::read(file).expect("readable corpus file");
            if let Ok(text) = std::str::from_utf8(&bytes) {
                check_runtime_records(text);
            }
            replayed += 1;
        }
    }
    // The corpus is committed; an empty replay means it went missing.
    assert!(replayed > 100, "only {replayed} corpus files under {}", root.display());
}
