//! Flink's names for its HA objects on the cluster (Flink 1.15+ layout), so a Flink
//! JobManager and this runtime can read each other's data. They come from the policy
//! core's [`flink_ha_policy::ha_layout`], the module the linter recognises Flink's
//! objects with: the two cannot disagree. What needs the runtime's own types (session
//! ids) lives here.

/// The leader lock: the fabric8 record in this annotation of the cluster ConfigMap.
pub use flink_ha_policy::leader_record::ANNOTATION as LEADER_ANNOTATION;

pub use flink_ha_policy::ha_layout::{
    ClusterId, DISPATCHER, HaConfigMapName, InvalidClusterId, InvalidJobId, JobId, LEADER_ENTRY_PREFIX,
    RESOURCE_MANAGER, REST_SERVER, cluster_config_map, ha_labels, ha_selector, is_job_config_map, is_job_id,
    job_component, job_config_map, leader_entry_key,
};

/// `"<session-uuid>,<address>"`, as Flink writes a leader entry.
pub fn leader_entry_value(session_id: &uuid::Uuid, address: &str) -> String {
    format!("{session_id},{address}")
}

/// Splits a leader entry at its first comma; `None` if it is not `<uuid>,<address>`.
pub fn parse_leader_entry(value: &str) -> Option<(uuid::Uuid, &str)> {
    let (session, address) = value.split_once(',')?;
    Some((session.parse().ok()?, address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_entries_round_trip_and_reject_garbage() {
        let id = uuid::Uuid::new_v4();
        let value = leader_entry_value(&id, "akka.tcp://flink@10.0.0.1:6123/user/rpc/dispatcher_1");
        assert_eq!(
            parse_leader_entry(&value),
            Some((id, "akka.tcp://flink@10.0.0.1:6123/user/rpc/dispatcher_1"))
        );
        // The address may itself hold commas: the split is at the first one.
        let value = leader_entry_value(&id, "http://a,b");
        assert_eq!(parse_leader_entry(&value).map(|(_, a)| a), Some("http://a,b"));
        assert_eq!(parse_leader_entry("not-a-uuid,http://x"), None);
        assert_eq!(parse_leader_entry("no comma"), None);
    }
}
