//! A JobManager-like process for failover tests and the demo: it contends for
//! leadership, publishes its address, and while it leads runs fake jobs that commit a
//! checkpoint every interval — recovering each at its latest checkpoint when it takes
//! over. It exercises every HA service the way a Flink JobManager does.
//!
//! Losing leadership suspends the jobs (their HA data stays) and the process contends
//! again; a graceful stop releases the lock so a standby takes over at once.

use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::HaSettings;
use crate::cas::ConfigMapCas;
use crate::checkpoint_counter::CheckpointIdCounter;
use crate::checkpoint_store::CompletedCheckpointStore;
use crate::cleanup::{ExecutionPlanStore, JobHa, clean_up_job, recoverable_jobs};
use crate::error::Result;
use crate::fence::Fence;
use crate::job_result_store::JobResultStore;
use crate::leader_election::{LeaderElection, LeaderLease, Leadership};
use crate::names;
use crate::payloads::PayloadStore;

/// What the fake JobManager does besides HA.
#[derive(Clone, Debug)]
pub struct JobManagerOptions {
    /// The address published in the leader entries.
    pub address: String,
    /// Jobs to submit when the cluster has none.
    pub jobs: usize,
    pub checkpoint_interval: Duration,
}

/// Runs until `shutdown` turns true; then releases leadership and returns.
pub async fn run(
    client: kube::Client,
    settings: HaSettings,
    options: JobManagerOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client, &settings.namespace);
    let payloads = PayloadStore::for_settings(&settings)?;
    let cas = ConfigMapCas::new(
        api.clone(),
        settings.election.max_retries,
        settings.election.lease_duration,
    );
    let election = LeaderElection::start(api, settings.election.clone());
    tracing::info!(identity = election.identity(), cluster = %settings.cluster_id, storage = payloads.description(), "contending for leadership");
    let mut leadership = election.leadership();
    loop {
        // Follower: wait for a grant or a shutdown.
        let (session, epoch) = loop {
            if *shutdown.borrow() {
                election.stop().await;
                return Ok(());
            }
            if let Leadership::Leader { session_id, epoch } = *leadership.borrow_and_update() {
                break (session_id, epoch);
            }
            tokio::select! {
                _ = leadership.changed() => {}
                _ = shutdown.changed() => {}
            }
        };
        tracing::info!(%session, epoch, "leading");
        let mut jobs = JoinSet::new();
        let lease = election.lease(session);
        if let Err(error) = lead(
            &election, &cas, &payloads, &settings, &options, epoch, &lease, &mut jobs,
        )
        .await
        {
            // Holding the lock while running no job would stall the cluster for good:
            // say so, stop what started, and let a JobManager that can take over.
            tracing::error!(%error, "cannot take up the jobs; giving up leadership");
            jobs.shutdown().await;
            election.give_up();
        }
        // Leading until revoked or shut down; then the jobs are suspended.
        loop {
            tokio::select! {
                _ = leadership.changed() => {
                    if leadership.borrow_and_update().session_id() != Some(session) {
                        tracing::warn!("leadership lost; suspending the jobs");
                        break;
                    }
                }
                _ = shutdown.changed() => break,
                Some(ended) = jobs.join_next() => {
                    if let Ok(Err(error)) = ended {
                        tracing::warn!(%error, "a job stopped checkpointing");
                    }
                }
            }
        }
        jobs.shutdown().await;
    }
}

/// On a grant: publish the address, recover (or submit) the jobs, start checkpointing.
// Everything a grant needs, passed as it is; a `HaServices` front door (issue 11) will
// bundle these.
#[allow(clippy::too_many_arguments)]
async fn lead(
    election: &LeaderElection,
    cas: &ConfigMapCas,
    payloads: &PayloadStore,
    settings: &HaSettings,
    options: &JobManagerOptions,
    epoch: u64,
    lease: &LeaderLease,
    jobs: &mut JoinSet<Result<()>>,
) -> Result<()> {
    for component in [names::DISPATCHER, names::RESOURCE_MANAGER, names::REST_SERVER] {
        election.publish_leader_address(component, &options.address).await?;
    }
    let plans = ExecutionPlanStore::new(cas.clone(), &settings.cluster_id, payloads.clone(), election.identity());
    let fence = Fence::new(epoch, election.identity());
    // Jobs that ended for good are never rerun; cleanups a crash interrupted are finished
    // (a failure leaves the dirty entry for the next grant, and blocks no other job).
    let results = JobResultStore::for_settings(settings)?;
    let recovery = recoverable_jobs(&plans, &results).await?;
    for result in &recovery.finish_cleanup {
        let job = JobHa {
            cas,
            cluster_id: &settings.cluster_id,
            job_id: &result.job_id,
            payloads,
            fence: &fence,
            identity: election.identity(),
        };
        let finished = match fence.claim_job(cas, &settings.cluster_id, &result.job_id).await {
            Ok(_) => clean_up_job(job, &results, result).await,
            Err(error) => Err(error),
        };
        match finished {
            Ok(()) => tracing::info!(job = %result.job_id, "finished the cleanup of an ended job"),
            Err(error) => tracing::warn!(job = %result.job_id, %error, "could not finish the cleanup of an ended job"),
        }
    }
    let mut job_ids = recovery.recover;
    if job_ids.is_empty() {
        for _ in 0..options.jobs {
            let job_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            plans
                .put(&job_id, Bytes::from(format!("{{\"job\":\"{job_id}\"}}")))
                .await?;
            tracing::info!(job = %job_id, "submitted");
            job_ids.push(job_id);
        }
    }
    for job_id in job_ids {
        fence.claim_job(cas, &settings.cluster_id, &job_id).await?;
        election
            .publish_leader_address(&names::job_component(&job_id), &options.address)
            .await?;
        let counter = CheckpointIdCounter::new(cas.clone(), &settings.cluster_id, &job_id, fence.clone());
        counter.start().await?;
        let checkpoints = CompletedCheckpointStore::new(
            cas.clone(),
            &settings.cluster_id,
            &job_id,
            payloads.clone(),
            fence.clone(),
            settings.num_retained,
        );
        match checkpoints.recover().await? {
            Some((id, _)) => tracing::info!(job = %job_id, checkpoint = id, "recovered"),
            None => tracing::info!(job = %job_id, "started without a checkpoint"),
        }
        let interval = options.checkpoint_interval;
        let lease = lease.clone();
        jobs.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                // Only while this grant may act: a frozen process's timers fire late.
                lease.check()?;
                let id = counter.get_and_increment().await?;
                checkpoints
                    .add(id, Bytes::from(format!("{{\"job\":\"{job_id}\",\"checkpoint\":{id}}}")))
                    .await?;
                tracing::info!(job = %job_id, checkpoint = id, "checkpoint completed");
            }
        });
    }
    Ok(())
}
