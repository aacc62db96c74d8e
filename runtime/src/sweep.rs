//! The orphan sweep: payloads in `<storageDir>/<cluster-id>/` that no pointer names.
//!
//! An add writes its payload first and its pointer second. A JobManager killed (or cut
//! off from storage) between the two leaves a payload nothing references, and nothing
//! in Flink's protocol ever removes it. The leader sweeps them, under three rules that
//! make a sweep unable to delete a payload a pointer names or will name:
//!
//! - **Listing before reading.** The folder is listed first, the ConfigMaps read after.
//!   A payload whose pointer landed in between is seen as referenced.
//! - **Old enough.** Only payloads older than `min_age` go. An add's pointer write is
//!   over within `(2 × (max-retries + 1) + 1)` request deadlines (one lease each) after
//!   its payload was written, so past [`min_age_floor`] a pointer can no longer land —
//!   except from an add of this very process whose outcome is still unknown, and those
//!   payloads are unsettled in the [`PayloadStore`] and skipped, however old.
//! - **Only this runtime's files in this cluster's folder.** Only names of the form
//!   `<kind><24 hex digits>` are candidates (never Flink's own payloads, its `blob/`
//!   folder or anything a user keeps there), and only while the folder's owner marker
//!   names this namespace and cluster id: two clusters with one id in two namespaces
//!   may share a storageDir, and neither sweeps the other's files.
//!
//! Marked pointers count as references: their removal is under way, and it deletes the
//! payload itself. The sweep runs only while the lock names this process.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::cas::ConfigMapCas;
use crate::checkpoint_store;
use crate::cleanup;
use crate::error::{Error, Result};
use crate::leader_election::{ElectionConfig, check_holds_lock};
use crate::names;
use crate::payloads::{FolderOwner, PayloadStore, Pointer};

/// The payload kinds this runtime writes, the sweep's only candidates.
pub const PAYLOAD_KINDS: [&str; 2] = [checkpoint_store::PAYLOAD_KIND, cleanup::EXECUTION_PLAN_KIND];

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
    /// Orphans left because they are younger than the minimum age.
    pub young: usize,
    /// Payloads a pointer names (marked or not).
    pub referenced: usize,
    /// Payloads of this process's adds whose outcome is still unknown.
    pub unsettled: usize,
    /// Orphans whose deletion failed (they stay for the next sweep).
    pub failed: usize,
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
}

/// Sweeps the orphans of cluster `cluster_id` in `namespace` older than `min_age`, as
/// the lock holder `identity`. Fails without deleting anything when the lock does not
/// name `identity` or the ConfigMaps cannot be read.
pub async fn sweep_orphans(
    cas: &ConfigMapCas,
    namespace: &str,
    cluster_id: &str,
    payloads: &PayloadStore,
    identity: &str,
    min_age: Duration,
) -> Result<Sweep> {
    // Only the lock holder claims the folder or deletes anything in it.
    locked_cluster_config_map(cas, cluster_id, identity).await?;
    // The same form as `HaServices`' release of the marker.
    let owner = format!("{namespace}/{cluster_id}");
    if let FolderOwner::Other(owner) = payloads.claim_folder(&owner).await? {
        tracing::warn!(%owner, folder = payloads.description(), "the payload folder belongs to another cluster; no orphan sweep");
        return Ok(Sweep::NotOurFolder { owner });
    }
    // Listed first: a pointer written after this listing is in the ConfigMaps read below.
    let listed = payloads.list_payloads(&PAYLOAD_KINDS).await?;
    let referenced = referenced_payloads(cas, cluster_id, payloads, identity).await?;
    let mut report = SweepReport::default();
    for payload in listed {
        if referenced.contains(&payload.uri) {
            report.referenced += 1;
        } else if payloads.is_unsettled(&payload.uri) {
            report.unsettled += 1;
        } else if payload.age < min_age {
            report.young += 1;
        } else {
            match payloads.delete(&payload.uri).await {
                Ok(()) => {
                    tracing::info!(payload = %payload.uri, age = ?payload.age, "deleted an orphaned payload");
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
/// locked by `identity`) and every job ConfigMap's.
async fn referenced_payloads(
    cas: &ConfigMapCas,
    cluster_id: &str,
    payloads: &PayloadStore,
    identity: &str,
) -> Result<HashSet<String>> {
    let cluster = locked_cluster_config_map(cas, cluster_id, identity).await?;
    let jobs = cas.job_config_maps(cluster_id).await?;
    Ok(std::iter::once(&cluster)
        .chain(jobs.iter())
        .flat_map(|cm| cm.data.iter().flatten())
        .filter_map(|(_, value)| Pointer::parse(value).ok())
        .filter_map(|pointer| payloads.canonical_uri(&pointer.path))
        .collect())
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
