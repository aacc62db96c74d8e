//! Replays `fuzz/corpus/runtime_records` (and any crasher in `fuzz/artifacts/`) through
//! the record parsers on every `cargo test`: mirrors `fuzz/fuzz_targets/runtime_records.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::ConfigMap;

use flink_ha_runtime::checkpoint_store::{checkpoint_id, checkpoint_key};
use flink_ha_runtime::fence::{FENCE_ANNOTATION, Fence};
use flink_ha_runtime::names::{leader_entry_value, parse_leader_entry};
use flink_ha_runtime::payloads::Pointer;

fn check(text: &str) {
    if let Ok(pointer) = Pointer::parse(text) {
        assert_eq!(Pointer::parse(&pointer.to_json()).as_ref(), Ok(&pointer), "pointer {text:?}");
    }
    if let Some((session, address)) = parse_leader_entry(text) {
        let again = leader_entry_value(&session, address);
        assert_eq!(parse_leader_entry(&again), Some((session, address)), "entry {text:?}");
    }
    let mut cm = ConfigMap::default();
    cm.metadata.annotations = Some(BTreeMap::from([(FENCE_ANNOTATION.to_string(), text.to_string())]));
    let _ = Fence::read(&cm);
    if let Some(id) = checkpoint_id(text) {
        assert_eq!(checkpoint_id(&checkpoint_key(id)), Some(id), "checkpoint key {text:?}");
    }
}

#[test]
fn the_runtime_records_corpus_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for dir in ["corpus/runtime_records", "artifacts/runtime_records"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let bytes = std::fs::read(entry.path()).expect("readable corpus file");
            if let Ok(text) = std::str::from_utf8(&bytes) {
                check(text);
            }
            replayed += 1;
        }
    }
    // The corpus is committed; an empty replay means it went missing.
    assert!(replayed > 100, "only {replayed} corpus files under {}", root.display());
}
