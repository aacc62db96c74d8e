//! A JobManager-like process for failover tests and the demo: it contends for
//! leadership, publishes its address, and while it leads runs fake jobs that commit a
//! checkpoint every interval — recovering each at its latest checkpoint when it takes
//! over. It exercises every HA service the way a Flink JobManager does.
//!
//! Losing leadership suspends the jobs (their HA data stays) and the process contends
//! again; a graceful stop releases the lock so a standby takes over at once. With
//! `finish_after`, each job ends after that many checkpoints (its result recorded and
//! its HA data cleaned up, as Flink does) and a new one takes its place. With a
//! [`History`], the process writes down what it did for the nemesis test's checker.
//! With an [`OrphanSweep`], the leader deletes payloads of this cluster a killed writer
//! left without a pointer (never in the shared `default/` folder: see [`crate::sweep`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::HaSettings;
use crate::cleanup::ExecutionPlanStore;
use crate::error::{Error, Result};
use crate::history::{Event, History, instant_ns, monotonic_ns};
use crate::job_result_store::{ApplicationStatus, JobResult};
use crate::leader_election::{LeaderElection, LeaderLease, Leadership};
use crate::names::{self, JobId};
use crate::services::{HaServices, JobHaServices};
use crate::sweep::Sweep;

/// What the fake JobManager does besides HA.
#[derive(Clone, Default)]
pub struct JobManagerOptions {
    /// The RPC address published in the leader entries of the dispatcher, the resource
    /// manager and the jobs (Flink's form: `pekko.tcp://flink@host:6123/user/rpc/...`).
    pub address: String,
    /// The REST endpoint published in the `restserver` leader entry, an http(s) URL as
    /// Flink's REST clients expect there.
    pub rest_address: String,
    /// Jobs to submit when the cluster has none (and to keep running, with `finish_after`).
    pub jobs: usize,
    /// How often each running job completes a checkpoint.
    pub checkpoint_interval: Duration,
    /// A job ends (succeeded, cancelled or failed, at random) once it completed a
    /// checkpoint with this id or higher, and
    /// a new job is submitted in its place. `None`: jobs run until the process stops.
    pub finish_after: Option<u64>,
    /// Where to write down what this process does; [`History::disabled`] for nothing.
    pub history: History,
    /// How the leader sweeps orphaned payloads; `None`: it does not.
    pub orphan_sweep: Option<OrphanSweep>,
}

/// The leader's orphan sweep ([`crate::sweep`]): at each grant once its jobs are taken
/// up, then every `interval`, deleting orphans older than `min_age`.
#[derive(Clone, Copy, Debug)]
pub struct OrphanSweep {
    /// The time between two sweeps of one grant.
    pub interval: Duration,
    /// The youngest an orphan may be to be deleted; younger ones are kept for later.
    pub min_age: Duration,
}

/// Runs until `shutdown` turns true; then releases leadership and returns.
pub async fn run(
    client: kube::Client,
    settings: HaSettings,
    options: JobManagerOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let services = HaServices::new(client, settings)?;
    let election = services.leader_election();
    let history = options.history.for_identity(election.identity());
    history.record(Event::Started);
    let record_renewals = tokio::spawn(record_renewals(
        election.leadership(),
        election.valid_until(),
        history.clone(),
    ));
    tracing::info!(identity = election.identity(), cluster = %services.cluster_id(), storage = services.payloads().description(), "contending for leadership");
    let mut options = options;
    if options.orphan_sweep.is_some()
        && let Some(refusal) = services.orphan_sweep_refusal()
    {
        // Said once, here: no grant would sweep this folder.
        tracing::warn!(%refusal, "the orphan sweep is off");
        options.orphan_sweep = None;
    }
    let options = Arc::new(options);
    let mut leadership = election.leadership();
    loop {
        // Follower: wait for a grant or a shutdown.
        let (session, epoch) = loop {
            if *shutdown.borrow() {
                record_renewals.abort();
                election.stop().await;
                history.record(Event::Stopped);
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
        let lease = election.lease(session);
        history.record(Event::Granted {
            session: session.to_string(),
            epoch,
            valid_until_ns: lease.valid_until().map(instant_ns),
        });
        let (stop_jobs, jobs_stop) = watch::channel(false);
        let grant = Grant {
            plans: Arc::new(services.execution_plans(&election)),
            stop: jobs_stop,
            services: services.clone(),
            options: options.clone(),
            epoch,
            lease,
            history: history.clone(),
        };
        let mut jobs = JoinSet::new();
        let mut sweeper = None;
        if let Err(error) = grant.take_up_jobs(&election, &mut jobs).await {
            // Holding the lock while running no job would stall the cluster for good:
            // say so, stop what started, and let a JobManager that can take over.
            tracing::error!(%error, "cannot take up the jobs; giving up leadership");
            grant.record_failure(None, &error);
            jobs.shutdown().await;
            // Written before the release: from here on this grant takes no action.
            history.record(Event::GaveUp {
                session: session.to_string(),
            });
            election.give_up(session);
        } else if let Some(sweep) = options.orphan_sweep {
            sweeper = Some(tokio::spawn(
                grant.clone().sweep_orphans(election.identity().to_string(), sweep),
            ));
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
                Some(ended) = jobs.join_next() => match ended {
                    Ok(Ok(JobEnd::Suspended)) => {}
                    Ok(Ok(JobEnd::Finished)) => {
                        // A session cluster keeps its number of jobs: submit the next one.
                        if let Err(error) = grant.submit_and_start(&election, &mut jobs).await {
                            tracing::warn!(%error, "could not submit a job in place of a finished one");
                            grant.record_failure(None, &error);
                        }
                    }
                    Ok(Err(error)) => tracing::warn!(%error, "a job stopped checkpointing"),
                    Err(_) => {}
                },
            }
        }
        if let Some(sweeper) = sweeper {
            // Mid-sweep is fine: a delete is idempotent and touches only orphans.
            sweeper.abort();
        }
        stop_jobs_gracefully(&stop_jobs, &mut jobs).await;
        history.record(Event::Revoked {
            session: session.to_string(),
        });
    }
}

/// Whether a failure to recover a job lies in that job's own data, so that other jobs
/// can still be recovered: anything else (not leading, the API server or storage
/// unreachable, a storageDir that is not the one that wrote the pointers) fails the
/// whole takeover, for a JobManager that may do better.
fn is_the_jobs_own(error: &Error) -> bool {
    matches!(
        error,
        Error::CheckpointPayloadMissing { .. } | Error::PayloadMissing { .. } | Error::Corrupt { .. }
    )
}

/// Asks the jobs to stop at their next checkpoint boundary, so no checkpoint is cut off
/// half-added (its subsumed predecessor marked but not yet removed); aborts those that
/// do not within a second.
async fn stop_jobs_gracefully(stop: &watch::Sender<bool>, jobs: &mut JoinSet<Result<JobEnd>>) {
    stop.send_replace(true);
    let all_stopped = async { while jobs.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(1), all_stopped).await.is_err() {
        jobs.shutdown().await;
    }
}

/// Writes each step-down deadline a renewal sets into the history.
async fn record_renewals(
    leadership: watch::Receiver<Leadership>,
    mut valid_until: watch::Receiver<Option<Instant>>,
    history: History,
) {
    if !history.is_enabled() {
        return;
    }
    while valid_until.changed().await.is_ok() {
        let until = *valid_until.borrow_and_update();
        let session = leadership.borrow().session_id();
        if let (Some(until), Some(session)) = (until, session) {
            history.record(Event::Renewed {
                session: session.to_string(),
                valid_until_ns: instant_ns(until),
            });
        }
    }
}

/// How a job task ended without an error.
enum JobEnd {
    /// The job reached its end and its HA data was cleaned up.
    Finished,
    /// Asked to stop (leadership lost or the process stopping): its HA data stays.
    Suspended,
}

/// Everything one grant of leadership acts with.
#[derive(Clone)]
struct Grant {
    services: HaServices,
    options: Arc<JobManagerOptions>,
    epoch: u64,
    lease: LeaderLease,
    history: History,
    /// One store for the grant: it remembers adds whose outcome it must settle later.
    plans: Arc<ExecutionPlanStore>,
    /// Turns true when the jobs are to stop at their next checkpoint boundary.
    stop: watch::Receiver<bool>,
}

impl Grant {
    fn cluster_id(&self) -> &str {
        self.services.cluster_id()
    }

    /// The lease check before an action: when it was made and the deadline it was
    /// checked against, both on the history's monotonic scale.
    fn may_act(&self) -> Result<(u64, u64)> {
        let acted_ns = monotonic_ns();
        self.lease.check()?;
        let valid_until_ns = self
            .lease
            .valid_until()
            .map(instant_ns)
            .ok_or_else(|| Error::NotLeader {
                name: names::cluster_config_map(self.cluster_id()),
                reason: "this grant is over".into(),
            })?;
        Ok((acted_ns, valid_until_ns))
    }

    fn record_failure(&self, job: Option<&str>, error: &Error) {
        self.history.record(Event::WriteFailed {
            job: job.unwrap_or_default().to_string(),
            epoch: self.epoch,
            fenced: matches!(error, Error::NotLeader { .. }),
            error: error.to_string(),
        });
    }

    /// On a grant: publish the address, finish interrupted cleanups, recover (or submit)
    /// the jobs, start checkpointing.
    async fn take_up_jobs(&self, election: &LeaderElection, jobs: &mut JoinSet<Result<JobEnd>>) -> Result<()> {
        // Read before anything is written: a cluster with jobs this runtime cannot read
        // (a Flink JobManager's) is refused untouched, and the grant given up. Jobs that
        // ended for good are never rerun; cleanups a crash interrupted are finished (a
        // failure leaves the dirty entry for the next grant, and blocks no other job).
        let recovery = self.services.recoverable_jobs(&self.plans).await?;
        for component in [names::DISPATCHER, names::RESOURCE_MANAGER] {
            election
                .publish_leader_address(component, &self.options.address)
                .await?;
        }
        election
            .publish_leader_address(names::REST_SERVER, &self.options.rest_address)
            .await?;
        for result in &recovery.finish_cleanup {
            match self.services.finish_cleanup(election, self.epoch, result).await {
                Ok(()) => {
                    tracing::info!(job = %result.job_id, "finished the cleanup of an ended job");
                    self.history.record(Event::CleanupFinished {
                        job: result.job_id.clone(),
                        epoch: self.epoch,
                    });
                }
                Err(error) => {
                    tracing::warn!(job = %result.job_id, %error, "could not finish the cleanup of an ended job");
                    self.record_failure(Some(&result.job_id), &error);
                }
            }
        }
        // A job whose own data cannot be read (its newest checkpoint's payload missing, a
        // corrupt entry) fails alone, reported; the others are recovered. It is not
        // replaced by a new job either: it still exists, for an operator to decide.
        let recovered = recovery.recover.len();
        for job_id in recovery.recover {
            let job = job_id.to_string();
            match self.start_job(election, job_id, jobs).await {
                Ok(()) => {}
                Err(error) if is_the_jobs_own(&error) => {
                    tracing::error!(%job, %error, "cannot recover this job; the others go on");
                    self.record_failure(Some(&job), &error);
                }
                Err(error) => return Err(error),
            }
        }
        for _ in recovered..self.options.jobs {
            self.submit_and_start(election, jobs).await?;
        }
        Ok(())
    }

    /// Submits a new job (its plan) and starts it.
    async fn submit_and_start(&self, election: &LeaderElection, jobs: &mut JoinSet<Result<JobEnd>>) -> Result<()> {
        let job_id = JobId::from_parts(fastrand::u64(..), fastrand::u64(..));
        let (acted_ns, valid_until_ns) = self.may_act()?;
        self.plans
            .put(
                job_id.as_str(),
                Bytes::from(format!("{{\"job\":\"{job_id}\",\"epoch\":{}}}", self.epoch)),
            )
            .await?;
        tracing::info!(job = %job_id, "submitted");
        self.history.record(Event::JobSubmitted {
            job: job_id.to_string(),
            epoch: self.epoch,
            acted_ns,
            valid_until_ns,
        });
        self.start_job(election, job_id, jobs).await
    }

    /// Claims the job for this epoch, recovers it at its latest checkpoint and spawns
    /// its checkpointing task.
    async fn start_job(
        &self,
        election: &LeaderElection,
        job_id: JobId,
        jobs: &mut JoinSet<Result<JobEnd>>,
    ) -> Result<()> {
        let job = self.services.take_up_job(election, self.epoch, &job_id).await?;
        self.history.record(Event::JobClaimed {
            job: job_id.to_string(),
            epoch: self.epoch,
        });
        election
            .publish_leader_address(&names::job_component(job_id.as_str()), &self.options.address)
            .await?;
        let recovered = job.checkpoints().recover().await?;
        let (acted_ns, valid_until_ns) = self.may_act()?;
        match &recovered {
            Some((id, _)) => tracing::info!(job = %job_id, checkpoint = id, "recovered"),
            None => tracing::info!(job = %job_id, "started without a checkpoint"),
        }
        self.history.record(Event::Recovered {
            job: job_id.to_string(),
            epoch: self.epoch,
            checkpoint: recovered.map(|(id, _)| id),
            acted_ns,
            valid_until_ns,
        });
        let grant = self.clone();
        jobs.spawn(async move {
            let ended = grant.run_job(&job).await;
            if let Err(error) = &ended {
                grant.record_failure(Some(job_id.as_str()), error);
            }
            ended
        });
        Ok(())
    }

    /// The orphan sweep of this grant: one now, then one every interval, while the
    /// grant may act. A failed sweep is tried again at the next interval.
    async fn sweep_orphans(self, identity: String, sweep: OrphanSweep) {
        loop {
            if self.may_act().is_err() {
                return;
            }
            // Before the listing begins: the checker reads it as "no later than".
            let listed_ns = monotonic_ns();
            match self.services.sweep_orphans_as(&identity, sweep.min_age).await {
                Ok(Sweep::Done(report)) => {
                    if !report.deleted.is_empty() {
                        tracing::info!(
                            deleted = report.deleted.len(),
                            young = report.young,
                            "swept orphaned payloads"
                        );
                    }
                    self.history.record(Event::Swept {
                        epoch: self.epoch,
                        listed_ns,
                        deleted: report.deleted,
                        young: report.young,
                    });
                }
                // Said by the sweep, with why: nothing here will change that.
                Ok(Sweep::NotOurFolder { .. } | Sweep::Refused(_)) => return,
                Err(error) => tracing::warn!(%error, "orphan sweep failed; trying again later"),
            }
            tokio::time::sleep(sweep.interval).await;
        }
    }

    /// One checkpoint: an id from the counter, then the add. The id. The payload names its
    /// job, id and writer's epoch, so the nemesis harness can tell from the bytes it sees
    /// stored whose write a pointer is.
    async fn checkpoint(&self, job: &JobHaServices, sent_ns: u64, valid_until_ns: u64) -> Result<u64> {
        let job_id = job.job_id().as_str();
        let id = job.counter().get_and_increment().await?;
        self.history.record(Event::CheckpointStarted {
            job: job_id.to_string(),
            epoch: self.epoch,
            id,
            sent_ns,
        });
        let added = job
            .checkpoints()
            .add(
                id,
                Bytes::from(format!(
                    "{{\"job\":\"{job_id}\",\"checkpoint\":{id},\"epoch\":{}}}",
                    self.epoch
                )),
            )
            .await?;
        tracing::info!(job = %job_id, checkpoint = id, "checkpoint completed");
        self.history.record(Event::CheckpointAcked {
            job: job_id.to_string(),
            epoch: self.epoch,
            id,
            path: added.path,
            sent_ns,
            valid_until_ns,
        });
        Ok(id)
    }

    /// A job's cleanup, retried with backoff while this grant may act (as Flink retries
    /// its cleanup): what a failure leaves is a dirty result for the next leader.
    async fn clean_up(&self, job: &JobHaServices, result: &JobResult) -> Result<()> {
        let job_id = job.job_id().as_str();
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.services.clean_up_job(job, result).await {
                Ok(()) => return Ok(()),
                Err(error) if !matches!(error, Error::NotLeader { .. }) && self.lease.check().is_ok() => {
                    tracing::warn!(job = %job_id, %error, "job cleanup failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// A running job: a checkpoint every interval, while this grant may act; the end
    /// of the job once it reached `finish_after`.
    async fn run_job(&self, job: &JobHaServices) -> Result<JobEnd> {
        let job_id = job.job_id().as_str();
        let started = Instant::now();
        let mut stop = self.stop.clone();
        let mut tick = tokio::time::interval(self.options.checkpoint_interval);
        // After a freeze, one checkpoint, not a burst of the missed ones.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|stop| *stop) => return Ok(JobEnd::Suspended),
            }
            // Only while this grant may act: a frozen process's timers fire late.
            let (sent_ns, valid_until_ns) = self.may_act()?;
            let id = match self.checkpoint(job, sent_ns, valid_until_ns).await {
                Ok(id) => id,
                // Fenced out or no longer leader: the job stops here.
                Err(error @ Error::NotLeader { .. }) => return Err(error),
                // A failed checkpoint does not fail the job (as Flink tolerates failed
                // checkpoints): the next one is tried at the next interval.
                Err(error) => {
                    tracing::warn!(job = %job_id, %error, "checkpoint failed");
                    self.record_failure(Some(job_id), &error);
                    continue;
                }
            };
            if self.options.finish_after.is_some_and(|last| id >= last) {
                self.may_act()?;
                self.history.record(Event::JobEnding {
                    job: job_id.to_string(),
                    epoch: self.epoch,
                });
                let runtime_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
                // Jobs end every way Flink's do; the job-result store treats them alike.
                let status = match fastrand::u8(..3) {
                    0 => ApplicationStatus::Succeeded,
                    1 => ApplicationStatus::Canceled,
                    _ => ApplicationStatus::Failed,
                };
                let result = JobResult::new(job_id, status, runtime_ms);
                let cleaned = self.clean_up(job, &result).await;
                // The dirty entry went first: once that is written, the job has ended.
                let ended = match &cleaned {
                    Ok(()) => true,
                    Err(_) => self.services.job_results().has_entry(job_id).await.unwrap_or(false),
                };
                if ended {
                    tracing::info!(job = %job_id, cleaned = cleaned.is_ok(), "job finished");
                    self.history.record(Event::JobFinished {
                        job: job_id.to_string(),
                        epoch: self.epoch,
                        cleaned: cleaned.is_ok(),
                    });
                }
                cleaned?;
                return Ok(JobEnd::Finished);
            }
        }
    }
}
