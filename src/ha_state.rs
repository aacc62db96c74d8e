//! The HA state of running (or gone) clusters as their HA ConfigMaps and payloads tell it:
//! what `flink-ha inspect` prints and `flink-ha gc` acts on. Pure like the rest of the
//! core: the caller lists the ConfigMaps, finds the workloads, reads the payloads and the
//! API server's clock, and hands the facts in.
//!
//! ```text
//! ConfigMaps ─read_clusters─► ClusterState per (namespace, cluster id)
//!    caller: payload facts (head/read of each pointer's URI) ─► ClusterState::apply_payloads
//!    caller: Deployments / FlinkDeployments with that id     ─► ClusterState::existence
//! ─► state_findings (HA209–HA212) ─► render_text / JSON
//! ```
//!
//! Both writers' layouts are read: Flink's (`executionPlan-`, `checkpointID-`, `counter`,
//! Java-serialized pointers) and the runtime's (`flink-ha.` keys, JSON pointers).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use serde::Serialize;
use thiserror::Error;

use crate::finding::Finding;
use crate::flink_state::{self, CompletedCheckpointInfo, HaPointer, PointerFormat};
use crate::ha_layout::{
    self, CONFIGMAP_LIMIT, COUNTER_KEY, EXECUTION_PLAN_KEY_PREFIX, HaConfigMapName, LEADER_ENTRY_PREFIX,
    LEGACY_JOB_GRAPH_KEY_PREFIX, RUNTIME_COUNTER_KEY, RUNTIME_EXECUTION_PLAN_KEY_PREFIX,
};
use crate::leader_record::{ANNOTATION, LeaderRecord};
use crate::rules::RuleId;
use crate::yaml::{self, Node};

/// One ConfigMap as the tools need it, from the API or from a `kubectl get -o yaml` dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigMapRecord {
    /// `metadata.namespace` (`default` when a dump leaves it out).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`, for delete preconditions.
    pub uid: Option<String>,
    /// `metadata.resourceVersion`, for delete preconditions.
    pub resource_version: Option<String>,
    /// `metadata.creationTimestamp`.
    pub creation_timestamp: Option<Timestamp>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.ownerReferences` as `Kind/name`.
    pub owner_references: Vec<String>,
    /// `data`.
    pub data: BTreeMap<String, String>,
    /// Decoded bytes of `binaryData` (keys and values).
    pub binary_data_bytes: usize,
}

impl ConfigMapRecord {
    /// Bytes counted against the 1 MiB limit: keys and values of `data` and `binaryData`
    /// (as HA204 counts them).
    pub fn size_bytes(&self) -> usize {
        let data: usize = self
            .data
            .iter()
            .map(|(k, v)| ha_layout::configmap_entry_bytes(k, v, false))
            .sum();
        data + self.binary_data_bytes
    }

    /// `namespace/ConfigMap/name`: how findings name a live object.
    pub fn object_path(&self) -> String {
        format!("{}/ConfigMap/{}", self.namespace, self.name)
    }

    /// Reads a ConfigMap object of a parsed manifest; `None` if it is not one.
    pub fn from_node(node: &Node) -> Option<ConfigMapRecord> {
        if node.str_at(&["kind"]) != Some("ConfigMap") {
            return None;
        }
        let string_map = |path: &[&str]| -> BTreeMap<String, String> {
            node.path(path)
                .and_then(Node::as_map)
                .unwrap_or(&[])
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str().unwrap_or("").to_owned())))
                .collect()
        };
        let binary_data_bytes = node
            .get("binaryData")
            .and_then(Node::as_map)
            .unwrap_or(&[])
            .iter()
            .map(|(k, v)| ha_layout::configmap_entry_bytes(k.as_str().unwrap_or(""), v.as_str().unwrap_or(""), true))
            .sum();
        let owner_references = node
            .path(&["metadata", "ownerReferences"])
            .and_then(Node::as_seq)
            .unwrap_or(&[])
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o.str_at(&["kind"]).unwrap_or("?"),
                    o.str_at(&["name"]).unwrap_or("?")
                )
            })
            .collect();
        Some(ConfigMapRecord {
            namespace: node
                .str_at(&["metadata", "namespace"])
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_owned(),
            name: node.str_at(&["metadata", "name"])?.to_owned(),
            uid: node.str_at(&["metadata", "uid"]).map(str::to_owned),
            resource_version: node
                .str_at(&["metadata", "resourceVersion"])
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            creation_timestamp: node
                .str_at(&["metadata", "creationTimestamp"])
                .and_then(|t| t.parse().ok()),
            labels: string_map(&["metadata", "labels"]),
            annotations: string_map(&["metadata", "annotations"]),
            owner_references,
            data: string_map(&["data"]),
            binary_data_bytes,
        })
    }
}

/// Why a dump could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DumpError {
    /// The YAML is broken.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// The parser's message.
        message: String,
    },
}

/// The ConfigMaps of a `kubectl get cm -o yaml` (or `-o json`) dump: a `List`, single
/// ConfigMaps, or several documents of either. Other kinds are skipped.
pub fn read_configmap_dump(text: &str) -> Result<Vec<ConfigMapRecord>, DumpError> {
    let stream = yaml::parse_stream(text);
    if let Some(error) = stream.error {
        return Err(DumpError::Syntax {
            line: error.pos.line,
            column: error.pos.column,
            message: error.message,
        });
    }
    let mut out = Vec::new();
    for document in stream.documents {
        let Some(root) = document.root else { continue };
        collect_configmaps(&root, &mut out, 0);
    }
    Ok(out)
}

fn collect_configmaps(node: &Node, out: &mut Vec<ConfigMapRecord>, depth: usize) {
    if let Some(record) = ConfigMapRecord::from_node(node) {
        out.push(record);
    } else if depth < 4
        && let Some(items) = node.get("items").and_then(Node::as_seq)
    {
        for item in items {
            collect_configmaps(item, out, depth + 1);
        }
    }
}

/// What the leader record of a cluster ConfigMap says at the time of the look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum LeaseState {
    /// Held: `renewTime + leaseDuration` is after now.
    Live {
        /// Who holds it.
        holder: String,
        /// Milliseconds until it expires unless renewed.
        expires_in_ms: i64,
    },
    /// Held by nobody since the holder stopped renewing.
    Expired {
        /// The last holder.
        holder: String,
        /// Milliseconds since it expired.
        expired_ms_ago: i64,
    },
    /// Given up (empty holder): a graceful stop.
    Released {
        /// Milliseconds since the last renewal (the release).
        released_ms_ago: i64,
    },
}

impl LeaseState {
    /// Whether a leader may still be acting.
    pub fn is_live(&self) -> bool {
        matches!(self, LeaseState::Live { .. })
    }

    /// Milliseconds since nobody holds the lock (0 while live).
    pub fn idle_ms(&self) -> i64 {
        match self {
            LeaseState::Live { .. } => 0,
            LeaseState::Expired { expired_ms_ago, .. } => *expired_ms_ago,
            LeaseState::Released { released_ms_ago } => *released_ms_ago,
        }
    }
}

/// A cluster's leader lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderInfo {
    /// Live, expired or released.
    #[serde(flatten)]
    pub state: LeaseState,
    /// The lease duration in milliseconds.
    pub lease_duration_ms: u64,
    /// When the holder acquired it.
    pub acquire_time: String,
    /// When it was last renewed.
    pub renew_time: String,
    /// `leaderTransitions`.
    pub transitions: u64,
}

/// A component's leader entry (`org.apache.flink.k8s.leader.<component>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderAddress {
    /// `dispatcher`, `resourcemanager`, `restserver`, `job-<id>`.
    pub component: String,
    /// The leader session id.
    pub session_id: String,
    /// The RPC address or REST URL.
    pub address: String,
}

/// What storage says about a pointer's payload (filled in by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum PayloadFact {
    /// It exists.
    Found {
        /// Its size in bytes.
        size: u64,
        /// Where it was read (the pointer's URI, or where a copy of the storageDir holds it).
        read_from: String,
    },
    /// It does not exist.
    Missing {
        /// Where it was looked for.
        looked_at: String,
    },
    /// Storage did not answer (not a verdict on the payload).
    Unreachable {
        /// The error.
        error: String,
    },
    /// It is not in the storageDir the tool was given: another bucket or folder.
    Foreign {
        /// The storageDir given.
        storage: String,
    },
}

/// A pointer entry of an HA ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PointerEntry {
    /// The ConfigMap holding it.
    pub configmap: String,
    /// Its data key.
    pub key: String,
    /// The decoded pointer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<HaPointer>,
    /// Why it could not be decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What storage says about the payload, if storage was looked at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadFact>,
}

impl PointerEntry {
    fn new(configmap: &str, key: &str, value: &str) -> PointerEntry {
        let (pointer, error) = match HaPointer::decode_entry(key, value) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e.to_string())),
        };
        PointerEntry {
            configmap: configmap.to_owned(),
            key: key.to_owned(),
            pointer,
            error,
            payload: None,
        }
    }

    /// The payload URI, if the pointer names a file.
    pub fn uri(&self) -> Option<&str> {
        self.pointer.as_ref()?.uri()
    }

    fn is_marked(&self) -> bool {
        self.pointer.as_ref().is_some_and(|p| p.marked_for_deletion)
    }
}

/// A completed checkpoint's pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointEntry {
    /// The checkpoint id from the key.
    pub id: u64,
    /// The pointer.
    #[serde(flatten)]
    pub entry: PointerEntry,
}

/// A job's checkpoint counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CounterEntry {
    /// The key (`counter`, `flink-ha.counter`).
    pub key: String,
    /// The next checkpoint id, if the value is a number.
    pub next_id: Option<u64>,
    /// The value as stored.
    pub value: String,
}

/// What the latest completed checkpoint's payload says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatestCheckpoint {
    /// Its id.
    pub checkpoint_id: u64,
    /// Read from the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<CompletedCheckpointInfo>,
    /// Why the payload could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether its `_metadata` and every state file it references exist, if the caller
    /// looked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wholeness: Option<Wholeness>,
}

/// Whether a checkpoint can be restored from: its `_metadata` read, and every state file
/// it references found with the size Flink recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Wholeness {
    /// Everything is there.
    Whole {
        /// State files referenced (inline state not counted).
        files: usize,
        /// Their recorded bytes.
        bytes: u64,
    },
    /// Files are missing or shorter than recorded.
    NotWhole {
        /// What is wrong, one entry per file.
        problems: Vec<String>,
    },
    /// It could not be told (the metadata unreadable, storage not answering).
    Unknown {
        /// Why.
        why: String,
    },
}

/// One job's HA state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobState {
    /// 32 hex digits.
    pub job_id: String,
    /// Which writer's layout: Flink's or the runtime's.
    pub format: PointerFormat,
    /// Its execution plan's pointer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PointerEntry>,
    /// Completed checkpoints, oldest first.
    pub checkpoints: Vec<CheckpointEntry>,
    /// The checkpoint id counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<CounterEntry>,
    /// The latest checkpoint's payload, if storage was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<LatestCheckpoint>,
}

impl JobState {
    /// The checkpoint a recovery starts from: the newest not marked for deletion.
    pub fn recovery_checkpoint(&self) -> Option<&CheckpointEntry> {
        self.checkpoints.iter().rev().find(|c| !c.entry.is_marked())
    }

    fn pointers_mut(&mut self) -> impl Iterator<Item = &mut PointerEntry> {
        self.plan
            .iter_mut()
            .chain(self.checkpoints.iter_mut().map(|c| &mut c.entry))
    }

    fn pointers(&self) -> impl Iterator<Item = &PointerEntry> {
        self.plan.iter().chain(self.checkpoints.iter().map(|c| &c.entry))
    }
}

/// One HA ConfigMap of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigMapSummary {
    /// Its name.
    pub name: String,
    /// `cluster`, `job` or `legacy`.
    pub role: &'static str,
    /// Bytes counted against the 1 MiB limit.
    pub size_bytes: usize,
    /// `ownerReferences` (`Kind/name`); HA ConfigMaps should have none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<String>,
    /// For delete preconditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// For delete preconditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// Whether a cluster still runs somewhere, as far as the caller could tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Existence {
    /// Not looked up (an offline dump).
    Unknown,
    /// A workload with this cluster id exists.
    Exists {
        /// `Deployment/<name>`, `FlinkDeployment/<name>`.
        workloads: Vec<String>,
    },
    /// Neither a JobManager Deployment nor a FlinkDeployment with this id.
    Gone,
}

/// One cluster id's HA state in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterState {
    /// The namespace.
    pub namespace: String,
    /// The cluster id.
    pub cluster_id: String,
    /// Its HA ConfigMaps.
    pub configmaps: Vec<ConfigMapSummary>,
    /// The leader lock, if the cluster ConfigMap has a readable record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderInfo>,
    /// Why there is no `leader`: no cluster ConfigMap, no record, or an unreadable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_problem: Option<String>,
    /// Leader entries of the components.
    pub addresses: Vec<LeaderAddress>,
    /// Jobs with a plan, checkpoints or a counter.
    pub jobs: Vec<JobState>,
    /// Whether the cluster still exists.
    pub existence: Existence,
}

impl ClusterState {
    /// Every payload URI a pointer names (plans and checkpoints), without repeats.
    pub fn payload_uris(&self) -> Vec<String> {
        let mut uris: Vec<String> = self
            .jobs
            .iter()
            .flat_map(JobState::pointers)
            .filter_map(|p| p.uri().map(str::to_owned))
            .collect();
        uris.sort();
        uris.dedup();
        uris
    }

    /// The pointers that could not be decoded, as `<configmap>/<key>: <why>`: what they
    /// name is unknown, so nothing may be judged unreferenced beside them.
    pub fn unreadable_pointers(&self) -> Vec<String> {
        self.jobs
            .iter()
            .flat_map(JobState::pointers)
            .filter_map(|p| p.error.as_ref().map(|e| format!("{}/{}: {e}", p.configmap, p.key)))
            .collect()
    }

    /// Records what storage said about each payload (looked up by URI).
    pub fn apply_payloads(&mut self, facts: &BTreeMap<String, PayloadFact>) {
        for job in &mut self.jobs {
            for pointer in job.pointers_mut() {
                if let Some(fact) = pointer.uri().and_then(|uri| facts.get(uri)) {
                    pointer.payload = Some(fact.clone());
                }
            }
        }
    }

    /// Whether a leader may still be acting.
    pub fn lease_is_live(&self) -> bool {
        self.leader.as_ref().is_some_and(|l| l.state.is_live())
    }
}

/// Groups HA ConfigMaps by (namespace, cluster id) and reads each cluster's state at
/// `now`. ConfigMaps that are not Flink HA ConfigMaps by exact name are ignored.
/// `cluster_filter` keeps one cluster id.
pub fn read_clusters(
    configmaps: &[ConfigMapRecord],
    now: Timestamp,
    cluster_filter: Option<&str>,
) -> Vec<ClusterState> {
    let mut groups: BTreeMap<(String, String), Vec<&ConfigMapRecord>> = BTreeMap::new();
    for cm in configmaps {
        let Some(name) = HaConfigMapName::parse(&cm.name) else {
            continue;
        };
        if cluster_filter.is_some_and(|id| id != name.cluster_id()) {
            continue;
        }
        groups
            .entry((cm.namespace.clone(), name.cluster_id().to_owned()))
            .or_default()
            .push(cm);
    }
    groups
        .into_iter()
        .map(|((namespace, cluster_id), cms)| read_cluster(namespace, cluster_id, &cms, now))
        .collect()
}

fn read_cluster(namespace: String, cluster_id: String, cms: &[&ConfigMapRecord], now: Timestamp) -> ClusterState {
    let mut configmaps = Vec::new();
    let mut leader = None;
    let mut leader_problem = Some("no cluster ConfigMap".to_owned());
    let mut addresses = Vec::new();
    let mut jobs: BTreeMap<(String, PointerFormat), JobState> = BTreeMap::new();
    for cm in cms {
        let role = match HaConfigMapName::parse(&cm.name) {
            Some(HaConfigMapName::Cluster { .. }) => "cluster",
            Some(HaConfigMapName::Job { .. }) => "job",
            _ => "legacy",
        };
        configmaps.push(ConfigMapSummary {
            name: cm.name.clone(),
            role,
            size_bytes: cm.size_bytes(),
            owner_references: cm.owner_references.clone(),
            uid: cm.uid.clone(),
            resource_version: cm.resource_version.clone(),
        });
        if role == "cluster" {
            match cm.annotations.get(ANNOTATION) {
                None => leader_problem = Some("no leader record (never led, or cleaned up)".to_owned()),
                Some(json) => match LeaderRecord::parse(json) {
                    Ok(record) => {
                        leader = Some(leader_info(&record, now));
                        leader_problem = None;
                    }
                    Err(e) => leader_problem = Some(format!("the leader record {e}")),
                },
            }
        }
        let job_of_cm = match HaConfigMapName::parse(&cm.name) {
            Some(HaConfigMapName::Job { job_id, .. }) => Some(job_id),
            _ => None,
        };
        for (key, value) in &cm.data {
            if let Some(component) = key.strip_prefix(LEADER_ENTRY_PREFIX) {
                let (session_id, address) = value.split_once(',').unwrap_or(("", value));
                addresses.push(LeaderAddress {
                    component: component.to_owned(),
                    session_id: session_id.to_owned(),
                    address: address.to_owned(),
                });
            } else if let Some(job_id) = key
                .strip_prefix(RUNTIME_EXECUTION_PLAN_KEY_PREFIX)
                .filter(|j| ha_layout::is_job_id(j))
            {
                job_entry(&mut jobs, job_id, PointerFormat::FlinkHaJson).plan =
                    Some(PointerEntry::new(&cm.name, key, value));
            } else if let Some(job_id) = key
                .strip_prefix(EXECUTION_PLAN_KEY_PREFIX)
                .or_else(|| key.strip_prefix(LEGACY_JOB_GRAPH_KEY_PREFIX))
                .filter(|j| ha_layout::is_job_id(j))
            {
                job_entry(&mut jobs, job_id, PointerFormat::FlinkJava).plan =
                    Some(PointerEntry::new(&cm.name, key, value));
            } else if let Some(job_id) = job_of_cm {
                let entry = if let Some(id) = ha_layout::runtime_checkpoint_id(key) {
                    Some((PointerFormat::FlinkHaJson, id))
                } else {
                    ha_layout::checkpoint_id(key).map(|id| (PointerFormat::FlinkJava, id))
                };
                if let Some((format, id)) = entry {
                    job_entry(&mut jobs, job_id, format).checkpoints.push(CheckpointEntry {
                        id,
                        entry: PointerEntry::new(&cm.name, key, value),
                    });
                } else if key == COUNTER_KEY || key == RUNTIME_COUNTER_KEY {
                    let format = if key == COUNTER_KEY {
                        PointerFormat::FlinkJava
                    } else {
                        PointerFormat::FlinkHaJson
                    };
                    job_entry(&mut jobs, job_id, format).counter = Some(CounterEntry {
                        key: key.clone(),
                        next_id: value.trim().parse().ok(),
                        value: value.clone(),
                    });
                }
            }
        }
    }
    let mut jobs: Vec<JobState> = jobs.into_values().collect();
    for job in &mut jobs {
        job.checkpoints.sort_by_key(|c| c.id);
    }
    configmaps.sort_by(|a, b| (a.role != "cluster", &a.name).cmp(&(b.role != "cluster", &b.name)));
    addresses.sort_by(|a, b| a.component.cmp(&b.component));
    ClusterState {
        namespace,
        cluster_id,
        configmaps,
        leader,
        leader_problem,
        addresses,
        jobs,
        existence: Existence::Unknown,
    }
}

fn job_entry<'m>(
    jobs: &'m mut BTreeMap<(String, PointerFormat), JobState>,
    job_id: &str,
    format: PointerFormat,
) -> &'m mut JobState {
    jobs.entry((job_id.to_owned(), format)).or_insert_with(|| JobState {
        job_id: job_id.to_owned(),
        format,
        plan: None,
        checkpoints: Vec::new(),
        counter: None,
        latest: None,
    })
}

fn leader_info(record: &LeaderRecord, now: Timestamp) -> LeaderInfo {
    let lease_ms = i64::try_from(record.lease_duration.as_millis()).unwrap_or(i64::MAX);
    let renewed_ms_ago = now.as_millisecond().saturating_sub(record.renew_time.as_millisecond());
    let state = if record.holder_identity.is_empty() {
        LeaseState::Released {
            released_ms_ago: renewed_ms_ago,
        }
    } else if renewed_ms_ago < lease_ms {
        LeaseState::Live {
            holder: record.holder_identity.clone(),
            expires_in_ms: lease_ms - renewed_ms_ago,
        }
    } else {
        LeaseState::Expired {
            holder: record.holder_identity.clone(),
            expired_ms_ago: renewed_ms_ago - lease_ms,
        }
    };
    LeaderInfo {
        state,
        lease_duration_ms: u64::try_from(lease_ms).unwrap_or(0),
        acquire_time: record.acquire_time.to_string(),
        renew_time: record.renew_time.to_string(),
        transitions: record.leader_transitions,
    }
}

/// Reads the latest completed checkpoint's payload into `job.latest` (Flink's format;
/// the runtime's payloads are the application's own bytes and are not interpreted).
pub fn apply_latest_checkpoint(job: &mut JobState, bytes: Result<&[u8], String>) {
    let Some(latest) = job.recovery_checkpoint() else {
        return;
    };
    let checkpoint_id = latest.id;
    let (info, error) = match bytes {
        Err(e) => (None, Some(e)),
        Ok(_) if job.format == PointerFormat::FlinkHaJson => (
            None,
            Some("a flink-ha runtime payload: the application's own bytes".to_owned()),
        ),
        Ok(bytes) => match flink_state::read_completed_checkpoint(bytes) {
            Ok(info) => (Some(info), None),
            Err(e) => (None, Some(format!("the payload {e}"))),
        },
    };
    job.latest = Some(LatestCheckpoint {
        checkpoint_id,
        info,
        error,
        wholeness: None,
    });
}

/// A finding on one live object (`namespace/ConfigMap/name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFinding {
    /// `namespace/ConfigMap/name`.
    pub object: String,
    /// The finding.
    pub finding: Finding,
}

/// HA209–HA212 on the clusters' state: dangling pointers and missing payloads, counters
/// behind their checkpoints, pointers that cannot be followed, and state of clusters that
/// are gone.
pub fn state_findings(clusters: &[ClusterState]) -> Vec<ObjectFinding> {
    let mut out = Vec::new();
    for cluster in clusters {
        let cm_path = |name: &str| format!("{}/ConfigMap/{}", cluster.namespace, name);
        for job in &cluster.jobs {
            for pointer in job.pointers() {
                let on = |finding: Finding| ObjectFinding {
                    object: cm_path(&pointer.configmap),
                    finding: finding.key(pointer.key.clone()),
                };
                if let Some(error) = &pointer.error
                    && pointer_is_ours_to_read(pointer)
                {
                    out.push(on(Finding::new(
                        RuleId::HA211,
                        format!("`{}` {error}", pointer.key),
                        "inspect cannot tell where its payload is; a Flink JobManager may fail on it too: compare it with `kubectl get cm -o yaml` and the JobManager log",
                    )));
                }
                match &pointer.payload {
                    Some(PayloadFact::Missing { looked_at }) => out.push(on(Finding::new(
                        RuleId::HA209,
                        format!("`{}` points at {looked_at}, which does not exist", pointer.key),
                        "a recovery through this pointer fails; restore the payload from a backup, or restore the job by hand from its last external checkpoint",
                    ))),
                    Some(PayloadFact::Found { size, read_from }) => {
                        let recorded = match pointer.pointer.as_ref().map(|p| &p.location) {
                            Some(flink_state::PayloadLocation::File { size: Some(s), .. }) => Some(*s),
                            _ => None,
                        };
                        if let Some(recorded) = recorded.filter(|r| r != size) {
                            out.push(on(Finding::new(
                                RuleId::HA209,
                                format!(
                                    "`{}` records a payload of {recorded} bytes; {read_from} has {size}",
                                    pointer.key
                                ),
                                "the payload was overwritten or truncated: a recovery through this pointer reads something else than was written",
                            )));
                        }
                    }
                    Some(PayloadFact::Foreign { storage }) => out.push(on(Finding::new(
                        RuleId::HA211,
                        format!(
                            "`{}` points at {}, outside the storageDir {storage}",
                            pointer.key,
                            pointer.uri().unwrap_or("?")
                        ),
                        "another bucket, endpoint or cluster folder: check `high-availability.storageDir` of every JobManager of this cluster id",
                    ))),
                    Some(PayloadFact::Unreachable { .. }) | None => {}
                }
            }
            let newest = job.checkpoints.iter().map(|c| c.id).max();
            if let (Some(counter), Some(newest)) = (&job.counter, newest)
                && let Some(next) = counter.next_id
                && next <= newest
            {
                let configmap = job.checkpoints.last().map_or("", |c| c.entry.configmap.as_str());
                out.push(ObjectFinding {
                    object: cm_path(configmap),
                    finding: Finding::new(
                        RuleId::HA210,
                        format!(
                            "`{}` is {next}, but checkpoint {newest} exists: the next checkpoint would reuse an id",
                            counter.key
                        ),
                        "a counter restored from an old copy or edited by hand; set it above the newest checkpoint id before the job takes a checkpoint",
                    )
                    .key(counter.key.clone()),
                });
            }
        }
        if cluster.existence == Existence::Gone && !cluster.lease_is_live() {
            let idle = cluster.leader.as_ref().map(|l| l.state.idle_ms());
            let since = match idle {
                Some(ms) => format!("; no leader for {}", human_ms(ms)),
                None => String::new(),
            };
            let anchor = cluster.configmaps.first().map_or("", |c| c.name.as_str());
            out.push(ObjectFinding {
                object: cm_path(anchor),
                finding: Finding::new(
                    RuleId::HA212,
                    format!(
                        "cluster `{}` has {} HA ConfigMap(s) and {} job(s) but no JobManager Deployment or FlinkDeployment{since}",
                        cluster.cluster_id,
                        cluster.configmaps.len(),
                        cluster.jobs.len()
                    ),
                    "a new cluster with this id recovers these jobs; if they are done with, `flink-ha gc` removes the state (dry run first)",
                ),
            });
        }
    }
    out
}

/// HA207 covers values under Flink's keys that are not `rO0AB…` at all; HA211 is for
/// pointers that look right but cannot be followed.
fn pointer_is_ours_to_read(pointer: &PointerEntry) -> bool {
    pointer.key.starts_with(ha_layout::RUNTIME_KEY_PREFIX)
        || pointer
            .error
            .as_deref()
            .is_some_and(|e| !e.starts_with("is not Base64"))
}

/// `1 h 5 min`, `42 s`, `350 ms`.
pub fn human_ms(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    if s == 0 {
        return format!("{ms} ms");
    }
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec} s"),
        (0, 0, _) => format!("{m} min {sec} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// The state as text: one block per cluster, then per job.
pub fn render_text(clusters: &[ClusterState]) -> String {
    let mut out = String::new();
    for cluster in clusters {
        let _ = writeln!(out, "cluster {} (namespace {})", cluster.cluster_id, cluster.namespace);
        let existence = match &cluster.existence {
            Existence::Unknown => "not looked up (offline)".to_owned(),
            Existence::Exists { workloads } => format!("running: {}", workloads.join(", ")),
            Existence::Gone => match &cluster.leader {
                Some(leader) if !leader.state.is_live() => format!(
                    "gone: no JobManager Deployment or FlinkDeployment with this id; no leader for {}",
                    human_ms(leader.state.idle_ms())
                ),
                _ => "gone: no JobManager Deployment or FlinkDeployment with this id".to_owned(),
            },
        };
        let _ = writeln!(out, "  exists:     {existence}");
        match (&cluster.leader, &cluster.leader_problem) {
            (Some(leader), _) => {
                let state = match &leader.state {
                    LeaseState::Live { holder, expires_in_ms } => {
                        format!("{holder}, live, expires in {}", human_ms(*expires_in_ms))
                    }
                    LeaseState::Expired { holder, expired_ms_ago } => {
                        format!("{holder}, expired {} ago", human_ms(*expired_ms_ago))
                    }
                    LeaseState::Released { released_ms_ago } => {
                        format!("none, released {} ago", human_ms(*released_ms_ago))
                    }
                };
                let _ = writeln!(
                    out,
                    "  leader:     {state} (lease {}, renewed {}, {} transition(s))",
                    human_ms(i64::try_from(leader.lease_duration_ms).unwrap_or(i64::MAX)),
                    leader.renew_time,
                    leader.transitions
                );
            }
            (None, Some(problem)) => {
                let _ = writeln!(out, "  leader:     unknown: {problem}");
            }
            (None, None) => {}
        }
        for address in &cluster.addresses {
            let _ = writeln!(out, "  {:<11} {}", format!("{}:", address.component), address.address);
        }
        for cm in &cluster.configmaps {
            let percent = cm.size_bytes as f64 * 100.0 / CONFIGMAP_LIMIT as f64;
            let owners = if cm.owner_references.is_empty() {
                String::new()
            } else {
                format!(", OWNED BY {}", cm.owner_references.join(", "))
            };
            let _ = writeln!(
                out,
                "  configmap:  {} ({}, {} bytes, {percent:.1} % of 1 MiB{owners})",
                cm.name, cm.role, cm.size_bytes
            );
        }
        for job in &cluster.jobs {
            let writer = match job.format {
                PointerFormat::FlinkJava => "Flink",
                PointerFormat::FlinkHaJson => "flink-ha runtime",
            };
            let _ = writeln!(out, "  job {} ({writer})", job.job_id);
            match &job.plan {
                Some(plan) => {
                    let _ = writeln!(out, "    plan:        {}", describe_pointer(plan));
                }
                None => {
                    let _ = writeln!(out, "    plan:        none (finished, or cleaned up)");
                }
            }
            for checkpoint in &job.checkpoints {
                let _ = writeln!(
                    out,
                    "    checkpoint {}: {}",
                    checkpoint.id,
                    describe_pointer(&checkpoint.entry)
                );
            }
            if let Some(counter) = &job.counter {
                let _ = writeln!(out, "    counter:     {} (next checkpoint id)", counter.value.trim());
            }
            match job.recovery_checkpoint() {
                Some(c) => {
                    let _ = writeln!(out, "    recovers from checkpoint {}", c.id);
                }
                None => {
                    let _ = writeln!(out, "    recovers from: no checkpoint (starts empty)");
                }
            }
            if let Some(latest) = &job.latest {
                match (&latest.info, &latest.error) {
                    (Some(info), _) => {
                        if let Some(external) = &info.external_pointer {
                            let _ = writeln!(out, "    restore by hand: {external}");
                        }
                        if let Some(metadata) = &info.metadata_uri {
                            let _ = writeln!(out, "    metadata:    {metadata}");
                        }
                        match &latest.wholeness {
                            Some(Wholeness::Whole { files, bytes }) => {
                                let _ = writeln!(
                                    out,
                                    "    whole:       yes: its _metadata and {files} state file(s), {bytes} bytes, exist as recorded"
                                );
                            }
                            Some(Wholeness::NotWhole { problems }) => {
                                let _ = writeln!(out, "    NOT whole:   {}", problems.join("; "));
                            }
                            Some(Wholeness::Unknown { why }) => {
                                let _ = writeln!(out, "    whole:       not known: {why}");
                            }
                            None => {}
                        }
                    }
                    (None, Some(error)) => {
                        let _ = writeln!(out, "    checkpoint {}: {error}", latest.checkpoint_id);
                    }
                    (None, None) => {}
                }
            }
        }
    }
    out
}

fn describe_pointer(entry: &PointerEntry) -> String {
    let Some(pointer) = &entry.pointer else {
        return format!("unreadable: {}", entry.error.as_deref().unwrap_or("?"));
    };
    let marked = if pointer.marked_for_deletion {
        " [marked for deletion]"
    } else {
        ""
    };
    let location = match &pointer.location {
        flink_state::PayloadLocation::File { uri, size: Some(size) } => format!("{uri} ({size} bytes)"),
        flink_state::PayloadLocation::File { uri, size: None } => uri.clone(),
        flink_state::PayloadLocation::Inline { size, .. } => format!("inline ({size} bytes)"),
    };
    let storage = match &entry.payload {
        None => String::new(),
        Some(PayloadFact::Found { size, read_from })
            if pointer.uri().map(flink_state::normalize_uri).as_deref() == Some(read_from.as_str()) =>
        {
            format!(", found ({size} bytes)")
        }
        Some(PayloadFact::Found { size, read_from }) => format!(", found at {read_from} ({size} bytes)"),
        Some(PayloadFact::Missing { looked_at }) => format!(", MISSING at {looked_at}"),
        Some(PayloadFact::Unreachable { error }) => format!(", storage unreachable: {error}"),
        Some(PayloadFact::Foreign { storage }) => format!(", outside {storage}"),
    };
    format!("{location}{marked}{storage}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: &str = include_str!("../tests/real-flink/capture-2.3/configmaps-after-recovery.yaml");

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn a_real_flink_dump_reads_as_one_cluster_with_its_job_and_checkpoint() {
        let cms = read_configmap_dump(AFTER).unwrap();
        assert_eq!(cms.len(), 2);
        let clusters = read_clusters(&cms, at("2026-11-28T06:37:20Z"), None);
        assert_eq!(clusters.len(), 1);
        let cluster = &clusters[0];
        assert_eq!(
            (cluster.namespace.as_str(), cluster.cluster_id.as_str()),
            ("default", "real-flink")
        );
        let leader = cluster.leader.as_ref().unwrap();
        assert_eq!(leader.transitions, 1);
        assert!(
            cluster
                .addresses
                .iter()
                .any(|a| a.component == "restserver" && a.address == "http://127.0.0.1:18081")
        );
        let [job] = &cluster.jobs[..] else {
            panic!("one job: {:?}", cluster.jobs)
        };
        assert_eq!(job.job_id, "25fc957960a1789dd1ef3466290fa995");
        assert_eq!(job.checkpoints.len(), 1);
        assert_eq!(job.recovery_checkpoint().unwrap().id, 66);
        assert_eq!(job.counter.as_ref().unwrap().next_id, Some(67));
        assert_eq!(
            cluster.payload_uris(),
            [
                "file:/var/flink-data/ha/default/completedCheckpointe31c6049fc69",
                "file:/var/flink-data/ha/default/submittedExecutionPlan0036a6a2eccb"
            ]
        );
        assert!(state_findings(&clusters).is_empty());
    }

    #[test]
    fn missing_payloads_counters_behind_and_gone_clusters_are_findings() {
        let cms = read_configmap_dump(AFTER).unwrap();
        let mut clusters = read_clusters(&cms, at("2026-11-28T09:00:00Z"), None);
        let uris = clusters[0].payload_uris();
        let facts = BTreeMap::from([
            (
                uris[0].clone(),
                PayloadFact::Missing {
                    looked_at: uris[0].clone(),
                },
            ),
            (
                uris[1].clone(),
                PayloadFact::Found {
                    size: 1,
                    read_from: uris[1].clone(),
                },
            ),
        ]);
        clusters[0].apply_payloads(&facts);
        clusters[0].jobs[0].counter.as_mut().unwrap().next_id = Some(66);
        clusters[0].existence = Existence::Gone;
        let rules: Vec<_> = state_findings(&clusters).iter().map(|f| f.finding.rule).collect();
        assert_eq!(
            rules,
            [RuleId::HA209, RuleId::HA209, RuleId::HA210, RuleId::HA212],
            "missing checkpoint, plan of the wrong size, counter 66 ≤ 66, gone with an expired lease"
        );
    }

    #[test]
    fn only_exact_ha_names_count() {
        let mut cm = ConfigMapRecord {
            namespace: "ns".into(),
            name: "flink-config-real-flink".into(),
            ..ConfigMapRecord::default()
        };
        cm.labels.insert("app".into(), "real-flink".into());
        cm.labels.insert("type".into(), "flink-native-kubernetes".into());
        assert!(read_clusters(&[cm], at("2026-11-28T09:00:00Z"), None).is_empty());
    }
}
