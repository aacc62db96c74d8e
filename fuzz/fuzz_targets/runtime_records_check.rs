// The property `runtime_records` fuzzes, shared by the fuzz target and by
// `runtime/tests/fuzz_corpus.rs` (which `include!`s this file): none of the records the
// runtime reads from ConfigMaps may panic, and each one it accepts must survive its own
// write-then-read round trip unchanged.

fn check_runtime_records(text: &str) {
    use flink_ha_runtime::checkpoint_store::{checkpoint_id, checkpoint_key};
    use flink_ha_runtime::fence::{FENCE_ANNOTATION, Fence};
    use flink_ha_runtime::names::{leader_entry_value, parse_leader_entry};
    use flink_ha_runtime::payloads::Pointer;

    if let Ok(pointer) = Pointer::parse(text) {
        assert_eq!(
            Pointer::parse(&pointer.to_json()).as_ref(),
            Ok(&pointer),
            "pointer {text:?}"
        );
    }
    if let Some((session, address)) = parse_leader_entry(text) {
        let again = leader_entry_value(&session, address);
        assert_eq!(parse_leader_entry(&again), Some((session, address)), "entry {text:?}");
    }
    let mut cm = k8s_openapi::api::core::v1::ConfigMap::default();
    cm.metadata.annotations = Some(std::collections::BTreeMap::from([(
        FENCE_ANNOTATION.to_string(),
        text.to_string(),
    )]));
    let _ = Fence::read(&cm);
    if let Some(id) = checkpoint_id(text) {
        assert_eq!(checkpoint_id(&checkpoint_key(id)), Some(id), "checkpoint key {text:?}");
    }
}
