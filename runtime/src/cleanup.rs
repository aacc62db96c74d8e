//! The execution-plan store and cleanup, as `../shared/spec/flink-ha.md` lays them down.
//!
//! - Execution plans: `executionPlan-<job-id>` entries of the cluster ConfigMap, written
//!   only while the lock names this process (checked in the same CAS).
//! - A job ends for good (finished, cancelled, failed): its checkpoints (pointers and
//!   payloads), its counter, its leader entry and its plan go, then its job ConfigMap.
//! - The cluster shuts down normally: the cluster ConfigMap, then `<storageDir>/<cluster-id>`.
//! - A killed process or a deleted Deployment removes nothing of HA: that is the absence
//!   of a call here, and HA ConfigMaps never get owner references, so the garbage
//!   collector cannot take them either.

use bytes::Bytes;
use kube::api::DeleteParams;

use crate::cas::{Change, ConfigMapCas};
use crate::checkpoint_counter::CheckpointIdCounter;
use crate::checkpoint_store::CompletedCheckpointStore;
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::names;
use crate::payloads::PayloadStore;
use crate::state_handle_store::{Guard, StateHandleStore};

pub const EXECUTION_PLAN_PREFIX: &str = "executionPlan-";
/// The payload file name prefix, as Flink 2.x names it.
pub const EXECUTION_PLAN_KIND: &str = "submittedExecutionPlan";

/// `executionPlan-<job-id>`.
pub fn execution_plan_key(job_id: &str) -> String {
    format!("{EXECUTION_PLAN_PREFIX}{job_id}")
}

/// The execution plans of a cluster, in its cluster ConfigMap.
pub struct ExecutionPlanStore {
    store: StateHandleStore,
}

impl ExecutionPlanStore {
    /// `identity` is this process's identity in the lock ([`crate::LeaderElection::identity`]).
    pub fn new(cas: ConfigMapCas, cluster_id: &str, payloads: PayloadStore, identity: &str) -> Self {
        ExecutionPlanStore {
            store: StateHandleStore {
                cas,
                name: names::cluster_config_map(cluster_id),
                payloads,
                guard: Guard::Lock {
                    identity: identity.to_string(),
                },
            },
        }
    }

    pub async fn put(&self, job_id: &str, plan: Bytes) -> Result<()> {
        self.store
            .add(&execution_plan_key(job_id), EXECUTION_PLAN_KIND, plan)
            .await
    }

    pub async fn get(&self, job_id: &str) -> Result<Option<Bytes>> {
        self.store.get(&execution_plan_key(job_id)).await
    }

    /// The jobs with a stored plan: what a new leader recovers.
    pub async fn job_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .list(EXECUTION_PLAN_PREFIX)
            .await?
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix(EXECUTION_PLAN_PREFIX).map(str::to_string))
            .collect())
    }

    pub async fn remove(&self, job_id: &str) -> Result<()> {
        self.store.remove(&execution_plan_key(job_id)).await
    }
}

/// Everything a job's HA data is made of, for its cleanup.
pub struct JobHa<'a> {
    pub cas: &'a ConfigMapCas,
    pub cluster_id: &'a str,
    pub job_id: &'a str,
    pub payloads: &'a PayloadStore,
    pub fence: &'a Fence,
    /// This process's identity in the lock (for the plan and the leader entry).
    pub identity: &'a str,
}

/// A job reached a globally terminal state: remove its checkpoints, counter, leader
/// entry and plan, then delete its job ConfigMap. Idempotent: a retry after a partial
/// cleanup finishes it.
pub async fn clean_up_job(job: JobHa<'_>) -> Result<()> {
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

    let cluster_cm = names::cluster_config_map(job.cluster_id);
    let entry = names::leader_entry_key(&names::job_component(job.job_id));
    let removed = job
        .cas
        .update(&cluster_cm, |cm| {
            crate::leader_election::check_holds_lock(cm, job.identity, &cluster_cm)?;
            let removed = cm.data.as_mut().and_then(|d| d.remove(&entry));
            Ok(if removed.is_some() {
                Change::Write
            } else {
                Change::Unchanged
            })
        })
        .await;
    match removed {
        Ok(_) | Err(Error::Missing { .. }) => {}
        Err(error) => return Err(error),
    }
    ExecutionPlanStore::new(job.cas.clone(), job.cluster_id, job.payloads.clone(), job.identity)
        .remove(job.job_id)
        .await?;

    // Last, the job ConfigMap itself, only if this leader still fences it.
    if let Some(cm) = job.cas.get(&job_cm).await? {
        job.fence.check(&cm, &job_cm)?;
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
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
    Ok(())
}

/// The cluster shut down normally: delete the cluster ConfigMap, then the payload folder.
///
/// Safer than Flink: refused while job ConfigMaps remain. Each terminal job's cleanup
/// deleted its own, so one that is left belongs to a job that is not over, and deleting
/// the plans and payloads would make it unrecoverable.
pub async fn clean_up_cluster(cas: &ConfigMapCas, cluster_id: &str, payloads: &PayloadStore) -> Result<()> {
    let name = names::cluster_config_map(cluster_id);
    let params = kube::api::ListParams::default().labels(&names::ha_selector(cluster_id));
    let remaining: Vec<String> = cas
        .bounded(format!("list the HA ConfigMaps of {cluster_id}"), cas.api.list(&params))
        .await??
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .filter(|n| *n != name)
        .collect();
    if !remaining.is_empty() {
        return Err(Error::Refused(format!(
            "cluster {cluster_id} still has job ConfigMaps ({}): their jobs are not terminal, so their HA data stays",
            remaining.join(", ")
        )));
    }
    match cas.api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => return Err(Error::Kube(error)),
    }
    payloads.delete_all().await
}
