//! The rule catalogue: stable ids, default severities, titles and explanations.
//!
//! Ids never change meaning; tools, CI configurations and people key on them. New rules
//! get new ids in the family they belong to.

use serde::{Serialize, Serializer};

/// How much a finding matters. `Error` blocks (lint exits 1, the webhook denies),
/// `Warning` is shown (webhook warnings), `Info` appears only in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks: `flink-ha lint` exits 1 and the webhook denies.
    Error,
    /// Shown, but does not block (an admission warning in the webhook).
    Warning,
    /// Appears only in reports.
    Info,
}

impl Severity {
    /// The severity's name in lower case (`error`), as reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

macro_rules! catalogue {
    ($( $variant:ident => ($sev:ident, $title:literal, $explanation:literal), )*) => {
        /// A rule's stable identifier, serialized as its id (`"HA103"`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId {
            $(
                #[doc = concat!("`", stringify!($variant), "`: ", $title, ".")]
                $variant,
            )*
        }

        /// Every rule, in catalogue order.
        pub const ALL: &[RuleId] = &[ $( RuleId::$variant, )* ];

        impl RuleId {
            /// The rule's id (`HA103`).
            pub fn as_str(self) -> &'static str {
                match self { $( RuleId::$variant => stringify!($variant), )* }
            }

            /// The severity the rule reports with unless a finding says otherwise.
            pub fn severity(self) -> Severity {
                match self { $( RuleId::$variant => Severity::$sev, )* }
            }

            /// A short title of what the rule finds.
            pub fn title(self) -> &'static str {
                match self { $( RuleId::$variant => $title, )* }
            }

            /// What the rule checks and why it matters, in a few sentences.
            pub fn explanation(self) -> &'static str {
                match self { $( RuleId::$variant => $explanation, )* }
            }
        }
    };
}

catalogue! {
    HA001 => (Error, "input cannot be read",
        "The input is not valid YAML, is not UTF-8, is too large or too deeply nested, has the wrong shape where a map is needed, or is an AdmissionReview that is not one. The position of the problem is given; nothing after it was linted."),
    HA002 => (Error, "duplicate key in config.yaml",
        "Flink 2.x reads config.yaml as standard YAML and refuses to start on a duplicate key. This includes the flat `high-availability: kubernetes` next to a nested `high-availability:` map, and a dotted key that a nested map also defines."),
    HA003 => (Warning, "flink-conf.yaml line that Flink skips",
        "Flink reads the legacy flink-conf.yaml line by line and silently skips a line without \": \" (colon and space), with an empty key or with an empty value. The option on that line never takes effect."),
    HA004 => (Warning, "flink-conf.yaml value changed by Flink's line parser",
        "The legacy parser keeps quotes as part of the value (`\"kubernetes\"` stays quoted) and cuts everything from the first `#`, even inside quotes. The value Flink sees is not the one written."),
    HA005 => (Info, "document not linted",
        "A document of a kind the linter does not know (a Service, a Secret, ...) was skipped."),
    HA006 => (Warning, "inline suppression that does not apply",
        "A `# flink-ha: ignore RULE -- reason` comment that names an unknown rule, gives no reason, or suppresses nothing (the finding it was written for is gone or on another line). Suppressions are decisions; the stale and unexplained ones are reported so they do not pile up."),
    HA101 => (Error, "kubernetes.cluster-id missing",
        "Kubernetes HA names its ConfigMaps after `kubernetes.cluster-id`; without it the JobManager stops with \"Configuration option 'kubernetes.cluster-id' is not set.\" A FlinkDeployment is exempt: its name is the cluster id."),
    HA102 => (Error, "invalid cluster id",
        "The cluster id becomes part of Kubernetes object names: it must match `[a-z]([-a-z0-9]*[a-z0-9])?` and be at most 45 characters, leaving room for suffixes in 63-character names. Flink checks neither everywhere; Kubernetes rejects the objects later."),
    HA103 => (Error, "high-availability.storageDir missing",
        "With HA on, the JobManager metadata (job graphs, checkpoint handles) is written to `high-availability.storageDir`; Kubernetes only holds pointers to it. Without it HA does not start."),
    HA104 => (Error, "storageDir is not an absolute URI",
        "A storageDir without a scheme or with a relative path resolves to the pod's local disk, which is lost with the pod, so recovery finds nothing."),
    HA105 => (Error, "object-store storageDir without bucket",
        "An object-store URI needs its bucket or container in the authority: `s3://bucket/flink/recovery`, `abfss://container@account.dfs.core.windows.net/flink`. Without it the file system cannot be created and HA fails at start."),
    HA106 => (Warning, "storageDir on the local file system",
        "A file:// storageDir is only safe on a volume shared by every JobManager that outlives the pods (a ReadWriteMany PersistentVolume); otherwise a new JobManager cannot read what the old one wrote."),
    HA107 => (Warning, "deprecated key",
        "A deprecated key still works but may be removed; the hint names the current key."),
    HA108 => (Warning, "deprecated and current key disagree",
        "Both a deprecated key and its current key are set with different values. Flink uses the current key; the deprecated one is dead configuration that misleads readers."),
    HA109 => (Error, "unknown high-availability type",
        "`high-availability.type` must be NONE, ZOOKEEPER or KUBERNETES (any case; `standalone` means NONE) or a factory class name. Flink loads any other string as a class name, so a typo only fails when the JobManager starts."),
    HA110 => (Error, "invalid duration",
        "Durations are an integer with an optional unit (`15 s`, `500ms`, `1 min`; no unit means milliseconds). The value does not parse, or is zero."),
    HA111 => (Error, "impossible leader-election timing",
        "Leader election needs lease-duration >= renew-deadline > retry-period: a leader must be able to renew several times before its lease runs out."),
    HA112 => (Warning, "leader-election timing without margin",
        "With lease-duration - renew-deadline < retry-period, or renew-deadline < 2 x retry-period, one slow API call can cost leadership or let two leaders overlap. Only checked when one of the three keys is set."),
    HA113 => (Error, "JobManager replicas without HA",
        "`kubernetes.jobmanager.replicas` above 1 needs HA (\"High availability should be enabled when starting standby JobManagers.\"), and below 1 is refused."),
    HA114 => (Warning, "HA without checkpointing",
        "Kubernetes HA is on but `execution.checkpointing.interval` is unset: after a failover the job is recovered but starts from scratch."),
    HA115 => (Warning, "many retained checkpoints",
        "Every retained checkpoint adds a pointer to the job's ConfigMap, which holds at most 1 MiB; above 100 it grows toward that limit."),
    HA116 => (Warning, "two different cluster ids",
        "`high-availability.cluster-id` differs from `kubernetes.cluster-id`: the HA ConfigMaps and the storage path are named after different ids, which confuses cleanup and recovery."),
    HA117 => (Warning, "HA cluster id not set",
        "A standalone deployment does not derive `high-availability.cluster-id` from `kubernetes.cluster-id`: its payloads land in `<storageDir>/default/`, shared with every other standalone cluster on that storageDir. Native deployments and the operator derive it."),
    HA118 => (Error, "value of the wrong type",
        "A known option has a value Flink cannot convert to its type (an integer, a boolean, one of a set of words); Flink fails when it reads it."),
    HA201 => (Error, "HA ConfigMap with owner references",
        "HA ConfigMaps must have no owner: the garbage collector deletes an owned ConfigMap with its owner (the JobManager Deployment), and every job's HA metadata goes with it. Create and update with ownerReferences are denied."),
    HA202 => (Warning, "HA ConfigMap labels do not match",
        "HA ConfigMaps carry `app=<cluster-id>` and `type=flink-native-kubernetes`; cleanup by label and watches miss a ConfigMap without them."),
    HA203 => (Info, "flink-config ConfigMap without owner",
        "`flink-config-<id>` is owned by the JobManager Deployment when Flink creates it; without an owner reference nothing removes it when the cluster goes."),
    HA204 => (Error, "ConfigMap too large",
        "A ConfigMap holds at most 1 MiB of data (keys and values); the API server rejects more. Above 80 % it is a warning: a few more checkpoints or jobs and writes start failing."),
    HA205 => (Error, "HA state removed under a live leader",
        "While the lease over an HA ConfigMap is live, deleting it when it holds HA state (execution plans, checkpoint pointers, a counter or leader entries) crashes or silently resets the running cluster, and so does an update that takes such entries away otherwise than Flink does: a pointer not marked for deletion first, the counter while checkpoints stay, several leader entries at once without releasing the lock. The cluster ConfigMap carries the lease; a job ConfigMap (`<cluster-id>-<job-id>-config-map`: checkpoint pointers and counter, no lease) is judged by its cluster ConfigMap's, which the webhook looks up (`flink-ha review --context` reads it from a file). A cluster ConfigMap holding only the lock, as Flink's graceful shutdown leaves it, may be deleted, and so may its cluster's job ConfigMaps. Admission only; the webhook's settings can exempt a teardown or turn this rule off."),
    HA206 => (Warning, "malformed HA data",
        "An HA ConfigMap entry is not in the format Flink writes: checkpoint keys are `checkpointID-` and 19 digits, `counter` is a decimal, leader entries are `<uuid>,<address>`, the leader annotation is a JSON leader record. Flink may skip or fail on it."),
    HA207 => (Error, "value Flink cannot decode under a Flink key",
        "Flink reads `executionPlan-`, `jobGraph-` and `checkpointID-` entries as Base64 of a Java-serialized state handle (`rO0AB…`). Anything else there, such as a JSON pointer of `flink-ha jobmanager` before 0.2, makes every Flink JobManager that takes the lock fail at start (\"Illegal base64 character\"): a crash loop. The runtime writes its own pointers under `flink-ha.` keys."),
    HA208 => (Warning, "two HA implementations on one cluster id",
        "Flink's entries (`executionPlan-`, `checkpointID-`) and `flink-ha jobmanager`'s (`flink-ha.` keys) on one cluster id: a Flink JobManager and the runtime both ran jobs here. Neither runs the other's jobs, and each refuses or skips them: give each its own cluster id."),
    HA209 => (Error, "HA pointer whose payload is missing",
        "A plan or checkpoint pointer names a payload file that does not exist in the storageDir, or one of another size than the pointer records. A recovery through it fails (or reads something else); restore the payload, or restore the job by hand from its last external checkpoint. `flink-ha inspect` with storage access."),
    HA210 => (Error, "checkpoint counter behind the newest checkpoint",
        "A job's `counter` (the next checkpoint id) is not above the newest `checkpointID-` entry: the next checkpoint reuses an id and replaces a checkpoint a recovery may need. `flink-ha inspect`."),
    HA211 => (Warning, "HA pointer that cannot be followed",
        "A pointer that looks like Flink's (`rO0AB…`) or the runtime's (`flink-ha.` keys) but does not decode to a payload location, or names a payload outside the storageDir given (another bucket, endpoint or cluster folder). `flink-ha inspect`."),
    HA212 => (Warning, "HA state of a cluster that no longer exists",
        "HA ConfigMaps of a cluster id with no JobManager Deployment and no FlinkDeployment, and no live leader. A new cluster with this id recovers every job in them, possibly long finished. If they are done with, `flink-ha gc` removes them and their payloads. `flink-ha inspect`."),
    HA301 => (Error, "operator-owned key in flinkConfiguration",
        "The Flink Kubernetes Operator sets `kubernetes.cluster-id`, `kubernetes.namespace` and `high-availability.cluster-id` from the resource itself; setting them in flinkConfiguration conflicts with it."),
    HA302 => (Error, "last-state upgrade without HA",
        "`upgradeMode: last-state` restores from the HA metadata; without HA there is nothing to restore from."),
    HA303 => (Error, "JobManager replicas without HA",
        "`spec.jobManager.replicas` above 1 needs HA (standby JobManagers), and below 1 is refused."),
    HA304 => (Error, "FlinkDeployment name not a valid cluster id",
        "The resource name becomes the cluster id and part of object names: it must match `[a-z]([-a-z0-9]{0,43}[a-z0-9])?`."),
    HA305 => (Error, "stateful upgrade without a checkpoint directory",
        "`last-state` and `savepoint` upgrade modes need `execution.checkpointing.dir` (deprecated `state.checkpoints.dir`)."),
    HA401 => (Error, "standby JobManagers without HA",
        "A JobManager Deployment with more than one replica whose flink-config ConfigMap (same cluster id) has HA off: the replicas fight over the same cluster with no leader election."),
    HA402 => (Warning, "one cluster id, several storageDirs",
        "The same cluster id is configured with different storageDir values in one bundle: after a restart the cluster may look for its metadata in the wrong place."),
}

impl RuleId {
    /// The rule with this id, ignoring case (`ha103` is `HA103`).
    pub fn parse(id: &str) -> Option<RuleId> {
        ALL.iter().copied().find(|r| r.as_str().eq_ignore_ascii_case(id))
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One catalogue entry, as `flink-ha rules --format json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Rule {
    /// The rule's id.
    pub id: RuleId,
    /// The severity the rule reports with.
    pub severity: Severity,
    /// A short title of what the rule finds.
    pub title: &'static str,
    /// What the rule checks and why it matters.
    pub explanation: &'static str,
}

/// The catalogue as `flink-ha rules --format json` prints it (indented JSON, no newline):
/// one function so the CLI, the browser and the component print the same bytes.
pub fn catalogue_json() -> String {
    serde_json::to_string_pretty(&catalogue()).unwrap_or_default()
}

/// The whole catalogue.
pub fn catalogue() -> Vec<Rule> {
    ALL.iter()
        .map(|&id| Rule {
            id,
            severity: id.severity(),
            title: id.title(),
            explanation: id.explanation(),
        })
        .collect()
}
