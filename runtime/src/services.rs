//! The front door: [`HaServices`] for one cluster id, built from a `kube::Client` and
//! [`HaSettings`], hands out everything a JobManager needs — the election, leader
//! retrieval, the execution-plan store, the job-result store and, per job a grant takes
//! up, a [`JobHaServices`] with the job's counter and checkpoint store — wired the way
//! they must be (one compare-and-set protocol, one payload folder, the fence of the
//! grant on every job write). [`crate::jobmanager`] is built on it like any embedder.
//!
//! ```no_run
//! # async fn embed() -> Result<(), Box<dyn std::error::Error>> {
//! use flink_ha_runtime::{HaServices, HaSettings, JobId};
//!
//! let settings = HaSettings::from_flink_config("config.yaml", &std::fs::read_to_string("config.yaml")?)?;
//! let services = HaServices::new(kube::Client::try_default().await?, settings)?;
//! let election = services.leader_election();
//! let (_session, epoch) = election.wait_for_grant().await;
//! let job_id = JobId::parse("a1b2c3d4e5f60718293a4b5c6d7e8f90")?; // checked once, here
//! let job = services.take_up_job(&election, epoch, &job_id).await?;
//! let latest = job.checkpoints().recover().await?; // restart from here
//! let id = job.counter().get_and_increment().await?;
//! job.checkpoints().add(id, bytes::Bytes::from_static(b"state")).await?;
//! election.stop().await; // releases the lock: a standby takes over at once
//! # Ok(()) }
//! ```

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use crate::cas::ConfigMapCas;
use crate::checkpoint_counter::CheckpointIdCounter;
use crate::checkpoint_store::CompletedCheckpointStore;
use crate::cleanup::{self, ExecutionPlanStore, JobHa, Recovery};
use crate::config::HaSettings;
use crate::error::Result;
use crate::fence::Fence;
use crate::job_result_store::{JobResult, JobResultStore};
use crate::leader_election::{LeaderElection, LeaderLease};
use crate::leader_retrieval::LeaderRetrieval;
use crate::names::{ClusterId, JobId};
use crate::payloads::{PayloadOwner, PayloadStore};
use crate::sweep::{self, Refusal, Sweep};

/// The HA services of one cluster id; cheap to clone.
#[derive(Clone)]
pub struct HaServices {
    api: Api<ConfigMap>,
    cas: ConfigMapCas,
    settings: Arc<HaSettings>,
    payloads: PayloadStore,
    results: JobResultStore,
}

impl HaServices {
    /// The services of the cluster `settings` describe, in its namespace. Opens the
    /// storageDir and the job-result store (no request is made yet); fails on a
    /// storageDir this build cannot reach.
    pub fn new(client: kube::Client, settings: HaSettings) -> Result<HaServices> {
        let api: Api<ConfigMap> = Api::namespaced(client, &settings.namespace);
        let payloads = PayloadStore::for_settings(&settings)?;
        let results = JobResultStore::for_settings(&settings)?;
        let cas = ConfigMapCas::new(
            api.clone(),
            settings.election.max_retries,
            settings.election.lease_duration,
        );
        Ok(HaServices {
            api,
            cas,
            settings: Arc::new(settings),
            payloads,
            results,
        })
    }

    /// The settings these services were built from.
    pub fn settings(&self) -> &HaSettings {
        &self.settings
    }

    /// The Flink cluster id (`kubernetes.cluster-id`).
    pub fn cluster_id(&self) -> &ClusterId {
        &self.settings.cluster_id
    }

    /// The payload folder, `<storageDir>/<cluster-id>/`. It writes the unowned names of
    /// earlier versions; the stores [`HaServices::execution_plans`] and
    /// [`HaServices::take_up_job`] hand out write names that carry this cluster's owner.
    pub fn payloads(&self) -> &PayloadStore {
        &self.payloads
    }

    /// The payload folder as the grant of `election` writes into it: names that carry
    /// this cluster's [`PayloadOwner`], from the owner token of the cluster ConfigMap
    /// whose lock it holds, so the orphan sweep can tell them from any other cluster's.
    /// While it follows, unowned names, which no sweep deletes.
    fn payloads_for(&self, election: &LeaderElection) -> PayloadStore {
        match election.payload_owner_token() {
            Some(token) => self.payloads.owned_by(PayloadOwner::new(
                &self.settings.namespace,
                &self.settings.cluster_id,
                &token,
            )),
            None => self.payloads.clone(),
        }
    }

    /// Flink's job-result store: which jobs ended for good.
    pub fn job_results(&self) -> &JobResultStore {
        &self.results
    }

    /// Starts contending for the cluster's lock, with a fresh identity.
    pub fn leader_election(&self) -> LeaderElection {
        LeaderElection::start(self.api.clone(), self.settings.election.clone())
    }

    /// Follows who leads `component` ([`crate::names::DISPATCHER`], a job's
    /// [`crate::names::job_component`], ...).
    pub fn leader_retrieval(&self, component: &str) -> LeaderRetrieval {
        LeaderRetrieval::start(self.api.clone(), &self.settings.cluster_id, component)
    }

    /// The execution plans, written only while `election` holds the lock. Keep one per
    /// grant: it settles adds whose outcome was unknown before its next add.
    pub fn execution_plans(&self, election: &LeaderElection) -> ExecutionPlanStore {
        ExecutionPlanStore::new(
            self.cas.clone(),
            &self.settings.cluster_id,
            self.payloads_for(election),
            election.identity(),
        )
    }

    /// What a new leader finds: jobs to recover (a plan, no result) and cleanups a crash
    /// interrupted (a dirty result).
    pub async fn recoverable_jobs(&self, plans: &ExecutionPlanStore) -> Result<Recovery> {
        cleanup::recoverable_jobs(plans, &self.results).await
    }

    /// Takes up `job_id` under the grant of `election` with `epoch`: claims its job
    /// ConfigMap (from here on no lower epoch writes it) and starts its counter. Recover
    /// its checkpoints ([`CompletedCheckpointStore::recover`]) before adding any.
    pub async fn take_up_job(&self, election: &LeaderElection, epoch: u64, job_id: &JobId) -> Result<JobHaServices> {
        let lease = election.lease_of_epoch(epoch)?;
        let fence = self.claim(election, epoch, job_id).await?;
        // The job's stores put its ConfigMap back if it is deleted under the running job.
        let job_cas = self.cas.keeping(
            &crate::names::job_config_map(&self.settings.cluster_id, job_id),
            lease.clone(),
        );
        let counter = CheckpointIdCounter::new(job_cas.clone(), &self.settings.cluster_id, job_id, fence.clone());
        counter.start().await?;
        let checkpoints = CompletedCheckpointStore::new(
            job_cas,
            &self.settings.cluster_id,
            job_id,
            self.payloads_for(election),
            fence.clone(),
            self.settings.num_retained,
        )
        .with_missing_checkpoint(self.settings.on_missing_checkpoint);
        Ok(JobHaServices {
            job_id: job_id.clone(),
            identity: election.identity().to_string(),
            lease,
            fence,
            counter,
            checkpoints,
        })
    }

    /// The job ended with `result`: records it (dirty) in the job-result store, removes
    /// the job's HA data and marks the result clean. Idempotent; see
    /// [`cleanup::clean_up_job`].
    pub async fn clean_up_job(&self, job: &JobHaServices, result: &JobResult) -> Result<()> {
        self.clean_up(job.job_id.as_str(), &job.fence, &job.identity, &job.lease, result)
            .await
    }

    /// Finishes the cleanup of a job that ended but whose cleanup a crash interrupted (a
    /// dirty result from [`HaServices::recoverable_jobs`]), under the grant of
    /// `election` with `epoch`.
    pub async fn finish_cleanup(&self, election: &LeaderElection, epoch: u64, result: &JobResult) -> Result<()> {
        let lease = election.lease_of_epoch(epoch)?;
        let fence = self.claim(election, epoch, &result.job_id).await?;
        self.clean_up(&result.job_id, &fence, election.identity(), &lease, result)
            .await
    }

    /// Claims `job_id`'s ConfigMap for the grant of `election` with `epoch`: from here on
    /// no lower epoch writes it.
    async fn claim(&self, election: &LeaderElection, epoch: u64, job_id: &str) -> Result<Fence> {
        let fence = Fence::new(epoch, election.identity());
        let plan = cleanup::plan_pointer(&self.cas, &self.settings.cluster_id, job_id).await?;
        fence
            .claim_job_noting_plan(&self.cas, &self.settings.cluster_id, job_id, plan.as_deref())
            .await?;
        Ok(fence)
    }

    /// [`cleanup::clean_up_job`] of `job_id` under `fence`.
    async fn clean_up(
        &self,
        job_id: &str,
        fence: &Fence,
        identity: &str,
        lease: &LeaderLease,
        result: &JobResult,
    ) -> Result<()> {
        let ha = JobHa {
            cas: &self.cas,
            cluster_id: &self.settings.cluster_id,
            job_id,
            payloads: &self.payloads,
            fence,
            identity,
            lease,
        };
        cleanup::clean_up_job(ha, &self.results, result).await
    }

    /// Deletes this cluster's payloads no pointer names that this process has seen for
    /// `min_age` (a writer killed between its payload and its pointer leaves them), as
    /// the lock holder `election`. `min_age` below [`sweep::min_age_floor`] of the
    /// cluster's settings is refused: a pointer could still land on a younger orphan.
    /// In the shared `default/` folder and on a store without create-only writes the
    /// sweep refuses ([`Sweep::Refused`]). See [`crate::sweep`].
    pub async fn sweep_orphans(&self, election: &LeaderElection, min_age: std::time::Duration) -> Result<Sweep> {
        self.sweep_orphans_as(election.identity(), min_age).await
    }

    /// [`HaServices::sweep_orphans`] for the lock holder `identity`
    /// ([`LeaderElection::identity`]), for a task that does not hold the election.
    pub async fn sweep_orphans_as(&self, identity: &str, min_age: std::time::Duration) -> Result<Sweep> {
        let floor = sweep::min_age_floor(&self.settings.election);
        if min_age < floor {
            return Err(crate::Error::Refused(format!(
                "an orphan sweep with a minimum age of {min_age:?}: with a lease of {:?} and {} retries, a pointer may still land on a payload up to {floor:?} old",
                self.settings.election.lease_duration, self.settings.election.max_retries
            )));
        }
        sweep::sweep_orphans(
            &self.cas,
            &self.settings.namespace,
            &self.settings.cluster_id,
            &self.payloads,
            identity,
            min_age,
        )
        .await
    }

    /// Why no orphan sweep can run in this cluster's folder, known from the
    /// configuration alone: the folder is the shared `default/`
    /// (`high-availability.cluster-id` unset). `None`: a sweep may run (it may still
    /// refuse on what it finds in the store).
    pub fn orphan_sweep_refusal(&self) -> Option<Refusal> {
        sweep::shared_folder(&self.payloads)
    }

    /// The cluster shut down for good: removes its HA data, as the lock holder (see
    /// [`cleanup::clean_up_cluster`]). Takes the election, which must not renew (and so
    /// recreate the ConfigMap) afterwards. Last goes the folder's owner marker of the
    /// orphan sweep, if it names this cluster (it holds no data; a leftover is harmless).
    pub async fn clean_up_cluster(&self, election: LeaderElection) -> Result<()> {
        let session = election.leadership().borrow().session_id();
        let cleaned = match session {
            Some(session) => {
                cleanup::clean_up_cluster(
                    &self.cas,
                    &self.settings.cluster_id,
                    &self.payloads,
                    election.identity(),
                    &election.lease(session),
                )
                .await
            }
            None => Err(crate::Error::NotLeader {
                name: crate::names::cluster_config_map(&self.settings.cluster_id),
                reason: "this process does not lead".into(),
            }),
        };
        // Dropped, not stopped: a release would write to a ConfigMap that is gone.
        drop(election);
        cleaned?;
        self.payloads.release_folder(&self.folder_owner()).await
    }

    /// How the orphan sweep's owner marker names this cluster: `<namespace>/<cluster-id>`.
    fn folder_owner(&self) -> String {
        format!("{}/{}", self.settings.namespace, self.settings.cluster_id)
    }
}

/// One job's HA services under one grant: its counter and checkpoint store, fenced
/// with the grant's epoch.
pub struct JobHaServices {
    job_id: JobId,
    identity: String,
    lease: LeaderLease,
    fence: Fence,
    counter: CheckpointIdCounter,
    checkpoints: CompletedCheckpointStore,
}

impl JobHaServices {
    /// The job's id.
    pub fn job_id(&self) -> &JobId {
        &self.job_id
    }

    /// The fence this grant claimed the job ConfigMap with.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// The job's checkpoint id counter.
    pub fn counter(&self) -> &CheckpointIdCounter {
        &self.counter
    }

    /// The job's completed checkpoints.
    pub fn checkpoints(&self) -> &CompletedCheckpointStore {
        &self.checkpoints
    }
}
