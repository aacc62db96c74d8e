//! The records the HA runtime reads from ConfigMaps that others (Flink, an operator,
//! kubectl) may have written: payload pointers, leader entries, fences and checkpoint
//! keys. None may panic, and each one the runtime accepts must survive its own
//! write-then-read round trip unchanged.
#![no_main]

use std::collections::BTreeMap;

use flink_ha_runtime::checkpoint_store::{checkpoint_id, checkpoint_key};
use flink_ha_runtime::fence::{FENCE_ANNOTATION, Fence};
use flink_ha_runtime::names::{leader_entry_value, parse_leader_entry};
use flink_ha_runtime::payloads::Pointer;
use k8s_openapi::api::core::v1::ConfigMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };

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
});
