//! The Flink options the linter knows: keys, deprecated spellings, defaults and types.
//!
//! One table feeds effective-value lookup, the deprecation rules (HA107/HA108), the type
//! checks (HA118) and the JSON Schema (`flink-ha schema`), so they cannot drift apart.

use std::sync::LazyLock;

use memchr::memmem;

/// What a value must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionType {
    /// Any text.
    String,
    /// Flink `TimeUtils` duration (checked by HA110, not by the type check).
    Duration,
    /// A decimal integer no smaller than `min`.
    Integer {
        /// The smallest value allowed.
        min: i64,
    },
    /// `true` or `false`, case-insensitive.
    Boolean,
}

/// One Flink option: its key, older spellings, default, type and description.
#[derive(Debug)]
pub struct OptionSpec {
    /// The current key.
    pub key: &'static str,
    /// Older keys Flink still reads, highest precedence first.
    pub deprecated: &'static [&'static str],
    /// Flink's default value, as text, if there is one.
    pub default: Option<&'static str>,
    /// The Flink version that introduced `key`, when its deprecated keys are older.
    pub since: Option<&'static str>,
    /// What a value must look like.
    pub ty: OptionType,
    /// One sentence on what the option does (shown in the JSON Schema).
    pub description: &'static str,
}

/// `high-availability.type`: which HA services run.
pub const HA_TYPE: &OptionSpec = &OptionSpec {
    key: "high-availability.type",
    deprecated: &["high-availability", "recovery.mode"],
    default: Some("NONE"),
    since: Some("1.16"),
    ty: OptionType::String,
    description: "High-availability mode: NONE, ZOOKEEPER, KUBERNETES (case-insensitive) or the factory class of a custom HA service.",
};

/// `high-availability.storageDir`: where HA metadata is written.
pub const STORAGE_DIR: &OptionSpec = &OptionSpec {
    key: "high-availability.storageDir",
    deprecated: &[
        "high-availability.zookeeper.storageDir",
        "recovery.zookeeper.storageDir",
    ],
    default: None,
    since: None,
    ty: OptionType::String,
    description: "Durable storage for JobManager metadata (an absolute URI such as s3://bucket/flink/recovery). Kubernetes holds only pointers to it.",
};

/// `high-availability.cluster-id`: the cluster's directory under the storage dir.
pub const HA_CLUSTER_ID: &OptionSpec = &OptionSpec {
    key: "high-availability.cluster-id",
    deprecated: &[
        "high-availability.zookeeper.path.namespace",
        "recovery.zookeeper.path.namespace",
    ],
    default: Some("/default"),
    since: None,
    ty: OptionType::String,
    description: "Id of the cluster in HA storage: payloads go to <storageDir>/<this id>/. Native Kubernetes deployments set it to kubernetes.cluster-id; standalone ones do not.",
};

/// `kubernetes.cluster-id`: the cluster id on Kubernetes, which names the HA ConfigMaps.
pub const K8S_CLUSTER_ID: &OptionSpec = &OptionSpec {
    key: "kubernetes.cluster-id",
    deprecated: &[],
    default: None,
    since: None,
    ty: OptionType::String,
    description: "Cluster id on Kubernetes: names the HA ConfigMaps. [a-z]([-a-z0-9]*[a-z0-9])?, at most 45 characters.",
};

/// `kubernetes.namespace`: the namespace of the cluster's Kubernetes objects.
pub const K8S_NAMESPACE: &OptionSpec = &OptionSpec {
    key: "kubernetes.namespace",
    deprecated: &[],
    default: Some("default"),
    since: None,
    ty: OptionType::String,
    description: "Namespace of the cluster's Kubernetes objects.",
};

/// `kubernetes.jobmanager.replicas`: how many JobManager pods run.
pub const JM_REPLICAS: &OptionSpec = &OptionSpec {
    key: "kubernetes.jobmanager.replicas",
    deprecated: &[],
    default: Some("1"),
    since: None,
    ty: OptionType::Integer { min: 1 },
    description: "Number of JobManager pods; more than one needs HA (standbys).",
};

/// `high-availability.kubernetes.leader-election.lease-duration`.
pub const LEASE_DURATION: &OptionSpec = &OptionSpec {
    key: "high-availability.kubernetes.leader-election.lease-duration",
    deprecated: &[],
    default: Some("15 s"),
    since: None,
    ty: OptionType::Duration,
    description: "How long a leader lease is valid without renewal.",
};

/// `high-availability.kubernetes.leader-election.renew-deadline`.
pub const RENEW_DEADLINE: &OptionSpec = &OptionSpec {
    key: "high-availability.kubernetes.leader-election.renew-deadline",
    deprecated: &[],
    default: Some("15 s"),
    since: None,
    ty: OptionType::Duration,
    description: "How long a leader keeps trying to renew before it steps down.",
};

/// `high-availability.kubernetes.leader-election.retry-period`.
pub const RETRY_PERIOD: &OptionSpec = &OptionSpec {
    key: "high-availability.kubernetes.leader-election.retry-period",
    deprecated: &[],
    default: Some("5 s"),
    since: None,
    ty: OptionType::Duration,
    description: "Pause between attempts to acquire or renew the lease.",
};

/// `kubernetes.transactional-operation.max-retries`: retries of a ConfigMap compare-and-set.
pub const MAX_RETRIES: &OptionSpec = &OptionSpec {
    key: "kubernetes.transactional-operation.max-retries",
    deprecated: &[],
    default: Some("15"),
    since: None,
    ty: OptionType::Integer { min: 0 },
    description: "Retries of a ConfigMap compare-and-set after the first attempt (15 since Flink 1.20, 5 before).",
};

/// `execution.checkpointing.num-retained`: how many completed checkpoints are kept.
pub const NUM_RETAINED: &OptionSpec = &OptionSpec {
    key: "execution.checkpointing.num-retained",
    deprecated: &["state.checkpoints.num-retained"],
    default: Some("1"),
    since: Some("1.20"),
    ty: OptionType::Integer { min: 1 },
    description: "Completed checkpoints kept; each adds a pointer to the job ConfigMap.",
};

/// `execution.checkpointing.interval`: checkpointing is off when it is unset.
pub const CHECKPOINT_INTERVAL: &OptionSpec = &OptionSpec {
    key: "execution.checkpointing.interval",
    deprecated: &[],
    default: None,
    since: None,
    ty: OptionType::Duration,
    description: "Checkpoint interval; unset means checkpointing is off and recovered jobs start from scratch.",
};

/// `execution.checkpointing.dir`: where checkpoint data is written.
pub const CHECKPOINT_DIR: &OptionSpec = &OptionSpec {
    key: "execution.checkpointing.dir",
    deprecated: &["state.checkpoints.dir"],
    default: None,
    since: Some("1.20"),
    ty: OptionType::String,
    description: "Where checkpoint data is written.",
};

/// `job-result-store.storage-path`: where job results are stored.
pub const JOB_RESULT_STORE_PATH: &OptionSpec = &OptionSpec {
    key: "job-result-store.storage-path",
    deprecated: &[],
    default: None,
    since: None,
    ty: OptionType::String,
    description: "Where job results are stored; defaults to <storageDir>/job-result-store/<ha cluster-id>.",
};

/// `job-result-store.delete-on-commit`: whether a job result is deleted after cleanup.
pub const JOB_RESULT_STORE_DELETE: &OptionSpec = &OptionSpec {
    key: "job-result-store.delete-on-commit",
    deprecated: &[],
    default: Some("true"),
    since: None,
    ty: OptionType::Boolean,
    description: "Whether a job result is deleted once its cleanup has finished.",
};

/// `fs.default-scheme`: the scheme used for paths without one.
pub const DEFAULT_SCHEME: &OptionSpec = &OptionSpec {
    key: "fs.default-scheme",
    deprecated: &[],
    default: None,
    since: None,
    ty: OptionType::String,
    description: "Scheme (and authority) used for paths without one.",
};

/// Every option the linter knows, in the order the schema lists them.
pub const ALL: &[&OptionSpec] = &[
    HA_TYPE,
    STORAGE_DIR,
    HA_CLUSTER_ID,
    K8S_CLUSTER_ID,
    K8S_NAMESPACE,
    JM_REPLICAS,
    LEASE_DURATION,
    RENEW_DEADLINE,
    RETRY_PERIOD,
    MAX_RETRIES,
    NUM_RETAINED,
    CHECKPOINT_INTERVAL,
    CHECKPOINT_DIR,
    JOB_RESULT_STORE_PATH,
    JOB_RESULT_STORE_DELETE,
    DEFAULT_SCHEME,
];

/// Substrings (case-insensitive) of keys whose values Flink masks in its logs; the
/// linter never prints such a value either.
const SENSITIVE: &[&str] = &[
    "password",
    "secret",
    "fs.azure.account.key",
    "apikey",
    "auth-params",
    "service-key",
    "token",
    "basic-auth",
    "jaas.config",
    "http-headers",
];

/// What a sensitive value is shown as.
pub const MASK: &str = "******";

/// Whether Flink masks the values of `key` in its logs (so the linter never prints them).
pub fn is_sensitive(key: &str) -> bool {
    // One searcher per marker, built once (per instance, in the component): a
    // substring search set up anew per key and marker cost more than the search.
    static FINDERS: LazyLock<Vec<memmem::Finder<'static>>> =
        LazyLock::new(|| SENSITIVE.iter().map(memmem::Finder::new).collect());
    let key = key.to_ascii_lowercase();
    FINDERS.iter().any(|f| f.find(key.as_bytes()).is_some())
}

/// A value as it may appear in a message: masked for sensitive keys, shortened when long.
pub fn display_value(key: &str, value: &str) -> String {
    if is_sensitive(key) {
        return MASK.to_string();
    }
    const MAX: usize = 80;
    if value.chars().count() > MAX {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        value.to_string()
    }
}

/// The current key for a deprecated one, if `key` is deprecated.
pub fn current_for(key: &str) -> Option<&'static OptionSpec> {
    ALL.iter().copied().find(|o| o.deprecated.contains(&key))
}

/// The option whose current key is `key`, if the linter knows it.
pub fn by_key(key: &str) -> Option<&'static OptionSpec> {
    ALL.iter().copied().find(|o| o.key == key)
}

/// The factory class name `high-availability.type` may name instead of `kubernetes`.
pub const KUBERNETES_FACTORY: &str = "org.apache.flink.kubernetes.highavailability.KubernetesHaServicesFactory";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_page_masks_the_same_keys_in_share_links() {
        // web/src/share.js keeps its own copy (the page builds links without the core).
        let share = include_str!("../web/src/share.js");
        for marker in SENSITIVE {
            assert!(
                share.contains(&format!("'{marker}',")),
                "web/src/share.js does not mask `{marker}`"
            );
        }
        assert!(share.contains(&format!("'{MASK}'")));
    }
}
