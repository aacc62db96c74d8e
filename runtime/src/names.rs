//! Flink's names for its HA objects on the cluster (Flink 1.15+ layout), so a Flink
//! JobManager and this runtime can read each other's data.

use std::collections::BTreeMap;

/// The leader lock: the fabric8 record in this annotation of the cluster ConfigMap.
pub use flink_ha_policy::leader_record::ANNOTATION as LEADER_ANNOTATION;

/// Prefix of the per-component leader entries: `<prefix><component>` =
/// `"<session-uuid>,<address>"`.
pub const LEADER_ENTRY_PREFIX: &str = "org.apache.flink.k8s.leader.";

/// Components whose leader entries the cluster ConfigMap carries.
pub const DISPATCHER: &str = "dispatcher";
pub const RESOURCE_MANAGER: &str = "resourcemanager";
pub const REST_SERVER: &str = "restserver";

/// `<cluster-id>-cluster-config-map`: the lock, the leader entries, the execution plans.
pub fn cluster_config_map(cluster_id: &str) -> String {
    format!("{cluster_id}-cluster-config-map")
}

/// `<cluster-id>-<job-id>-config-map`: a job's checkpoint counter and pointers.
pub fn job_config_map(cluster_id: &str, job_id: &str) -> String {
    format!("{cluster_id}-{job_id}-config-map")
}

/// Whether a string is a Flink job id: 32 lower-case hex digits (the policy core's rule,
/// so the linter and the runtime agree on it).
pub use flink_ha_policy::objects::is_job_id;

/// Whether `name` is a job ConfigMap of `cluster_id`: `<cluster-id>-<32 hex>-config-map`.
pub fn is_job_config_map(cluster_id: &str, name: &str) -> bool {
    name.strip_prefix(cluster_id)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix("-config-map"))
        .is_some_and(is_job_id)
}

/// The data key of a component's leader entry.
pub fn leader_entry_key(component: &str) -> String {
    format!("{LEADER_ENTRY_PREFIX}{component}")
}

/// The leader entry of a job's JobMaster (`job-<job-id>` since Flink 1.19).
pub fn job_component(job_id: &str) -> String {
    format!("job-{job_id}")
}

/// The labels every HA ConfigMap carries from creation: `app=<cluster-id>`,
/// `type=flink-native-kubernetes`, and `configmap-type=high-availability` (which Flink
/// 1.12–1.20 set and select on for cleanup; 2.x dropped it, and extra labels are harmless).
pub fn ha_labels(cluster_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), cluster_id.to_string()),
        ("type".to_string(), "flink-native-kubernetes".to_string()),
        ("configmap-type".to_string(), "high-availability".to_string()),
    ])
}

/// The label selector that finds every HA ConfigMap of a cluster.
pub fn ha_selector(cluster_id: &str) -> String {
    format!("app={cluster_id},type=flink-native-kubernetes")
}

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
    fn names_follow_flink() {
        assert_eq!(cluster_config_map("orders"), "orders-cluster-config-map");
        let job = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
        assert_eq!(job_config_map("orders", job), format!("orders-{job}-config-map"));
        assert_eq!(
            leader_entry_key(&job_component(job)),
            format!("org.apache.flink.k8s.leader.job-{job}")
        );
    }

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
