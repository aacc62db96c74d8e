//! Flink's Kubernetes HA layout, in one place: the names of the HA ConfigMaps, their
//! labels, the keys inside them, the leader entries, the limits and the election
//! defaults (Flink 1.15+ layout, as `../shared/spec/flink-ha.md` describes it).
//!
//! The linter's HA2xx rules recognise Flink's objects with it, and the HA runtime
//! (`flink-ha-runtime`) names what it writes with it, so the two cannot disagree about
//! what a Flink HA ConfigMap is. The leader record inside the lock annotation has its
//! own module, [`crate::leader_record`].

use std::collections::BTreeMap;
use std::time::Duration;

/// Label every HA ConfigMap carries: `app=<cluster-id>`.
pub const LABEL_APP: &str = "app";
/// Label every HA ConfigMap carries: `type=flink-native-kubernetes`.
pub const LABEL_TYPE: &str = "type";
/// The value of [`LABEL_TYPE`] on every HA ConfigMap.
pub const LABEL_TYPE_VALUE: &str = "flink-native-kubernetes";
/// `configmap-type=high-availability`: set and selected on by Flink 1.12–1.20; 2.x
/// dropped it (extra labels are harmless).
pub const LABEL_CONFIGMAP_TYPE: &str = "configmap-type";
/// The value of [`LABEL_CONFIGMAP_TYPE`].
pub const LABEL_CONFIGMAP_TYPE_VALUE: &str = "high-availability";

/// A ConfigMap holds at most this many bytes of keys and values.
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024;

/// Bytes one ConfigMap entry counts against [`CONFIGMAP_LIMIT`]: its key and its value,
/// a `binaryData` value (`binary`) as the bytes its base64 decodes to.
pub fn configmap_entry_bytes(key: &str, value: &str, binary: bool) -> usize {
    let value = if binary {
        value.trim_end_matches('=').len() * 3 / 4
    } else {
        value.len()
    };
    key.len() + value
}

/// The longest cluster id, Flink's own limit (`MAXIMUM_CHARACTERS_OF_CLUSTER_ID`): the
/// id names Services and Deployments (63-character DNS labels) with suffixes such as
/// `-rest` appended. ConfigMap names may be longer (253).
pub const MAX_CLUSTER_ID_LENGTH: usize = 45;

/// Prefix of the per-component leader entries: `<prefix><component>` =
/// `"<session-uuid>,<address>"`.
pub const LEADER_ENTRY_PREFIX: &str = "org.apache.flink.k8s.leader.";

/// Components whose leader entries the cluster ConfigMap carries.
pub const DISPATCHER: &str = "dispatcher";
/// The ResourceManager's component name in its leader entry key.
pub const RESOURCE_MANAGER: &str = "resourcemanager";
/// The REST server's component name in its leader entry key.
pub const REST_SERVER: &str = "restserver";

/// The key of a job's completed checkpoint: this prefix and the id in 19 digits.
pub const CHECKPOINT_KEY_PREFIX: &str = "checkpointID-";
/// How many digits the checkpoint id has in a checkpoint key (zero-padded).
pub const CHECKPOINT_ID_DIGITS: usize = 19;

/// The key of a job's execution plan in the cluster ConfigMap: this prefix and the job id.
pub const EXECUTION_PLAN_KEY_PREFIX: &str = "executionPlan-";

/// The plans' key prefix up to Flink 1.20 (`jobGraph-<job-id>`).
pub const LEGACY_JOB_GRAPH_KEY_PREFIX: &str = "jobGraph-";

/// The key of a job's checkpoint id counter in its job ConfigMap.
pub const COUNTER_KEY: &str = "counter";

/// What starts the Base64 text of a Java serialization stream (magic `AC ED 00 05`): every
/// value Flink writes under its pointer keys (`executionPlan-`, `jobGraph-`,
/// `checkpointID-`) does, and Flink fails to start on anything else there.
pub const JAVA_SERIALIZED_BASE64_PREFIX: &str = "rO0AB";

/// The prefix of every data key `flink-ha jobmanager` writes into the HA ConfigMaps. Its
/// pointers are not Flink's Java-serialized handles, so they never go under Flink's keys
/// (a Flink JobManager would read them and crash); Flink reads no key with this prefix.
pub const RUNTIME_KEY_PREFIX: &str = "flink-ha.";
/// The runtime's execution plans in the cluster ConfigMap: this prefix and the job id.
pub const RUNTIME_EXECUTION_PLAN_KEY_PREFIX: &str = "flink-ha.executionPlan-";
/// The runtime's completed checkpoints in a job ConfigMap: this prefix and 19 digits.
pub const RUNTIME_CHECKPOINT_KEY_PREFIX: &str = "flink-ha.checkpointID-";
/// The runtime's checkpoint id counter in a job ConfigMap.
pub const RUNTIME_COUNTER_KEY: &str = "flink-ha.counter";

/// The leader address key of Flink's per-component leader ConfigMaps (up to 1.14).
pub const LEGACY_LEADER_ADDRESS_KEY: &str = "address";

/// Flink's election defaults (`high-availability.kubernetes.leader-election.*`,
/// `kubernetes.transactional-operation.max-retries`); `options.rs` holds the same values
/// as option defaults, and a test keeps the two equal.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long a leader keeps trying to renew its lease before it steps down
/// (`high-availability.kubernetes.leader-election.renew-deadline`).
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(15);
/// The pause between attempts to acquire or renew the lease
/// (`high-availability.kubernetes.leader-election.retry-period`).
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(5);
/// Retries of a ConfigMap compare-and-set after the first attempt
/// (`kubernetes.transactional-operation.max-retries`).
pub const DEFAULT_MAX_RETRIES: u32 = 15;

/// `<cluster-id>-cluster-config-map`: the lock, the leader entries, the execution plans.
pub fn cluster_config_map(cluster_id: &str) -> String {
    format!("{cluster_id}{CLUSTER_CONFIG_MAP_SUFFIX}")
}

/// `<cluster-id>-<job-id>-config-map`: a job's checkpoint counter and pointers.
pub fn job_config_map(cluster_id: &str, job_id: &str) -> String {
    format!("{cluster_id}-{job_id}{JOB_CONFIG_MAP_SUFFIX}")
}

const CLUSTER_CONFIG_MAP_SUFFIX: &str = "-cluster-config-map";
const JOB_CONFIG_MAP_SUFFIX: &str = "-config-map";
/// Flink before 1.15 kept one ConfigMap per component and per job.
const LEGACY_COMPONENT_SUFFIXES: [&str; 3] = ["-dispatcher-leader", "-resourcemanager-leader", "-restserver-leader"];
const LEGACY_JOB_SUFFIX: &str = "-jobmanager-leader";

/// `[a-z]([-a-z0-9]*[a-z0-9])?`, at most `max` characters.
pub fn is_valid_cluster_id(id: &str, max: usize) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !id.ends_with('-')
}

/// Explains why a cluster id is invalid.
pub fn cluster_id_problem(id: &str, max: usize) -> String {
    let len = id.chars().count();
    if len > max {
        format!("is {len} characters long (at most {max})")
    } else if id.is_empty() {
        "is empty".to_string()
    } else if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        "must start with a lower-case letter".to_string()
    } else if id.ends_with('-') {
        "must not end with `-`".to_string()
    } else {
        "may only contain lower-case letters, digits and `-`".to_string()
    }
}

/// A cluster id, checked when made: what `kubernetes.cluster-id` may be
/// ([`is_valid_cluster_id`] with [`MAX_CLUSTER_ID_LENGTH`]). It names every HA ConfigMap
/// of the cluster. Derefs to `str`, so it goes wherever a name is built.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(String);

/// Why a text is not a [`ClusterId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cluster id `{id}` {problem}")]
pub struct InvalidClusterId {
    /// The text.
    pub id: String,
    /// What is wrong with it ([`cluster_id_problem`]).
    pub problem: String,
}

impl ClusterId {
    /// The cluster id `text` spells, or why it is not one.
    pub fn parse(text: &str) -> Result<ClusterId, InvalidClusterId> {
        if is_valid_cluster_id(text, MAX_CLUSTER_ID_LENGTH) {
            Ok(ClusterId(text.to_owned()))
        } else {
            Err(InvalidClusterId {
                id: text.to_owned(),
                problem: cluster_id_problem(text, MAX_CLUSTER_ID_LENGTH),
            })
        }
    }
}

/// A Flink job id: 32 lower-case hex digits.
pub fn is_job_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A Flink job id, checked when made: 32 lower-case hex digits, as Flink's `JobID` names
/// job ConfigMaps (`<cluster-id>-<job-id>-config-map`) and keys (`executionPlan-<job-id>`).
/// The runtime takes one wherever a job's data is named, so no unchecked text reaches a
/// ConfigMap name. Derefs to `str`, as [`ClusterId`] does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(String);

/// Why a text is not a [`JobId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Flink job id (32 lower-case hex digits)")]
pub struct InvalidJobId(pub String);

impl JobId {
    /// The job id `text` spells, or why it is not one.
    pub fn parse(text: &str) -> Result<JobId, InvalidJobId> {
        if is_job_id(text) {
            Ok(JobId(text.to_owned()))
        } else {
            Err(InvalidJobId(text.to_owned()))
        }
    }

    /// The id of Flink's `JobID(upper, lower)`: its two longs in hex, as Flink prints it.
    pub fn from_parts(upper: u64, lower: u64) -> JobId {
        JobId(format!("{upper:016x}{lower:016x}"))
    }
}

/// What both checked ids share, on top of their own `parse`: they read as the text they
/// hold (`as_str`, `Deref` and `AsRef` to `str`, `Display`), compare with text, and
/// parse with `str::parse`.
macro_rules! checked_id {
    ($id:ident, $invalid:ident) => {
        impl $id {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $id {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $id {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $id {
            type Err = $invalid;

            fn from_str(text: &str) -> Result<$id, $invalid> {
                $id::parse(text)
            }
        }

        impl PartialEq<str> for $id {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $id {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

checked_id!(ClusterId, InvalidClusterId);
checked_id!(JobId, InvalidJobId);

/// Which of Flink's HA ConfigMaps a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaConfigMapName<'a> {
    /// `<cluster-id>-cluster-config-map`.
    Cluster {
        /// The cluster id.
        cluster_id: &'a str,
    },
    /// `<cluster-id>-<job-id>-config-map`.
    Job {
        /// The cluster id.
        cluster_id: &'a str,
        /// The job id: 32 lower-case hex digits.
        job_id: &'a str,
    },
    /// A name of Flink before 1.15 (`<cluster-id>-dispatcher-leader`,
    /// `<cluster-id>-<job-id>-jobmanager-leader`, ...).
    Legacy {
        /// The cluster id.
        cluster_id: &'a str,
    },
}

impl<'a> HaConfigMapName<'a> {
    /// The name's kind and parts, if it has one of Flink's HA patterns.
    pub fn parse(name: &'a str) -> Option<HaConfigMapName<'a>> {
        if let Some(cluster_id) = name.strip_suffix(CLUSTER_CONFIG_MAP_SUFFIX) {
            return (!cluster_id.is_empty()).then_some(HaConfigMapName::Cluster { cluster_id });
        }
        for suffix in LEGACY_COMPONENT_SUFFIXES {
            if let Some(cluster_id) = name.strip_suffix(suffix) {
                return (!cluster_id.is_empty()).then_some(HaConfigMapName::Legacy { cluster_id });
            }
        }
        for suffix in [JOB_CONFIG_MAP_SUFFIX, LEGACY_JOB_SUFFIX] {
            if let Some(rest) = name.strip_suffix(suffix)
                && let Some((cluster_id, job_id)) = rest.rsplit_once('-')
                && is_job_id(job_id)
                && !cluster_id.is_empty()
            {
                return Some(if suffix == JOB_CONFIG_MAP_SUFFIX {
                    HaConfigMapName::Job { cluster_id, job_id }
                } else {
                    HaConfigMapName::Legacy { cluster_id }
                });
            }
        }
        None
    }

    /// The cluster id the name carries.
    pub fn cluster_id(&self) -> &'a str {
        match *self {
            HaConfigMapName::Cluster { cluster_id }
            | HaConfigMapName::Job { cluster_id, .. }
            | HaConfigMapName::Legacy { cluster_id } => cluster_id,
        }
    }
}

/// Whether `name` is a job ConfigMap of `cluster_id`: `<cluster-id>-<32 hex>-config-map`.
pub fn is_job_config_map(cluster_id: &str, name: &str) -> bool {
    matches!(HaConfigMapName::parse(name), Some(HaConfigMapName::Job { cluster_id: id, .. }) if id == cluster_id)
}

/// The data key of a component's leader entry.
pub fn leader_entry_key(component: &str) -> String {
    format!("{LEADER_ENTRY_PREFIX}{component}")
}

/// The leader entry component of a job's JobMaster (`job-<job-id>` since Flink 1.19).
pub fn job_component(job_id: &str) -> String {
    format!("job-{job_id}")
}

/// `checkpointID-0000000000000000042`.
pub fn checkpoint_key(checkpoint_id: u64) -> String {
    key_with_id(CHECKPOINT_KEY_PREFIX, checkpoint_id)
}

/// The id in a checkpoint key written as Flink writes them (19 digits: Flink's ids are
/// non-negative `long`s); `None` for anything else.
pub fn checkpoint_id(key: &str) -> Option<u64> {
    id_in_key(CHECKPOINT_KEY_PREFIX, key)
}

fn key_with_id(prefix: &str, checkpoint_id: u64) -> String {
    format!("{prefix}{checkpoint_id:0width$}", width = CHECKPOINT_ID_DIGITS)
}

fn id_in_key(prefix: &str, key: &str) -> Option<u64> {
    let digits = key.strip_prefix(prefix)?;
    (digits.len() == CHECKPOINT_ID_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// `executionPlan-<job-id>`.
pub fn execution_plan_key(job_id: &str) -> String {
    format!("{EXECUTION_PLAN_KEY_PREFIX}{job_id}")
}

/// The runtime's checkpoint key: [`RUNTIME_CHECKPOINT_KEY_PREFIX`] and the id in 19
/// digits (sorted as text, like Flink's).
pub fn runtime_checkpoint_key(checkpoint_id: u64) -> String {
    key_with_id(RUNTIME_CHECKPOINT_KEY_PREFIX, checkpoint_id)
}

/// The id in a runtime checkpoint key; `None` for anything else (Flink's keys included).
pub fn runtime_checkpoint_id(key: &str) -> Option<u64> {
    id_in_key(RUNTIME_CHECKPOINT_KEY_PREFIX, key)
}

/// `flink-ha.executionPlan-<job-id>`: the runtime's plan key.
pub fn runtime_execution_plan_key(job_id: &str) -> String {
    format!("{RUNTIME_EXECUTION_PLAN_KEY_PREFIX}{job_id}")
}

/// Whether a data key is one of Flink's pointer keys, whose values Flink decodes as
/// Base64 Java serialization (plans of 2.x and 1.x, checkpoints).
pub fn is_flink_pointer_key(key: &str) -> bool {
    key.starts_with(EXECUTION_PLAN_KEY_PREFIX)
        || key.starts_with(LEGACY_JOB_GRAPH_KEY_PREFIX)
        || key.starts_with(CHECKPOINT_KEY_PREFIX)
}

/// The labels every HA ConfigMap carries from creation: exactly Flink 2.x's.
pub fn ha_labels(cluster_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_APP.to_string(), cluster_id.to_string()),
        (LABEL_TYPE.to_string(), LABEL_TYPE_VALUE.to_string()),
    ])
}

/// The label selector that finds every HA ConfigMap of a cluster (Flink 2.x's: it no
/// longer sets `configmap-type`).
pub fn ha_selector(cluster_id: &str) -> String {
    format!("{LABEL_APP}={cluster_id},{LABEL_TYPE}={LABEL_TYPE_VALUE}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options;

    #[test]
    fn a_cluster_id_is_checked_when_made() {
        let id = ClusterId::parse("orders-eu-1").expect("valid");
        assert_eq!(id.as_str(), "orders-eu-1");
        assert_eq!(cluster_config_map(&id), "orders-eu-1-cluster-config-map");
        for (bad, problem) in [
            ("", "is empty"),
            ("Orders", "must start with a lower-case letter"),
            ("orders-", "must not end with `-`"),
            ("orders_eu", "may only contain lower-case letters, digits and `-`"),
        ] {
            assert_eq!(
                ClusterId::parse(bad).expect_err(bad).to_string(),
                format!("cluster id `{bad}` {problem}")
            );
        }
        let long = "a".repeat(MAX_CLUSTER_ID_LENGTH + 1);
        assert!(ClusterId::parse(&long).is_err());
    }

    #[test]
    fn a_job_id_is_checked_when_made() {
        let id = JobId::parse("e1b2c3d4e5f60718293a4b5c6d7e8f90").expect("valid");
        assert_eq!(id.as_str(), "e1b2c3d4e5f60718293a4b5c6d7e8f90");
        assert_eq!(id.to_string(), "e1b2c3d4e5f60718293a4b5c6d7e8f90");
        assert_eq!(JobId::from_parts(0xe1b2_c3d4_e5f6_0718, 0x293a_4b5c_6d7e_8f90), id);
        assert_eq!(JobId::from_parts(0, 1).as_str(), "00000000000000000000000000000001");
        for bad in [
            "",
            "E1B2C3D4E5F60718293A4B5C6D7E8F90",
            "e1b2c3d4e5f60718293a4b5c6d7e8f9",
            "e1b2c3d4e5f60718293a4b5c6d7e8f9g",
            "../x",
        ] {
            let error = JobId::parse(bad).expect_err(bad);
            assert_eq!(
                error.to_string(),
                format!("`{bad}` is not a Flink job id (32 lower-case hex digits)")
            );
        }
    }

    const JOB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn names_round_trip_through_their_parser() {
        assert_eq!(cluster_config_map("orders"), "orders-cluster-config-map");
        assert_eq!(
            HaConfigMapName::parse(&cluster_config_map("orders")),
            Some(HaConfigMapName::Cluster { cluster_id: "orders" })
        );
        let job = job_config_map("my-orders", JOB);
        assert_eq!(job, format!("my-orders-{JOB}-config-map"));
        assert_eq!(
            HaConfigMapName::parse(&job),
            Some(HaConfigMapName::Job {
                cluster_id: "my-orders",
                job_id: JOB
            })
        );
        assert!(is_job_config_map("my-orders", &job));
        assert!(!is_job_config_map("orders", &job));
        assert_eq!(
            HaConfigMapName::parse("orders-dispatcher-leader").map(|n| n.cluster_id()),
            Some("orders")
        );
        assert_eq!(
            HaConfigMapName::parse(&format!("orders-{JOB}-jobmanager-leader")),
            Some(HaConfigMapName::Legacy { cluster_id: "orders" })
        );
        for other in [
            "flink-config-orders",
            "pod-template-orders",
            "-cluster-config-map",
            "orders-config-map",
            "orders-A1B2C3D4E5F60718293A4B5C6D7E8F90-config-map",
        ] {
            assert_eq!(HaConfigMapName::parse(other), None, "{other}");
        }
    }

    #[test]
    fn keys_follow_flink() {
        assert_eq!(checkpoint_key(42), "checkpointID-0000000000000000042");
        assert_eq!(checkpoint_id(&checkpoint_key(42)), Some(42));
        assert_eq!(checkpoint_id(&checkpoint_key(i64::MAX as u64)), Some(i64::MAX as u64));
        // Keys sort as ids do.
        let mut keys = [checkpoint_key(10), checkpoint_key(9), checkpoint_key(100)];
        keys.sort();
        assert_eq!(keys.map(|k| checkpoint_id(&k)), [Some(9), Some(10), Some(100)]);
        assert_eq!(checkpoint_id("checkpointID-42"), None);
        assert_eq!(checkpoint_id("checkpointID-00000000000000000x2"), None);
        assert_eq!(checkpoint_id(COUNTER_KEY), None);
        assert_eq!(execution_plan_key(JOB), format!("executionPlan-{JOB}"));
        assert_eq!(
            leader_entry_key(&job_component(JOB)),
            format!("org.apache.flink.k8s.leader.job-{JOB}")
        );
        assert_eq!(ha_selector("orders"), "app=orders,type=flink-native-kubernetes");
    }

    #[test]
    fn the_election_defaults_are_the_option_table_defaults() {
        let default = |spec: &options::OptionSpec| spec.default.unwrap_or_default();
        let duration = |spec| crate::duration::parse(default(spec)).ok();
        assert_eq!(duration(options::LEASE_DURATION), Some(DEFAULT_LEASE_DURATION));
        assert_eq!(duration(options::RENEW_DEADLINE), Some(DEFAULT_RENEW_DEADLINE));
        assert_eq!(duration(options::RETRY_PERIOD), Some(DEFAULT_RETRY_PERIOD));
        assert_eq!(default(options::MAX_RETRIES).parse().ok(), Some(DEFAULT_MAX_RETRIES));
    }

    #[test]
    fn the_longest_cluster_id_leaves_room_for_every_suffix() {
        let id = "a".repeat(MAX_CLUSTER_ID_LENGTH);
        assert!(format!("{id}-rest").len() <= 63);
        assert!(job_config_map(&id, JOB).len() <= 253);
        assert!(is_valid_cluster_id(&id, MAX_CLUSTER_ID_LENGTH));
    }
}
