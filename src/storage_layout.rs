//! Flink's HA layout in storage: what an object under a `high-availability.storageDir` is,
//! by its path alone — a payload of one cluster folder, a blob of one job, a job-result
//! entry, the runtime's owner marker — or not Flink HA data at all.
//!
//! The tools that delete (`flink-ha gc`) decide with it what they may touch: an object
//! this module cannot place is somebody else's (a checkpoint directory, a savepoint, a
//! file a person keeps there), and a storage root that holds one is not a storageDir.
//!
//! The layout (`../shared/spec/flink-ha.md`, and a real Flink 2.3's listing):
//!
//! ```text
//! <storageDir>/<ha-cluster-id>/completedCheckpoint<hex>       checkpoint pointers' payloads
//! <storageDir>/<ha-cluster-id>/submittedExecutionPlan<hex>    2.x plans (submittedJobGraph<hex> up to 1.20)
//! <storageDir>/<ha-cluster-id>/blob/job_<job-id>/blob_p-…     the BlobServer's HA copies
//! <storageDir>/<ha-cluster-id>/blob/no_job/…
//! <storageDir>/<ha-cluster-id>/flink-ha-owner.json            this project's runtime: who owns the folder
//! <storageDir>/job-result-store/<ha-cluster-id>/<job-id>[_DIRTY].json
//! <storageDir>/job-result-store/<ha-cluster-id>/<namespace>/<cluster-id>/<job-id>[_DIRTY].json   the runtime's, per cluster
//! <storageDir>/application-result-store/<ha-cluster-id>/…     2.x
//! ```

use crate::ha_layout::is_job_id;

/// The folder Flink's job-result store keeps per HA cluster id under the storageDir.
pub const JOB_RESULT_STORE_DIR: &str = "job-result-store";
/// The folder Flink 2.x's application-result store keeps per HA cluster id.
pub const APPLICATION_RESULT_STORE_DIR: &str = "application-result-store";
/// The BlobServer's folder inside a cluster folder.
pub const BLOB_DIR: &str = "blob";
/// The runtime's marker of which cluster owns a payload folder.
pub const OWNER_MARKER: &str = "flink-ha-owner.json";
/// The suffix of a job-result entry whose cleanup has not finished.
pub const DIRTY_SUFFIX: &str = "_DIRTY.json";
/// The cluster folder of every cluster without `high-availability.cluster-id`: standalone
/// clusters share it.
pub const DEFAULT_FOLDER: &str = "default";

/// The runtime's short-lived probe of a store's create-only writes, named like a payload.
pub const PROBE_PREFIX: &str = "flinkHaProbe";

/// The payload kinds Flink (and this project's runtime) write into a cluster folder, and the
/// runtime's probe.
pub const PAYLOAD_PREFIXES: [&str; 4] = [
    "completedCheckpoint",
    "submittedExecutionPlan",
    "submittedJobGraph",
    PROBE_PREFIX,
];

/// The name of a job's blob folder: `job_<job-id>`.
pub fn blob_job_folder(job_id: &str) -> String {
    format!("job_{job_id}")
}

/// The job-result entry names of a job: the clean one and the dirty one.
pub fn job_result_names(job_id: &str) -> [String; 2] {
    [format!("{job_id}.json"), format!("{job_id}{DIRTY_SUFFIX}")]
}

/// What an object under a storageDir is, by its path relative to the storageDir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageObject<'a> {
    /// A payload file in a cluster folder (`completedCheckpoint…`, `submittedExecutionPlan…`,
    /// `submittedJobGraph…`).
    Payload {
        /// The cluster folder (the HA cluster id).
        folder: &'a str,
        /// The file name.
        name: &'a str,
    },
    /// A file of the BlobServer's folder.
    Blob {
        /// The cluster folder.
        folder: &'a str,
        /// The job it belongs to (`None` for `no_job`).
        job_id: Option<&'a str>,
    },
    /// The runtime's owner marker of a cluster folder.
    OwnerMarker {
        /// The cluster folder.
        folder: &'a str,
    },
    /// An entry of the job-result (or application-result) store.
    ResultEntry {
        /// `job-result-store` or `application-result-store`.
        store: &'a str,
        /// The cluster folder inside it.
        folder: &'a str,
        /// The file name.
        name: &'a str,
        /// The job it is about, if the name is `<job-id>[_DIRTY].json`.
        job_id: Option<&'a str>,
        /// The runtime's entries sit in a folder per cluster: its namespace and
        /// Kubernetes cluster id. `None` for Flink's (per HA cluster id only).
        cluster: Option<(&'a str, &'a str)>,
    },
    /// Not Flink HA data: what it looks like instead.
    Foreign {
        /// A short description: "a checkpoint's `_metadata`", "a savepoint", ….
        looks_like: &'static str,
    },
}

impl StorageObject<'_> {
    /// Whether the object is Flink HA data.
    pub fn is_ha_data(&self) -> bool {
        !matches!(self, StorageObject::Foreign { .. })
    }

    /// The cluster folder the object belongs to, if it is HA data.
    pub fn folder(&self) -> Option<&str> {
        match self {
            StorageObject::Payload { folder, .. }
            | StorageObject::Blob { folder, .. }
            | StorageObject::OwnerMarker { folder }
            | StorageObject::ResultEntry { folder, .. } => Some(folder),
            StorageObject::Foreign { .. } => None,
        }
    }
}

/// What the object at `parts` (its path under the storageDir, one segment each) is.
pub fn classify<'a>(parts: &[&'a str]) -> StorageObject<'a> {
    if let Some(foreign) = looks_foreign(parts) {
        return StorageObject::Foreign { looks_like: foreign };
    }
    match parts {
        [store, folder, name] if is_result_store(store) => result_entry(store, folder, name, None),
        [store, folder, namespace, cluster, name] if is_result_store(store) => {
            result_entry(store, folder, name, Some((namespace, cluster)))
        }
        [folder, name] if *name == OWNER_MARKER => StorageObject::OwnerMarker { folder },
        [folder, name] if is_payload_name(name) => StorageObject::Payload { folder, name },
        [folder, blob, job, _file] if *blob == BLOB_DIR => match job.strip_prefix("job_") {
            Some(id) if is_job_id(id) => StorageObject::Blob {
                folder,
                job_id: Some(id),
            },
            None if *job == "no_job" => StorageObject::Blob { folder, job_id: None },
            _ => StorageObject::Foreign {
                looks_like: "a file in a blob folder that is not a job's",
            },
        },
        _ => StorageObject::Foreign {
            looks_like: "a file that is not in Flink's HA layout",
        },
    }
}

fn is_result_store(store: &str) -> bool {
    store == JOB_RESULT_STORE_DIR || store == APPLICATION_RESULT_STORE_DIR
}

fn result_entry<'a>(
    store: &'a str,
    folder: &'a str,
    name: &'a str,
    cluster: Option<(&'a str, &'a str)>,
) -> StorageObject<'a> {
    if !name.ends_with(".json") {
        return StorageObject::Foreign {
            looks_like: "a file in a result store that is not a JSON entry",
        };
    }
    let stem = name.strip_suffix(DIRTY_SUFFIX).or_else(|| name.strip_suffix(".json"));
    StorageObject::ResultEntry {
        store,
        folder,
        name,
        job_id: stem.filter(|s| is_job_id(s)),
        cluster,
    }
}

/// A payload file name: a known prefix, then a random part of hex digits (12 from Flink,
/// longer from this project's runtime), optionally with `-`-separated hex groups.
pub fn is_payload_name(name: &str) -> bool {
    PAYLOAD_PREFIXES.iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.len() >= 12 && rest.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
    })
}

/// Data that tells a storage root is not an HA storageDir, by what it holds.
fn looks_foreign(parts: &[&str]) -> Option<&'static str> {
    let last = parts.last()?;
    if parts.iter().any(|p| p.starts_with("savepoint-")) {
        return Some("a savepoint (savepoint-*)");
    }
    if parts.iter().any(|p| is_checkpoint_dir(p)) || *last == "_metadata" {
        return Some("a checkpoint (chk-N/ or _metadata)");
    }
    if parts.iter().any(|p| *p == "shared" || *p == "taskowned") {
        return Some("a checkpoint directory's shared or task-owned state");
    }
    None
}

/// `chk-<digits>`.
fn is_checkpoint_dir(part: &str) -> bool {
    part.strip_prefix("chk-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "25fc957960a1789dd1ef3466290fa995";

    fn of(path: &str) -> StorageObject<'_> {
        let parts: Vec<&str> = path.split('/').collect();
        // Leak-free: classify borrows from `path`, which outlives the result.
        classify(&parts)
    }

    #[test]
    fn a_real_flink_storage_dir_is_ha_data_throughout() {
        // The listing of a real Flink 2.3 storageDir (../shared/fixtures/real-flink-2.3).
        for path in [
            "default/completedCheckpointe31c6049fc69",
            "default/submittedExecutionPlan0036a6a2eccb",
            "default/submittedJobGraph0036a6a2eccb",
            "default/blob/job_25fc957960a1789dd1ef3466290fa995/blob_p-43a84e9fd5d395cbdcd5144f1f2e3d6fa2b03c24-e39149054c743126d5a949b4e8b1c9d6",
            "default/blob/no_job/blob_p-43a8",
            "job-result-store/default/25fc957960a1789dd1ef3466290fa995_DIRTY.json",
            "application-result-store/default/25fc957960a1789dd1ef3466290fa995.json",
            "job-result-store/default/shop/orders/25fc957960a1789dd1ef3466290fa995_DIRTY.json",
            "team-b/flink-ha-owner.json",
        ] {
            assert!(of(path).is_ha_data(), "{path}: {:?}", of(path));
        }
        assert_eq!(
            of(&format!("default/blob/job_{JOB}/blob_p-1")),
            StorageObject::Blob {
                folder: "default",
                job_id: Some(JOB)
            }
        );
        assert_eq!(
            of(&format!("job-result-store/x/{JOB}_DIRTY.json")),
            StorageObject::ResultEntry {
                store: JOB_RESULT_STORE_DIR,
                folder: "x",
                name: &format!("{JOB}_DIRTY.json"),
                job_id: Some(JOB),
                cluster: None,
            }
        );
    }

    #[test]
    fn checkpoints_savepoints_and_unknown_files_are_not_ha_data() {
        for path in [
            "checkpoints/25fc957960a1789dd1ef3466290fa995/chk-41/_metadata",
            "checkpoints/25fc957960a1789dd1ef3466290fa995/shared/abc",
            "checkpoints/25fc957960a1789dd1ef3466290fa995/taskowned/abc",
            "savepoints/savepoint-25fc95-1a2b3c4d5e6f/_metadata",
            "default/notes.txt",
            "README",
            // A root one level up: the cluster folder is one level deeper than the layout.
            "ha/default/completedCheckpointe31c6049fc69",
            "ha/job-result-store/default/x.json",
            "default/blob/job_not-a-job/blob_p-1",
            "default/completedCheckpoint",
            "default/completedCheckpoint12",
            "job-result-store/default/readme.txt",
        ] {
            assert!(!of(path).is_ha_data(), "{path}: {:?}", of(path));
        }
    }

    #[test]
    fn payload_names_are_a_prefix_and_hex() {
        assert!(is_payload_name("completedCheckpointe31c6049fc69"));
        assert!(is_payload_name(&format!("submittedExecutionPlan{}", "a".repeat(24))));
        // The runtime's owned names: kind, owner, random part.
        assert!(is_payload_name(&format!(
            "completedCheckpoint-{}-{}",
            "0f".repeat(8),
            "a".repeat(24)
        )));
        assert!(is_payload_name(&format!(
            "flinkHaProbe-{}-{}",
            "0f".repeat(8),
            "a".repeat(24)
        )));
        assert!(!is_payload_name("completedCheckpoint../../x"));
        assert!(!is_payload_name("completedCheckpointxyzxyzxyzxyz"));
        assert_eq!(job_result_names(JOB)[1], format!("{JOB}_DIRTY.json"));
        assert_eq!(blob_job_folder(JOB), format!("job_{JOB}"));
    }
}
