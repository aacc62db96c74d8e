//! The execution-plan store and cleanup, as `../shared/spec/flink-ha.md` lays them down.
//!
//! - Execution plans: `executionPlan-<job-id>` entries of the cluster ConfigMap, written
//!   only while the lock names this process (checked in the same CAS).
//! - A job ends for good (finished, cancelled, failed): its result goes into the
//!   job-result store as a dirty entry first; then its checkpoints (pointers and
//!   payloads), its counter, its leader entry and its plan go, then its job ConfigMap;
//!   last the entry is marked clean. A new leader recovers only jobs without an entry
//!   and finishes the cleanups that dirty entries record ([`recoverable_jobs`]).
//! - A job's blobs, `<storageDir>/<cluster-id>/blob/job_<job-id>/` (Flink's blob store:
//!   its jars and artifacts), go with the rest of its HA data, as Flink's global cleanup
//!   of a job deletes them.
//! - The cluster shuts down normally, by the process that holds the lock: the payloads
//!   the cluster ConfigMap's pointers name, the blobs of the jobs it names, then the
//!   cluster ConfigMap, deleted in exactly the version in which the lock was checked.
//!   Never `blob/` whole: a cluster with the same id in another namespace shares it, and
//!   `blob/no_job/` cannot be told apart between them, so it stays.
//! - Every delete in storage that no compare-and-set guards runs inside the leader's
//!   lease and is cut off at its step-down moment ([`LeaderLease::bounded`]): a leader
//!   paused past it deletes nothing the next leader may have written since.
//! - A killed process or a deleted Deployment removes nothing of HA: that is the absence
//!   of a call here, and HA ConfigMaps never get owner references, so the garbage
//!   collector cannot take them either.

use std::collections::BTreeSet;

use bytes::Bytes;
use flink_ha_policy::flink_state::HaPointer;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Preconditions};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::cas::{Change, ConfigMapCas, Unanswered};
use crate::checkpoint_counter::CheckpointIdCounter;
use crate::checkpoint_store::CompletedCheckpointStore;
use crate::error::{Error, Result};
use crate::fence::{Fence, PLAN_COPY_ANNOTATION};
use crate::job_result_store::{JobResult, JobResultStore};
use crate::leader_election::{LeaderLease, check_holds_lock};
use crate::names::{self, JobId, is_job_id};
use crate::payloads::{PayloadStore, Pointer};
use crate::state_handle_store::{Guard, StateHandleStore, live_pointer};

/// Flink's own plan keys: a cluster whose ConfigMap holds them runs Flink's jobs.
pub use flink_ha_policy::ha_layout::EXECUTION_PLAN_KEY_PREFIX as FLINK_EXECUTION_PLAN_PREFIX;
/// The plans' key prefix up to Flink 1.20: a live one stops a cluster cleanup too.
pub use flink_ha_policy::ha_layout::LEGACY_JOB_GRAPH_KEY_PREFIX as JOB_GRAPH_PREFIX;
/// The runtime's plan keys (`flink-ha.executionPlan-<job-id>`), from the policy core's
/// layout: Flink's own `executionPlan-` keys hold Java-serialized handles, which a Flink
/// JobManager decodes at start, and the runtime's JSON pointers there would crash it.
pub use flink_ha_policy::ha_layout::{
    RUNTIME_EXECUTION_PLAN_KEY_PREFIX as EXECUTION_PLAN_PREFIX, runtime_execution_plan_key as execution_plan_key,
};
/// The folder of Flink's blob store under `<storageDir>/<cluster-id>/`, which Flink
/// deletes on a normal shutdown.
pub const BLOB_FOLDER: &str = "blob";
/// The payload file name prefix, as Flink 2.x names it.
pub const EXECUTION_PLAN_KIND: &str = "submittedExecutionPlan";

/// The execution plans of a cluster, in its cluster ConfigMap.
pub struct ExecutionPlanStore {
    store: StateHandleStore,
    cluster_id: String,
}

/// The live (unmarked, well-formed) plan pointer of `job_id` in the cluster ConfigMap of
/// `cluster_id`, as stored: what a claim copies into the job ConfigMap.
pub async fn plan_pointer(cas: &ConfigMapCas, cluster_id: &str, job_id: &str) -> Result<Option<String>> {
    let name = names::cluster_config_map(cluster_id);
    let Some(cm) = cas.get(&name).await? else {
        return Ok(None);
    };
    let key = execution_plan_key(job_id);
    if live_pointer(&cm, &name, &key).is_none() {
        return Ok(None);
    }
    Ok(cm.data.as_ref().and_then(|d| d.get(&key)).cloned())
}

impl ExecutionPlanStore {
    /// `identity` is this process's identity in the lock ([`crate::LeaderElection::identity`]).
    pub fn new(cas: ConfigMapCas, cluster_id: &str, payloads: PayloadStore, identity: &str) -> Self {
        ExecutionPlanStore {
            store: StateHandleStore::new(
                cas,
                names::cluster_config_map(cluster_id),
                payloads,
                Guard::Lock {
                    identity: identity.to_string(),
                },
            ),
            cluster_id: cluster_id.to_string(),
        }
    }

    /// Plan pointers only a job ConfigMap's copy still holds ([`PLAN_COPY_ANNOTATION`]):
    /// the job ConfigMaps of this cluster whose copy is well-formed and whose job has no
    /// plan key here. Read only.
    async fn lost_plans(&self, planned: &[JobId]) -> Result<Vec<(JobId, String)>> {
        let mut lost = Vec::new();
        for cm in self.store.cas.job_config_maps(&self.cluster_id).await? {
            let Some(copy) = cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(PLAN_COPY_ANNOTATION))
            else {
                continue;
            };
            let name = cm.metadata.name.as_deref().unwrap_or_default();
            // `job_config_maps` lists this cluster's job ConfigMaps only.
            let Some(names::HaConfigMapName::Job { job_id, .. }) = names::HaConfigMapName::parse(name) else {
                continue;
            };
            let Ok(job_id) = JobId::parse(job_id) else {
                continue;
            };
            if planned.contains(&job_id) {
                continue;
            }
            match Pointer::parse(copy) {
                Ok(pointer) if !pointer.marked_for_deletion => lost.push((job_id, copy.clone())),
                Ok(_) => {}
                Err(reason) => tracing::warn!(%name, %reason, "a malformed copy of a plan pointer; not restored"),
            }
        }
        Ok(lost)
    }

    /// Puts the plan pointer `value` of `job_id` back into the cluster ConfigMap, where it
    /// is missing: only while the lock names this process, never over a key that is there.
    async fn restore_pointer(&self, job_id: &JobId, value: &str) -> Result<()> {
        let key = execution_plan_key(job_id.as_str());
        self.store
            .cas
            .update(&self.store.name, |cm| {
                self.store.guard.check(cm, &self.store.name)?;
                let data = cm.data.get_or_insert_with(Default::default);
                if data.contains_key(&key) {
                    return Ok(Change::Unchanged);
                }
                data.insert(key.clone(), value.to_string());
                Ok(Change::Write)
            })
            .await
            .map(drop)
    }

    /// Stores `plan` as the job's execution plan: the payload in `storageDir`, its pointer
    /// under the job's plan key, written only while the lock names this process.
    pub async fn put(&self, job_id: &str, plan: Bytes) -> Result<()> {
        self.store
            .add(&execution_plan_key(job_id), EXECUTION_PLAN_KIND, plan)
            .await
    }

    /// The job's stored plan; `None` if it has none (or it is being removed).
    pub async fn get(&self, job_id: &str) -> Result<Option<Bytes>> {
        self.store.get(&execution_plan_key(job_id)).await
    }

    /// The jobs with a stored plan: what a new leader recovers. A plan key whose job id
    /// is malformed is not among them: [`ExecutionPlanStore::unreadable_plans`] lists it.
    pub async fn job_ids(&self) -> Result<Vec<JobId>> {
        Ok(self
            .store
            .list(EXECUTION_PLAN_PREFIX)
            .await?
            .into_iter()
            .filter_map(|(k, _)| JobId::parse(k.strip_prefix(EXECUTION_PLAN_PREFIX)?).ok())
            .collect())
    }

    /// The plan keys this runtime cannot run: Flink's own (`executionPlan-`, `jobGraph-`:
    /// Java-serialized handles to Java-serialized plans) and its own entries that do not
    /// parse, by key (a malformed job id) or by value. An entry marked for deletion (in
    /// either format) is a removal under way, no job to run, and is not among them. Read
    /// without writing anything.
    pub async fn unreadable_plans(&self) -> Result<Vec<String>> {
        let Some(cm) = self.store.cas.get(&self.store.name).await? else {
            return Ok(Vec::new());
        };
        Ok(cm
            .data
            .iter()
            .flatten()
            .filter(|(_, value)| !HaPointer::decode(value).is_ok_and(|pointer| pointer.marked_for_deletion))
            .filter(|(key, value)| {
                key.starts_with(FLINK_EXECUTION_PLAN_PREFIX)
                    || key.starts_with(JOB_GRAPH_PREFIX)
                    || key
                        .strip_prefix(EXECUTION_PLAN_PREFIX)
                        .is_some_and(|job_id| JobId::parse(job_id).is_err() || Pointer::parse(value).is_err())
            })
            .map(|(key, _)| key.clone())
            .collect())
    }

    /// Removes a job's plan. A missing cluster ConfigMap is an error to retry, not "done":
    /// its leader may be restoring it, plan included.
    pub async fn remove(&self, job_id: &str) -> Result<()> {
        self.store.remove_from_existing(&execution_plan_key(job_id)).await
    }
}

/// Everything a job's HA data is made of, for its cleanup.
pub struct JobHa<'a> {
    /// Compare-and-set on the cluster's ConfigMaps.
    pub cas: &'a ConfigMapCas,
    /// The Flink cluster id (`kubernetes.cluster-id`).
    pub cluster_id: &'a str,
    /// The job id (32 lower-case hex digits).
    pub job_id: &'a str,
    /// The payload store in `storageDir` that holds the job's checkpoints and plan.
    pub payloads: &'a PayloadStore,
    /// This leader's fence on the job's ConfigMap.
    pub fence: &'a Fence,
    /// This process's identity in the lock (for the plan and the leader entry).
    pub identity: &'a str,
    /// The grant's lease: the job-result writes and the blob deletes, which no
    /// compare-and-set guards, run inside it.
    pub lease: &'a LeaderLease,
}

/// A job reached a globally terminal state with `result`: record it as a dirty entry
/// of the job-result store, remove the job's checkpoints, counter, leader entry and
/// plan, delete its job ConfigMap, then mark the entry clean. Idempotent: a retry after
/// a partial cleanup (by this or a new leader, with the dirty entry's result) finishes it.
pub async fn clean_up_job(job: JobHa<'_>, results: &JobResultStore, result: &JobResult) -> Result<()> {
    if result.job_id != job.job_id {
        return Err(Error::Refused(format!(
            "the result of job {} cannot end job {}",
            result.job_id, job.job_id
        )));
    }
    // First, so that from here on no leader recovers the job from its plan, however far
    // the cleanup gets.
    let cleanup_first = crate::planted::planted(crate::planted::Bug::CleanupBeforeResult);
    if !crate::planted::planted(crate::planted::Bug::NoJobResult) && !cleanup_first {
        results.create_dirty(result, job.lease).await?;
    }

    let checkpoints = CompletedCheckpointStore::new(
        job.cas.clone(),
        job.cluster_id,
        job.job_id,
        job.payloads.clone(),
        job.fence.clone(),
        1,
    );
    let counter = CheckpointIdCounter::new(job.cas.clone(), job.cluster_id, job.job_id, job.fence.clone());
    let job_cm = names::job_config_map(job.cluster_id, job.job_id);
    match checkpoints.shutdown(true).await.and(counter.shutdown(true).await) {
        Ok(()) | Err(Error::Missing { .. }) => {}
        Err(error) => return Err(error),
    }
    // Its blobs: the folder is named after the job, so it is this job's alone.
    delete_job_blobs(job.payloads, job.job_id, job.lease).await?;

    let cluster_cm = names::cluster_config_map(job.cluster_id);
    let entry = names::leader_entry_key(&names::job_component(job.job_id));
    let removed = job
        .cas
        .update(&cluster_cm, |cm| {
            check_holds_lock(cm, job.identity, &cluster_cm)?;
            let removed = cm.data.as_mut().and_then(|d| d.remove(&entry));
            Ok(if removed.is_some() {
                Change::Write
            } else {
                Change::Unchanged
            })
        })
        .await;
    // A missing cluster ConfigMap fails the cleanup (to be retried): its leader may be
    // restoring it, with this entry and the plan in it.
    removed?;
    ExecutionPlanStore::new(job.cas.clone(), job.cluster_id, job.payloads.clone(), job.identity)
        .remove(job.job_id)
        .await?;

    // The job ConfigMap itself, only if this leader still fences it.
    if let Some(cm) = job.cas.get(&job_cm).await? {
        job.fence.check(&cm, &job_cm)?;
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: cm.metadata.resource_version.clone(),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match job.cas.api.delete(&job_cm, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(Error::Kube(error)),
        }
    }
    if cleanup_first {
        results.create_dirty(result, job.lease).await?;
    }
    results.mark_clean(job.job_id, job.lease).await
}

/// What a new leader does with the jobs it finds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovery {
    /// Jobs to recover from their plans: those with a plan and no job-result entry.
    pub recover: Vec<JobId>,
    /// Jobs that ended but whose cleanup did not finish: [`clean_up_job`] them with
    /// these results (after claiming their job ConfigMaps).
    pub finish_cleanup: Vec<JobResult>,
}

/// The jobs to recover, and the cleanups to finish. A job with an entry in the
/// job-result store, dirty or clean, ended for good and is never run again, whatever
/// of its plan and checkpoints is left.
pub async fn recoverable_jobs(plans: &ExecutionPlanStore, results: &JobResultStore) -> Result<Recovery> {
    // A cluster that runs jobs this runtime cannot read (a Flink JobManager's) is not
    // taken up at all: running some of its jobs and skipping the rest would look like
    // recovery while Flink's jobs stood still.
    let unreadable = plans.unreadable_plans().await?;
    if !unreadable.is_empty() {
        return Err(Error::UnreadablePlans {
            name: plans.store.name.clone(),
            keys: unreadable,
        });
    }
    // Plans first: a job that ends between the two reads has its dirty entry written
    // before its plan goes, so the second read sees it and the job is not rerun.
    let mut planned = plans.job_ids().await?;
    // Jobs whose plan pointer went with a lost cluster ConfigMap (deleted while its leader
    // could not put it back): their job ConfigMaps keep a copy. Read before the results,
    // like the plans: a job ending between the reads has its dirty entry already written.
    let lost = plans.lost_plans(&planned).await?;
    planned.extend(lost.iter().map(|(job_id, _)| job_id.clone()));
    let mut entries = results.entries().await?;
    // Entries an earlier version wrote into the folder other clusters share, for the
    // jobs planned here only (read, never written): a job that ended is not run again
    // across an upgrade either.
    let planned_ids: Vec<&str> = planned.iter().map(JobId::as_str).collect();
    let legacy = results.legacy_entries(&planned_ids).await?;
    for result in legacy.dirty {
        if !entries.dirty.iter().any(|own| own.job_id == result.job_id) && !entries.clean.contains(&result.job_id) {
            tracing::warn!(job = %result.job_id, "a dirty job result in the shared folder of an earlier version; finishing its cleanup");
            entries.dirty.push(result);
        }
    }
    for job_id in legacy.clean {
        tracing::warn!(job = %job_id, "a clean job result in the shared folder of an earlier version; the job is not recovered");
        entries.clean.push(job_id);
    }
    let ended: BTreeSet<&str> = entries
        .dirty
        .iter()
        .map(|result| result.job_id.as_str())
        .chain(entries.clean.iter().map(String::as_str))
        .collect();
    for (job_id, copy) in &lost {
        if ended.contains(job_id.as_str()) {
            continue;
        }
        tracing::warn!(job = %job_id, "the execution-plan pointer is missing from the cluster ConfigMap (lost with a deleted one?); putting it back from the job ConfigMap's copy");
        plans.restore_pointer(job_id, copy).await?;
    }
    let recover = planned
        .into_iter()
        .filter(|job_id| !ended.contains(job_id.as_str()))
        .collect();
    Ok(Recovery {
        recover,
        finish_cleanup: entries.dirty,
    })
}

/// The cluster shut down normally: delete the payloads the cluster ConfigMap's pointers
/// name (marked leftovers of interrupted removals included), the blobs
/// (`<storageDir>/<cluster-id>/blob/job_<id>/`) of the jobs it names, then the cluster
/// ConfigMap.
///
/// Only the leader may do it, and only what is its own:
/// - `identity` must hold the lock, checked in the very version of the ConfigMap that is
///   deleted (uid and resourceVersion preconditions). A conflict means someone wrote in
///   between: read, check and try again, up to the CAS's retries.
/// - Refused while job ConfigMaps (`<cluster-id>-<job-id>-config-map`, by exact name)
///   or live plans remain: their jobs are not over, and their data would be lost. Other
///   ConfigMaps with the same labels (`flink-config-<id>`, `pod-template-<id>`) are not
///   HA data and are neither counted nor touched.
/// - Payloads are deleted by pointer, blobs by the jobs the ConfigMap names (a plan
///   whose removal was interrupted, a leader entry), never by folder: two clusters with
///   one id in two namespaces share `<storageDir>/<cluster-id>/`, `blob/` included.
///   Blobs of jobs that ended went with their job's cleanup; `blob/no_job/` is kept.
/// - Every delete in storage runs inside `lease` and is cut off at its step-down moment:
///   a leader paused after its lock check deletes nothing once its lease has run out.
///
/// The ConfigMap goes last, so a cleanup interrupted earlier is finished by a retry. Once
/// it is gone there is no lock to check, so nothing else is deleted.
///
/// The caller's [`crate::LeaderElection`] must not renew afterwards (a renewal that finds
/// the ConfigMap gone contends again and creates it anew): drop it once this returns.
pub async fn clean_up_cluster(
    cas: &ConfigMapCas,
    cluster_id: &str,
    payloads: &PayloadStore,
    identity: &str,
    lease: &LeaderLease,
) -> Result<()> {
    let name = names::cluster_config_map(cluster_id);
    let attempts = cas.max_retries.saturating_add(1);
    let mut unanswered = Unanswered::default();
    for attempt in 1..=attempts {
        refuse_while_jobs_remain(cas, cluster_id).await?;
        let Some(cm) = cas.get(&name).await? else {
            // Already deleted (by an earlier attempt whose answer was lost, or an earlier
            // cleanup).
            return Ok(());
        };
        check_holds_lock(&cm, identity, &name)?;
        for path in payloads_to_delete(&cm, &name)? {
            lease
                .bounded(|| format!("delete the payload {path}"), payloads.delete(&path))
                .await??;
        }
        for job_id in jobs_named(&cm) {
            delete_job_blobs(payloads, &job_id, lease).await?;
        }

        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: cm.metadata.uid.clone(),
                resource_version: cm.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        let version = cm.metadata.resource_version.clone().unwrap_or_default();
        match cas
            .within_deadline(format!("DELETE ConfigMap {name}"), cas.api.delete(&name, &params))
            .await
        {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => return Ok(()),
            // The ConfigMap changed since it was read: whose lock is it now?
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => {
                tracing::debug!(%name, attempt, "the cluster ConfigMap changed before its deletion; checking again");
            }
            Ok(Err(kube::Error::Api(status))) if (400..500).contains(&status.code) => {
                return Err(Error::Kube(kube::Error::Api(status)));
            }
            // No answer: the next read shows whether it is gone.
            Ok(Err(error)) => unanswered.push(version, error.to_string()),
            Err(timeout) => unanswered.push(version, timeout.to_string()),
        }
    }
    Err(unanswered.or(
        &name,
        Error::Conflict {
            name: name.clone(),
            attempts,
        },
    ))
}

/// Refuses while a job ConfigMap of the cluster exists, found by its exact name among
/// the ConfigMaps with the cluster's HA labels.
async fn refuse_while_jobs_remain(cas: &ConfigMapCas, cluster_id: &str) -> Result<()> {
    let remaining: Vec<String> = cas
        .job_config_maps(cluster_id)
        .await?
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    if remaining.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "cluster {cluster_id} still has job ConfigMaps ({}): their jobs are not terminal, so their HA data stays",
        remaining.join(", ")
    )))
}

/// The payload paths of every pointer in the cluster ConfigMap; refused while a plan is
/// live (or unreadable, so possibly live: a Flink JobManager's own handle).
fn payloads_to_delete(cm: &ConfigMap, name: &str) -> Result<Vec<String>> {
    let mut live = Vec::new();
    let mut paths = Vec::new();
    for (key, value) in cm.data.iter().flatten() {
        let is_plan = key.starts_with(EXECUTION_PLAN_PREFIX)
            || key.starts_with(FLINK_EXECUTION_PLAN_PREFIX)
            || key.starts_with(JOB_GRAPH_PREFIX);
        match Pointer::parse(value) {
            Ok(pointer) if is_plan && !pointer.marked_for_deletion => live.push(key.clone()),
            Ok(pointer) => paths.push(pointer.path),
            Err(_) if is_plan => live.push(key.clone()),
            // Not a pointer: a leader entry, or data that names no payload.
            Err(_) => {}
        }
    }
    if live.is_empty() {
        Ok(paths)
    } else {
        Err(Error::Refused(format!(
            "ConfigMap {name} still holds the plans {}: their jobs are not over, so their HA data stays",
            live.join(", ")
        )))
    }
}

/// The jobs the cluster ConfigMap names: by a plan key (the runtime's or Flink's, marked
/// or not) or a job's leader entry. Only well-formed job ids.
fn jobs_named(cm: &ConfigMap) -> BTreeSet<String> {
    let job_component = names::job_component("");
    cm.data
        .iter()
        .flatten()
        .filter_map(|(key, _)| {
            [EXECUTION_PLAN_PREFIX, FLINK_EXECUTION_PLAN_PREFIX, JOB_GRAPH_PREFIX]
                .iter()
                .find_map(|prefix| key.strip_prefix(prefix))
                .or_else(|| {
                    key.strip_prefix(names::LEADER_ENTRY_PREFIX)?
                        .strip_prefix(job_component.as_str())
                })
        })
        .filter(|job_id| is_job_id(job_id))
        .map(str::to_string)
        .collect()
}

/// Deletes Flink's blobs of one job, `<cluster folder>/blob/job_<job-id>/`, object by
/// object, each inside `lease` (the listing too). A malformed job id names no folder.
async fn delete_job_blobs(payloads: &PayloadStore, job_id: &str, lease: &LeaderLease) -> Result<()> {
    if !is_job_id(job_id) {
        return Ok(());
    }
    let (store, root) = payloads.object_store();
    let folder = root.clone().join(BLOB_FOLDER).join(format!("job_{job_id}"));
    let listing = || format!("list the blobs of job {job_id} in {}", payloads.description());
    let listed: Vec<Path> = lease
        .bounded(
            listing,
            store.list(Some(&folder)).map_ok(|meta| meta.location).try_collect(),
        )
        .await?
        .map_err(|source| Error::StorageIo {
            what: listing(),
            source,
        })?;
    for path in listed {
        let uri = payloads.uri_of(&path);
        match lease
            .bounded(|| format!("delete the blob {uri}"), store.delete(&path))
            .await?
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(Error::StorageIo {
                    what: format!("delete the blob {uri}"),
                    source,
                });
            }
        }
    }
    Ok(())
}
