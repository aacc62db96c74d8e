//! The orphan sweep: payloads in `<storageDir>/<cluster-id>/` that no pointer names.
//!
//! An add writes its payload first and its pointer second. A JobManager killed (or cut
//! off from storage) between the two leaves a payload nothing references, and nothing
//! in Flink's protocol ever removes it. The leader sweeps them. Its rule: delete only
//! what is proven to be this cluster's and proven unreferenced; when in doubt, keep it
//! and say why.
//!
//! - **Never a folder others write by default.** `default/` (no
//!   `high-availability.cluster-id`) is where every standalone cluster writes, in any
//!   namespace or Kubernetes cluster: no sweep there ([`Refusal::SharedFolder`]).
//! - **Only on a store that keeps create-only writes.** Each sweep first writes a probe
//!   twice with `PutMode::Create`; a store that lets the second overwrite (an
//!   S3-compatible one that ignores `If-None-Match`) proves neither the owner marker nor
//!   a fresh name: no sweep ([`Refusal::NoCreateOnly`]).
//! - **Only this cluster's files.** Only names `<kind>-<owner>-<24 hex digits>` whose
//!   owner is this cluster's [`PayloadOwner`] (from its cluster ConfigMap's owner token) are
//!   candidates: never Flink's own payloads, its `blob/` folder, a user's files, another
//!   cluster's payloads (twins with one cluster id in two namespaces or two Kubernetes
//!   clusters included), or the unowned names earlier versions wrote. The folder's owner
//!   marker still lets only one cluster sweep a folder.
//! - **Listing before reading.** The folder is listed first, the unsettled payloads of
//!   this process taken next, the ConfigMaps read last. A payload whose pointer landed
//!   in between is seen as referenced; one whose add is still open is unsettled (marked
//!   before its write began), and skipped however old.
//! - **Every pointer understood.** A pointer value that does not parse, or names a
//!   payload outside this storageDir, may reference anything: the sweep stops with
//!   [`Error::Corrupt`] or [`Error::Refused`] before it deletes anything.
//! - **Old enough, by this process's clock.** Only payloads this process first listed
//!   at least `min_age` ago go (a monotonic clock; storage's timestamps come from
//!   another, maybe skewed, one). An add's pointer write is over within
//!   `(2 × (max-retries + 1) + 1)` request deadlines (one lease each) after its payload
//!   was written, so past [`min_age_floor`] a pointer can no longer land.
//!
//! Marked pointers count as references: their removal is under way, and it deletes the
//! payload itself. The sweep runs only while the lock names this process.

use std::collections::HashSet;
use std::time::Duration;

use flink_ha_policy::flink_state::{HaPointer, normalize_uri};
use flink_ha_policy::ha_layout::{RUNTIME_COUNTER_KEY, RUNTIME_KEY_PREFIX, is_flink_pointer_key};
use k8s_openapi::api::core::v1::ConfigMap;

use crate::cas::ConfigMapCas;
use crate::checkpoint_store;
use crate::cleanup;
use crate::config::STANDALONE_HA_CLUSTER_ID;
use crate::error::{Error, Result};
use crate::leader_election::{ElectionConfig, check_holds_lock};
use crate::names;
use crate::payloads::{FolderOwner, OWNER_TOKEN_ANNOTATION, PROBE_KIND, PayloadOwner, PayloadStore, owner_token};

/// The kinds of object this runtime writes into the folder, the sweep's only
/// candidates: the payloads, and the probe a killed sweep may leave behind.
pub const PAYLOAD_KINDS: [&str; 3] = [checkpoint_store::PAYLOAD_KIND, cleanup::EXECUTION_PLAN_KIND, PROBE_KIND];

/// The youngest an orphan may be swept at with `election`'s settings: past this age no
/// pointer write of another process can still land on it.
pub fn min_age_floor(election: &ElectionConfig) -> Duration {
    let requests = 2 * election.max_retries.saturating_add(1) + 1;
    election.lease_duration.saturating_mul(requests)
}

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// The orphans deleted (their URIs).
    pub deleted: Vec<String>,
    /// Orphans left because this process has not seen them for the minimum age yet.
    pub young: usize,
    /// Payloads a pointer names (marked or not).
    pub referenced: usize,
    /// Payloads of this process's adds whose outcome is still unknown.
    pub unsettled: usize,
    /// Orphans whose deletion failed (they stay for the next sweep).
    pub failed: usize,
    /// Payloads of this runtime whose names do not carry this cluster's owner (another
    /// cluster's, or an earlier version's): never candidates.
    pub not_ours: usize,
}

/// How a sweep ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// The sweep ran; the report says what it deleted and what it kept.
    Done(SweepReport),
    /// The folder's owner marker names another cluster: nothing was touched.
    NotOurFolder {
        /// The owner the marker names (this runtime writes `<namespace>/<cluster-id>`).
        owner: String,
    },
    /// The sweep cannot prove what it would need to, here: nothing was touched (but
    /// its probe, see [`Refusal::NoCreateOnly`]). This does not change while the
    /// configuration and the store stay what they are.
    Refused(Refusal),
}

/// Why a sweep does not run in a folder.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The folder is `default/`: every cluster without `high-availability.cluster-id`
    /// writes there, from any namespace or Kubernetes cluster.
    #[error(
        "no orphan sweep in {folder}: it is the `{STANDALONE_HA_CLUSTER_ID}` folder, where every cluster without high-availability.cluster-id writes; give this cluster a high-availability.cluster-id of its own to have its orphans swept"
    )]
    SharedFolder {
        /// The folder, as a URI.
        folder: String,
    },
    /// The store let a second create-only write of one object overwrite the first: it
    /// ignores `PutMode::Create` (`If-None-Match: *`). Its probe object was deleted.
    #[error(
        "no orphan sweep in {folder}: the store overwrote an object on a create-only write (it ignores If-None-Match), so neither the folder's owner marker nor a payload's fresh name proves whose a file is"
    )]
    NoCreateOnly {
        /// The folder, as a URI.
        folder: String,
    },
}

/// The refusal of a sweep in `payloads`' folder for what it is, before any request:
/// `default/` (or no folder at all under the storageDir) is shared.
pub fn shared_folder(payloads: &PayloadStore) -> Option<Refusal> {
    let shared = payloads
        .folder_name()
        .is_none_or(|name| name == STANDALONE_HA_CLUSTER_ID);
    shared.then(|| Refusal::SharedFolder {
        folder: payloads.description().to_string(),
    })
}

/// Sweeps the orphans of cluster `cluster_id` in `namespace` older than `min_age`, as
/// the lock holder `identity`. Refuses ([`Sweep::Refused`]) in a shared folder and on a
/// store without create-only writes. Fails without deleting anything when the lock does
/// not name `identity`, the ConfigMaps cannot be read or one of their pointers cannot be
/// understood.
pub async fn sweep_orphans(
    cas: &ConfigMapCas,
    namespace: &str,
    cluster_id: &str,
    payloads: &PayloadStore,
    identity: &str,
    min_age: Duration,
) -> Result<Sweep> {
    if let Some(refusal) = shared_folder(payloads) {
        tracing::warn!(%refusal);
        return Ok(Sweep::Refused(refusal));
    }
    // Only the lock holder probes, claims the folder or deletes anything in it.
    let cluster = locked_cluster_config_map(cas, cluster_id, identity).await?;
    let token = cluster_owner_token(&cluster, cluster_id)?;
    let owner = PayloadOwner::new(namespace, cluster_id, &token);
    let payloads = payloads.owned_by(owner.clone());
    if !payloads.create_only_holds().await? {
        let refusal = Refusal::NoCreateOnly {
            folder: payloads.description().to_string(),
        };
        tracing::warn!(%refusal);
        return Ok(Sweep::Refused(refusal));
    }
    // The same form as `HaServices`' release of the marker.
    let marker_owner = format!("{namespace}/{cluster_id}");
    if let FolderOwner::Other(owner) = payloads.claim_folder(&marker_owner).await?
        && !crate::planted::planted(crate::planted::Bug::SweepAnyOwner)
    {
        tracing::warn!(%owner, folder = payloads.description(), "the payload folder belongs to another cluster; no orphan sweep");
        return Ok(Sweep::NotOurFolder { owner });
    }
    // Listed first: a pointer written after this listing is in the ConfigMaps read below.
    let listing = payloads.list_owned(&PAYLOAD_KINDS, &owner).await?;
    // Then the open adds: one that settles after this has its payload in here; one
    // settled before has its pointer in the ConfigMaps read below.
    let unsettled = payloads.unsettled_now();
    let referenced = referenced_payloads(cas, cluster_id, &payloads, identity, &token).await?;
    let mut report = SweepReport {
        not_ours: listing.not_ours,
        ..SweepReport::default()
    };
    for payload in listing.owned {
        if referenced.contains(&payload.uri) {
            report.referenced += 1;
        } else if unsettled.contains(&payload.uri) || payloads.is_unsettled(&payload.uri) {
            report.unsettled += 1;
        } else if payload.age < min_age {
            report.young += 1;
        } else {
            match payloads.delete(&payload.uri).await {
                Ok(()) => {
                    tracing::info!(payload = %payload.uri, seen_for = ?payload.age, "deleted an orphaned payload");
                    report.deleted.push(payload.uri);
                }
                Err(error) => {
                    tracing::warn!(payload = %payload.uri, %error, "could not delete an orphaned payload");
                    report.failed += 1;
                }
            }
        }
    }
    Ok(Sweep::Done(report))
}

/// The URIs every pointer of the cluster names: the cluster ConfigMap's (checked to be
/// locked by `identity`, its owner token still `token`) and every job ConfigMap's. A
/// pointer that cannot be read or resolved fails it: it may name any payload.
async fn referenced_payloads(
    cas: &ConfigMapCas,
    cluster_id: &str,
    payloads: &PayloadStore,
    identity: &str,
    token: &str,
) -> Result<HashSet<String>> {
    let cluster = locked_cluster_config_map(cas, cluster_id, identity).await?;
    if cluster_owner_token(&cluster, cluster_id)? != token {
        // Changed since the sweep began: the owner it listed for is no longer this one.
        return Err(Error::Refused(format!(
            "an orphan sweep while the payload owner token of {} changed",
            names::cluster_config_map(cluster_id)
        )));
    }
    let jobs = cas.job_config_maps(cluster_id).await?;
    let mut referenced = HashSet::new();
    for cm in std::iter::once(&cluster).chain(jobs.iter()) {
        let name = cm.metadata.name.as_deref().unwrap_or_default();
        for (key, value) in cm.data.iter().flatten() {
            if let Some(uri) = pointer_uri(payloads, name, key, value)? {
                referenced.insert(uri);
            }
        }
    }
    Ok(referenced)
}

/// The payload URI the entry `key` of ConfigMap `name` names, as
/// [`PayloadStore::put_new`] writes it; `None` for an entry that names no file (a leader
/// entry, a counter, an inline state handle). An entry under a pointer key that does not
/// parse, or names a file outside this storageDir, is an error.
fn pointer_uri(payloads: &PayloadStore, name: &str, key: &str, value: &str) -> Result<Option<String>> {
    // The runtime's keys (all of them pointers, but the counter; an unknown one may be a
    // newer version's pointer) and Flink's pointer keys.
    let is_pointer = (key.starts_with(RUNTIME_KEY_PREFIX) && key != RUNTIME_COUNTER_KEY) || is_flink_pointer_key(key);
    if !is_pointer {
        return Ok(None);
    }
    let corrupt = |reason: String| Error::Corrupt {
        name: name.to_string(),
        key: key.to_string(),
        reason: format!("{reason}; no orphan sweep while a pointer cannot be read"),
    };
    let pointer = HaPointer::decode_entry(key, value).map_err(|e| corrupt(e.to_string()))?;
    match pointer.uri() {
        Some(uri) => payloads.pointer_uri(&normalize_uri(uri)).map(Some),
        None => Ok(None),
    }
}

/// The payload owner token of the cluster ConfigMap `cm`; the lock holder's election
/// wrote it when it took the lock, so one missing was removed since.
fn cluster_owner_token(cm: &ConfigMap, cluster_id: &str) -> Result<String> {
    owner_token(cm).map(str::to_string).ok_or_else(|| Error::Corrupt {
        name: names::cluster_config_map(cluster_id),
        key: format!("metadata.annotations.{OWNER_TOKEN_ANNOTATION}"),
        reason: "absent; the orphan sweep cannot tell this cluster's payloads without it".into(),
    })
}

/// The cluster ConfigMap, read now and checked to be locked by `identity`.
async fn locked_cluster_config_map(cas: &ConfigMapCas, cluster_id: &str, identity: &str) -> Result<ConfigMap> {
    let name = names::cluster_config_map(cluster_id);
    let cluster = cas
        .get(&name)
        .await?
        .ok_or_else(|| Error::Missing { name: name.clone() })?;
    check_holds_lock(&cluster, identity, &name)?;
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_covers_every_request_of_an_add() {
        let mut election = ElectionConfig::flink_defaults("c");
        election.lease_duration = Duration::from_secs(2);
        election.max_retries = 3;
        // Four attempts of GET + PUT, and the GET that settles a lost answer.
        assert_eq!(min_age_floor(&election), Duration::from_secs(18));
    }
}
