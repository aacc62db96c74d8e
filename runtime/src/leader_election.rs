//! Leader election on the cluster ConfigMap, Flink's lock: the fabric8 leader record in
//! the `control-plane.alpha.kubernetes.io/leader` annotation of
//! `<cluster-id>-cluster-config-map`, so a Flink JobManager and this runtime contend
//! for the same lock.
//!
//! Where it is safer than Flink:
//! - **Expiry by the local monotonic clock.** A lease counts as expired when the record
//!   has not changed for `leaseDuration` since this process first saw it (client-go's
//!   rule), not by comparing the holder's wall-clock `renewTime` with ours, which a clock
//!   offset between nodes turns into two leaders or none.
//! - **The exact identity.** The holder is parsed from the record and compared whole;
//!   Flink looks for its identity as a substring of the raw annotation.
//! - **One request per renewal.** The leader writes with the resourceVersion it cached
//!   from its last write and reads again only after a conflict (Flink: GET + PATCH).
//! - **Takeover at the moment of expiry.** Followers sleep until the observed lease runs
//!   out, and a watch on the ConfigMap wakes them when it is released, instead of polling
//!   every retry period.
//!
//! - **Step-down strictly before anyone may take over.** A follower can acquire no earlier
//!   than `lease-duration` after it saw the last renewal, which is after that renewal was
//!   sent. So the leader counts from the *send* time of its last successful renewal and
//!   stops acting as leader at `min(renew-deadline, lease-duration)` minus a margin of a
//!   tenth of the lease — one deadline for the whole renewal, retries after a conflict
//!   included. [`LeaderLease::check`] tells an action whether that moment has passed,
//!   by the monotonic clock, even when the process was frozen and its timers are late.
//! - **Epochs only grow.** The grant's epoch (the record's `leaderTransitions`) is also
//!   raised above every fence on the cluster's job ConfigMaps, so a recreated cluster
//!   ConfigMap (Flink deletes it on a graceful shutdown) or an unreadable record never
//!   sends it back to 0 below the jobs' fences.
//! - **A deleted lock is not up for grabs at once.** A follower that finds the cluster
//!   ConfigMap gone while the cluster has job ConfigMaps (a leader may be running) waits
//!   one lease from when it first saw it missing before it creates it: a leader's last
//!   renewal came before the deletion, so its step-down moment has passed by then. A fresh
//!   cluster (no job ConfigMaps, nothing observed) creates it at once.
//! - **A leader restores its deleted ConfigMap.** When a renewal finds the ConfigMap gone
//!   (`kubectl delete`, a cleanup tool) while the lease is valid, the leader creates it
//!   again with exactly what was deleted (the final state the watch's DELETED event
//!   carries: execution plans and leader entries included) and goes on leading. Never
//!   from an older copy, which could bring back the plan of a job that finished in
//!   between; without the event before the step-down moment it steps down instead.
//!   Flink loses the job plans with the ConfigMap and, after a failover, the jobs.
//!
//! The leader that takes the lock also mints, if the ConfigMap has none, the cluster's
//! payload owner token ([`crate::payloads::OWNER_TOKEN_ANNOTATION`]), kept through a
//! restore: the names of the payloads its grants write carry it, so the orphan sweep
//! can prove a file this cluster's ([`crate::sweep`]).
//!
//! On a graceful stop the lock is released (empty holder, 1 s lease, as Flink does) so a
//! standby takes over at once; [`LeaderElection::give_up`] releases it too, for a leader
//! that cannot take up its jobs, and lets another contender have it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, WatchEvent, WatchParams};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use flink_ha_policy::leader_record::LeaderRecord;

use crate::cas::{Change, ConfigMapCas};
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::names;
use crate::payloads::{OWNER_TOKEN_ANNOTATION, owner_token};

/// The lease a graceful release leaves behind, as Flink writes it.
const RELEASED_LEASE: Duration = Duration::from_secs(1);

/// Timings and names of one election.
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    /// `kubernetes.cluster-id`: the lock is on `<cluster-id>-cluster-config-map`.
    pub cluster_id: String,
    /// `high-availability.kubernetes.leader-election.lease-duration` (15 s).
    pub lease_duration: Duration,
    /// `...renew-deadline` (15 s): a leader that could not renew for this long steps down.
    pub renew_deadline: Duration,
    /// `...retry-period` (5 s): how often the leader renews and a follower retries.
    pub retry_period: Duration,
    /// `kubernetes.transactional-operation.max-retries` (15).
    pub max_retries: u32,
}

impl ElectionConfig {
    /// Flink's defaults for a cluster id.
    pub fn flink_defaults(cluster_id: &str) -> ElectionConfig {
        use flink_ha_policy::ha_layout as flink;
        ElectionConfig {
            cluster_id: cluster_id.to_string(),
            lease_duration: flink::DEFAULT_LEASE_DURATION,
            renew_deadline: flink::DEFAULT_RENEW_DEADLINE,
            retry_period: flink::DEFAULT_RETRY_PERIOD,
            max_retries: flink::DEFAULT_MAX_RETRIES,
        }
    }
}

/// What this process is, as the election sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Not leading: another process holds the lock, or no one does yet.
    Follower,
    /// Leading. The session id is fresh for every grant and goes into leader entries;
    /// the epoch is the lock's `leaderTransitions` as this grant wrote it, higher than
    /// every earlier grant's, and fences the job ConfigMaps ([`crate::fence`]).
    Leader {
        /// This grant's session id.
        session_id: Uuid,
        /// This grant's epoch (the lock's `leaderTransitions`).
        epoch: u64,
    },
}

impl Leadership {
    /// The grant's session id while leading; `None` for a follower.
    pub fn session_id(&self) -> Option<Uuid> {
        match self {
            Leadership::Leader { session_id, .. } => Some(*session_id),
            Leadership::Follower => None,
        }
    }

    /// The grant's epoch while leading; `None` for a follower.
    pub fn epoch(&self) -> Option<u64> {
        match self {
            Leadership::Leader { epoch, .. } => Some(*epoch),
            Leadership::Follower => None,
        }
    }
}

/// A running election. Dropping it aborts the election without releasing the lock
/// (as a killed process would); [`LeaderElection::stop`] releases it.
pub struct LeaderElection {
    identity: String,
    name: String,
    cas: ConfigMapCas,
    leadership: watch::Receiver<Leadership>,
    valid_until: watch::Receiver<Option<Instant>>,
    owner_token: watch::Receiver<Option<String>>,
    give_up: watch::Sender<Option<Uuid>>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// One grant's right to act as leader, for the tasks that act on it: valid while the
/// grant is current and its step-down moment has not passed.
#[derive(Clone)]
pub struct LeaderLease {
    session_id: Uuid,
    name: String,
    leadership: watch::Receiver<Leadership>,
    valid_until: watch::Receiver<Option<Instant>>,
}

impl LeaderLease {
    /// The grant this lease belongs to.
    pub fn session_id(&self) -> Uuid {
        self.session_id
    }

    /// Until when this process may act as leader, as known now; `None` once the grant
    /// is over.
    pub fn valid_until(&self) -> Option<Instant> {
        (self.leadership.borrow().session_id() == Some(self.session_id))
            .then(|| *self.valid_until.borrow())
            .flatten()
    }

    /// A lease that ends at `valid_until` whatever happens, for a caller whose
    /// leadership is decided elsewhere (an embedder's own election, a tool acting on a
    /// deadline of its own) and for tests. `name` is what its refusals name.
    pub fn until(name: impl Into<String>, valid_until: Instant) -> LeaderLease {
        let session_id = Uuid::new_v4();
        LeaderLease {
            session_id,
            name: name.into(),
            leadership: watch::channel(Leadership::Leader { session_id, epoch: 0 }).1,
            valid_until: watch::channel(Some(valid_until)).1,
        }
    }

    /// Runs `action` only while this grant may act, and cuts it off at the step-down
    /// moment known when it starts: for writes and deletes in storage, which no
    /// compare-and-set guards and whose client may retry for minutes. [`Error::NotLeader`]
    /// (nothing done) if the lease is over before it starts; [`Error::CutOff`] naming
    /// `what` if the moment comes first (it may or may not have taken effect).
    pub async fn bounded<T>(&self, what: impl FnOnce() -> String, action: impl Future<Output = T>) -> Result<T> {
        self.check()?;
        let until = self.valid_until().ok_or_else(|| Error::NotLeader {
            name: self.name.clone(),
            reason: "this grant is over".into(),
        })?;
        tokio::time::timeout_at(until.into(), action)
            .await
            .map_err(|_| Error::CutOff { what: what() })
    }

    /// `Ok` if this process may act as leader of this grant right now: call it before
    /// every action only a leader may take.
    pub fn check(&self) -> Result<()> {
        match self.valid_until() {
            Some(until) if Instant::now() < until => Ok(()),
            Some(_) => Err(Error::NotLeader {
                name: self.name.clone(),
                reason: "the lease ran out without a renewal".into(),
            }),
            None => Err(Error::NotLeader {
                name: self.name.clone(),
                reason: "this grant is over".into(),
            }),
        }
    }
}

impl LeaderElection {
    /// Starts contending at once with a fresh identity.
    pub fn start(api: Api<ConfigMap>, config: ElectionConfig) -> LeaderElection {
        let identity = Uuid::new_v4().to_string();
        let name = names::cluster_config_map(&config.cluster_id);
        let cas = ConfigMapCas::new(api, config.max_retries, config.lease_duration);
        let (leadership_tx, leadership) = watch::channel(Leadership::Follower);
        let (valid_until_tx, valid_until) = watch::channel(None);
        let (owner_token_tx, owner_token) = watch::channel(None);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (give_up, give_up_rx) = watch::channel(None);
        let elector = Elector {
            cas: cas.clone(),
            name: name.clone(),
            identity: identity.clone(),
            config,
            leadership: leadership_tx,
            valid_until: valid_until_tx,
            owner_token: owner_token_tx,
            observed: None,
            changed: Arc::new(Notify::new()),
            // Replaced when the watch starts (`Elector::run`).
            deleted: watch::channel(None).1,
            missing_since: None,
            give_up: give_up_rx,
        };
        let task = tokio::spawn(elector.run(shutdown_rx));
        LeaderElection {
            identity,
            name,
            cas,
            leadership,
            valid_until,
            owner_token,
            give_up,
            shutdown,
            task: Some(task),
        }
    }

    /// The right to act as leader under the grant `session_id`, for tasks to check.
    pub fn lease(&self, session_id: Uuid) -> LeaderLease {
        LeaderLease {
            session_id,
            name: self.name.clone(),
            leadership: self.leadership.clone(),
            valid_until: self.valid_until.clone(),
        }
    }

    /// The lease of the current grant if its epoch is `epoch`; [`Error::NotLeader`] if
    /// this process does not lead, or leads under another grant.
    pub fn lease_of_epoch(&self, epoch: u64) -> Result<LeaderLease> {
        match *self.leadership.borrow() {
            Leadership::Leader {
                session_id,
                epoch: current,
            } if current == epoch => Ok(self.lease(session_id)),
            Leadership::Leader { epoch: current, .. } => Err(Error::NotLeader {
                name: self.name.clone(),
                reason: format!("this process leads under epoch {current}, not {epoch}"),
            }),
            Leadership::Follower => Err(Error::NotLeader {
                name: self.name.clone(),
                reason: "this process does not lead".into(),
            }),
        }
    }

    /// Gives up the grant `session_id`: releases the lock (as a graceful stop does) and
    /// waits one lease before contending again, so another contender can take over. For
    /// a leader that cannot take up its jobs: holding the lock while running none of
    /// them would stall the cluster for good. A grant that already ended is not given up
    /// again, and neither is the next one.
    pub fn give_up(&self, session_id: Uuid) {
        self.give_up.send_replace(Some(session_id));
    }

    /// The step-down deadline of the current grant, moved by each renewal (`None` while
    /// following): what [`LeaderLease::check`] compares with.
    pub fn valid_until(&self) -> watch::Receiver<Option<Instant>> {
        self.valid_until.clone()
    }

    /// The identity written into the lock while this process leads.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The cluster's payload owner token ([`OWNER_TOKEN_ANNOTATION`] of the cluster
    /// ConfigMap whose lock this process holds; `None` while following), from which
    /// [`crate::payloads::PayloadOwner`] names this cluster's payloads.
    pub fn payload_owner_token(&self) -> Option<String> {
        self.owner_token.borrow().clone()
    }

    /// The current state; `changed()` on it waits for grants and revocations.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// Waits until this process leads; the session id of the grant.
    pub async fn wait_for_leadership(&self) -> Uuid {
        self.wait_for_grant().await.0
    }

    /// Waits until this process leads; the session id and epoch of the grant.
    pub async fn wait_for_grant(&self) -> (Uuid, u64) {
        let mut rx = self.leadership.clone();
        loop {
            if let Leadership::Leader { session_id, epoch } = *rx.borrow_and_update() {
                return (session_id, epoch);
            }
            if rx.changed().await.is_err() {
                // The election task ended; it never grants again.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Publishes `address` as the leader of `component` (`org.apache.flink.k8s.leader.
    /// <component>` = `<session>,<address>`), in a write that checks this process still
    /// holds the lock.
    pub async fn publish_leader_address(&self, component: &str, address: &str) -> Result<()> {
        let session = self.leadership.borrow().session_id().ok_or_else(|| Error::NotLeader {
            name: self.name.clone(),
            reason: "no leadership granted".into(),
        })?;
        let key = names::leader_entry_key(component);
        let value = names::leader_entry_value(&session, address);
        self.cas
            .update(&self.name, |cm| {
                check_holds_lock(cm, &self.identity, &self.name)?;
                let data = cm.data.get_or_insert_with(Default::default);
                if data.get(&key) == Some(&value) {
                    return Ok(Change::Unchanged);
                }
                data.insert(key.clone(), value.clone());
                Ok(Change::Write)
            })
            .await
            .map(drop)
    }

    /// Stops contending; if leading, removes this process's leader entries and releases
    /// the lock so a standby takes over at once.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaderElection {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The "leadership check in the same write": the lock in this very ConfigMap must name
/// `identity` exactly. Used by every write that only the leader may make.
pub fn check_holds_lock(cm: &ConfigMap, identity: &str, name: &str) -> Result<()> {
    held_record(cm, identity, name).map(drop)
}

/// A fresh payload owner token: 32 random hex digits.
fn new_owner_token() -> String {
    Uuid::new_v4().simple().to_string()
}

/// The leader record of `cm` if it names `identity`, else why not.
fn held_record(cm: &ConfigMap, identity: &str, name: &str) -> Result<LeaderRecord> {
    let not_leader = |reason: String| Error::NotLeader {
        name: name.to_string(),
        reason,
    };
    let raw = raw_record(cm).ok_or_else(|| not_leader("the ConfigMap has no leader record".into()))?;
    let record = LeaderRecord::parse(raw).map_err(|e| not_leader(format!("the leader record {e}")))?;
    if record.holder_identity == identity {
        Ok(record)
    } else if record.holder_identity.is_empty() {
        Err(not_leader("the lock is released".into()))
    } else {
        Err(not_leader(format!("the lock is held by {}", record.holder_identity)))
    }
}

/// The lock as last observed: the raw annotation and when it last changed (monotonic).
struct Observed {
    raw: Option<String>,
    since: Instant,
}

enum Attempt {
    /// The lock is ours, written by a request sent at this instant.
    Acquired(Box<ConfigMap>, Instant),
    /// Someone holds it; look again at the latest by `until`.
    Held { until: Instant },
}

enum LeadOutcome {
    Lost,
    GaveUp,
    Shutdown,
}

struct Elector {
    cas: ConfigMapCas,
    name: String,
    identity: String,
    config: ElectionConfig,
    leadership: watch::Sender<Leadership>,
    /// The step-down moment of the current grant.
    valid_until: watch::Sender<Option<Instant>>,
    /// The payload owner token of the cluster ConfigMap while leading.
    owner_token: watch::Sender<Option<String>>,
    observed: Option<Observed>,
    /// Pinged by the watch on the ConfigMap.
    changed: Arc<Notify>,
    /// The final state of the ConfigMap as the watch's last DELETED event showed it.
    deleted: watch::Receiver<Option<ConfigMap>>,
    /// When this follower first found the ConfigMap missing (since it last existed).
    missing_since: Option<Instant>,
    /// The grant to give up, when its holder asked to.
    give_up: watch::Receiver<Option<Uuid>>,
}

impl Elector {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let (deleted_tx, deleted_rx) = watch::channel(None);
        self.deleted = deleted_rx;
        let watcher = tokio::spawn(watch_config_map(
            self.cas.api.clone(),
            self.name.clone(),
            self.changed.clone(),
            deleted_tx,
        ));
        loop {
            let Some((lease, sent_at)) = self.contend(&mut shutdown).await else {
                break;
            };
            let session_id = Uuid::new_v4();
            let epoch = raw_record(&lease)
                .and_then(|raw| LeaderRecord::parse(raw).ok())
                .map_or(0, |record| record.leader_transitions);
            // The step-down moment is known before anyone hears of the grant.
            self.valid_until.send_replace(Some(self.step_down_at(sent_at)));
            self.owner_token.send_replace(owner_token(&lease).map(str::to_string));
            tracing::info!(identity = %self.identity, %session_id, epoch, "leadership granted");
            self.leadership.send_replace(Leadership::Leader { session_id, epoch });
            let outcome = self.lead(lease, sent_at, session_id, &mut shutdown).await;
            self.leadership.send_replace(Leadership::Follower);
            self.valid_until.send_replace(None);
            self.owner_token.send_replace(None);
            // Whatever we cached is stale: judge the lock afresh.
            self.observed = None;
            match outcome {
                LeadOutcome::Lost => {
                    tracing::warn!(identity = %self.identity, "leadership revoked; contending again");
                }
                LeadOutcome::GaveUp => {
                    self.release(session_id).await;
                    tracing::warn!(identity = %self.identity, "gave up leadership; contending again after one lease");
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.lease_duration) => {}
                        _ = shutdown.changed() => break,
                    }
                }
                LeadOutcome::Shutdown => {
                    self.release(session_id).await;
                    break;
                }
            }
        }
        watcher.abort();
    }

    /// The moment a grant or renewal sent at `sent_at` stops covering leader actions:
    /// before any follower, who counts a whole lease from when it saw the write, may
    /// acquire; and no later than the renew deadline.
    fn step_down_at(&self, sent_at: Instant) -> Instant {
        let covered = self.config.renew_deadline.min(self.config.lease_duration);
        sent_at + covered.saturating_sub(self.config.lease_duration / 10)
    }

    /// Follower: tries until it holds the lock; `None` on shutdown.
    async fn contend(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<(ConfigMap, Instant)> {
        loop {
            if *shutdown.borrow() {
                return None;
            }
            let wait = match self.try_acquire().await {
                Ok(Attempt::Acquired(cm, sent_at)) => return Some((*cm, sent_at)),
                // Wake just after the observed lease runs out, or at the next retry.
                Ok(Attempt::Held { until }) => {
                    until
                        .saturating_duration_since(Instant::now())
                        .min(self.config.retry_period)
                        + jitter(Duration::from_millis(50))
                }
                Err(error) => {
                    tracing::warn!(%error, "could not check the leader lock");
                    self.config.retry_period + jitter(self.config.retry_period / 5)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.changed.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn try_acquire(&mut self) -> Result<Attempt> {
        let Some(mut cm) = self.cas.get(&self.name).await? else {
            let now = Instant::now();
            let since = *self.missing_since.get_or_insert(now);
            let highest_fence = self.highest_fence().await?;
            // Deleted under a cluster that may have a live leader: not before that
            // leader's step-down moment (see the module docs).
            if highest_fence.is_some() || self.observed.is_some() {
                let until = since + self.config.lease_duration;
                if now < until {
                    return Ok(Attempt::Held { until });
                }
            }
            return self.create_with_lock(highest_fence).await;
        };
        self.missing_since = None;
        let now = Instant::now();
        let raw = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::LEADER_ANNOTATION))
            .cloned();
        let since = match &self.observed {
            Some(o) if o.raw == raw => o.since,
            _ => now,
        };
        self.observed = Some(Observed {
            raw: raw.clone(),
            since,
        });
        let previous = match raw.as_deref().map(LeaderRecord::parse) {
            None => None,
            Some(Ok(record)) => Some(record),
            Some(Err(problem)) => {
                // Unreadable: treat it as a holder that stopped renewing once it has not
                // changed for a whole lease.
                tracing::warn!(name = %self.name, %problem, "malformed leader record");
                let until = since + self.config.lease_duration;
                if now < until {
                    return Ok(Attempt::Held { until });
                }
                None
            }
        };
        if let Some(record) = &previous {
            let free = record.holder_identity.is_empty() || record.holder_identity == self.identity;
            let until = since + record.lease_duration;
            if !free && now < until {
                return Ok(Attempt::Held { until });
            }
        }
        let record = self.new_record(previous.as_ref(), self.highest_fence().await?);
        let annotations = cm.metadata.annotations.get_or_insert_with(Default::default);
        annotations.insert(names::LEADER_ANNOTATION.to_string(), record.to_json());
        // Minted once, by the first leader of a version that names payloads by owner.
        annotations
            .entry(OWNER_TOKEN_ANNOTATION.to_string())
            .or_insert_with(new_owner_token);
        let sent_at = Instant::now();
        let sent = self
            .cas
            .within_deadline(
                format!("PUT ConfigMap {}", self.name),
                self.cas.api.replace(&self.name, &Default::default(), &cm),
            )
            .await?;
        match sent {
            Ok(stored) => Ok(Attempt::Acquired(Box::new(stored), sent_at)),
            // Another contender was faster; look again now.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Held { until: now }),
            Err(error) => Err(Error::Kube(error)),
        }
    }

    /// No cluster ConfigMap yet: create it holding the lock, with the HA labels and no
    /// owner references (it must outlive the Deployment).
    async fn create_with_lock(&mut self, highest_fence: Option<u64>) -> Result<Attempt> {
        let record = self.new_record(None, highest_fence);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(names::ha_labels(&self.config.cluster_id)),
                annotations: Some(
                    [
                        (names::LEADER_ANNOTATION.to_string(), record.to_json()),
                        (OWNER_TOKEN_ANNOTATION.to_string(), new_owner_token()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        let sent_at = Instant::now();
        let sent = self
            .cas
            .within_deadline(
                format!("POST ConfigMap {}", self.name),
                self.cas.api.create(&Default::default(), &cm),
            )
            .await?;
        match sent {
            Ok(stored) => Ok(Attempt::Acquired(Box::new(stored), sent_at)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Held { until: Instant::now() }),
            Err(error) => Err(Error::Kube(error)),
        }
    }

    /// The highest fence epoch on this cluster's job ConfigMaps (`None` if none is
    /// fenced): a new grant's epoch must exceed it, whatever the lock record says.
    async fn highest_fence(&self) -> Result<Option<u64>> {
        Ok(self
            .cas
            .job_config_maps(&self.config.cluster_id)
            .await?
            .iter()
            .filter_map(|cm| Fence::read(cm).ok().flatten())
            .map(|fence| fence.epoch())
            .max())
    }

    /// The record of a new grant. `leaderTransitions` grows with every grant (fabric8
    /// raises it only when the identity changes; ours is the same across a lost and
    /// regained lock), so it can serve as the fencing epoch of the job ConfigMaps. It is
    /// also raised above the highest fence on the jobs, so a recreated ConfigMap or an
    /// unreadable record cannot send the epoch back below them.
    fn new_record(&self, previous: Option<&LeaderRecord>, highest_fence: Option<u64>) -> LeaderRecord {
        let now = crate::clock::wall_now();
        let after_previous = previous.map_or(0, |p| p.leader_transitions.saturating_add(1));
        let after_fences = highest_fence.map_or(0, |epoch| epoch.saturating_add(1));
        let transitions = after_previous.max(after_fences);
        LeaderRecord {
            holder_identity: self.identity.clone(),
            lease_duration: self.config.lease_duration,
            acquire_time: now,
            renew_time: now,
            leader_transitions: transitions,
        }
    }

    /// Leader: renews every retry period; steps down at the step-down moment of its last
    /// successful renewal (see [`Elector::step_down_at`]) or when the lock names someone
    /// else.
    async fn lead(
        &mut self,
        mut cached: ConfigMap,
        acquired_at: Instant,
        session_id: Uuid,
        shutdown: &mut watch::Receiver<bool>,
    ) -> LeadOutcome {
        let mut step_down = self.step_down_at(acquired_at);
        let mut give_up = self.give_up.clone();
        loop {
            let next_renewal = (Instant::now() + self.config.retry_period).min(step_down);
            tokio::select! {
                _ = tokio::time::sleep_until(next_renewal.into()) => {}
                _ = shutdown.changed() => return LeadOutcome::Shutdown,
                _ = give_up.wait_for(|grant| *grant == Some(session_id)) => return LeadOutcome::GaveUp,
            }
            loop {
                let sent_at = Instant::now();
                let Some(left) = step_down.checked_duration_since(sent_at).filter(|d| !d.is_zero()) else {
                    tracing::warn!(identity = %self.identity, "no renewal in time; stepping down before the lease can run out");
                    return LeadOutcome::Lost;
                };
                // A ConfigMap deleted under a valid lease is created again (module docs).
                let renewal = async {
                    match self.renew(&cached).await {
                        Err(Error::Missing { .. }) => {
                            tracing::warn!(identity = %self.identity, name = %self.name, "the cluster ConfigMap was deleted under a valid lease; restoring it");
                            self.restore(&cached).await
                        }
                        renewed => renewed,
                    }
                };
                // One deadline for the whole renewal, its retries after a conflict included.
                match tokio::time::timeout(left, renewal).await {
                    Ok(Ok(stored)) => {
                        cached = stored;
                        step_down = if crate::planted::planted(crate::planted::Bug::StepDownFromAnswer) {
                            self.step_down_at(Instant::now())
                        } else {
                            self.step_down_at(sent_at)
                        };
                        self.valid_until.send_replace(Some(step_down));
                        break;
                    }
                    Ok(Err(Error::NotLeader { reason, .. })) => {
                        tracing::warn!(identity = %self.identity, %reason, "deposed");
                        return LeadOutcome::Lost;
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "renewal failed; retrying");
                        let pause = (self.config.retry_period / 4).min(left);
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = shutdown.changed() => return LeadOutcome::Shutdown,
                        }
                    }
                    Err(_) => {
                        tracing::warn!(identity = %self.identity, waited = ?left, "no answer to the renewal before the step-down moment");
                        return LeadOutcome::Lost;
                    }
                }
            }
        }
    }

    /// One PUT with the cached resourceVersion; after a conflict, a GET, the identity
    /// check, and one more PUT. The caller bounds the whole of it.
    async fn renew(&self, cached: &ConfigMap) -> Result<ConfigMap> {
        let mut cm = cached.clone();
        for _ in 0..2 {
            let mut record = held_record(&cm, &self.identity, &self.name)?;
            record.renew_time = crate::clock::wall_now();
            cm.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(names::LEADER_ANNOTATION.to_string(), record.to_json());
            match self.cas.api.replace(&self.name, &Default::default(), &cm).await {
                Ok(stored) => return Ok(stored),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    cm = self.cas.api.get_opt(&self.name).await?.ok_or_else(|| Error::Missing {
                        name: self.name.clone(),
                    })?;
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Err(Error::Missing {
                        name: self.name.clone(),
                    });
                }
                Err(error) => return Err(Error::Kube(error)),
            }
        }
        Err(Error::Conflict {
            name: self.name.clone(),
            attempts: 2,
        })
    }

    /// Creates the ConfigMap again, deleted while this process held a valid lease: with
    /// the content it had when it was deleted, and the lock renewed. A conflict means
    /// someone else created it: deposed.
    async fn restore(&self, cached: &ConfigMap) -> Result<ConfigMap> {
        // Exactly what was deleted, from the watch's DELETED event (every change before
        // it came first). A copy from before the deletion could bring back a plan that
        // was removed in between, and with it a finished job. No event before the
        // step-down moment (the caller's deadline): no restore.
        let uid = cached.metadata.uid.clone();
        let mut deleted = self.deleted.clone();
        let newest = deleted
            .wait_for(|d| d.as_ref().is_some_and(|cm| cm.metadata.uid == uid))
            .await
            .map_err(|_| Error::NotLeader {
                name: self.name.clone(),
                reason: "the ConfigMap was deleted and its watch ended".into(),
            })?
            .clone()
            .unwrap_or_default();
        let mut record = held_record(&newest, &self.identity, &self.name)?;
        record.renew_time = crate::clock::wall_now();
        let mut annotations = newest.metadata.annotations.clone().unwrap_or_default();
        annotations.insert(names::LEADER_ANNOTATION.to_string(), record.to_json());
        // Kept as it was (the payloads carry it); minted only if it never was.
        annotations
            .entry(OWNER_TOKEN_ANNOTATION.to_string())
            .or_insert_with(new_owner_token);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(names::ha_labels(&self.config.cluster_id)),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            data: newest.data.clone(),
            ..ConfigMap::default()
        };
        match self.cas.api.create(&Default::default(), &cm).await {
            Ok(stored) => {
                tracing::info!(name = %self.name, "cluster ConfigMap restored");
                Ok(stored)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::NotLeader {
                name: self.name.clone(),
                reason: "the ConfigMap was deleted and someone else created it".into(),
            }),
            Err(error) => Err(Error::Kube(error)),
        }
    }

    /// Graceful stop: removes this process's leader entries and empties the lock, in one
    /// write that checks the lock is still ours.
    async fn release(&self, session: Uuid) {
        let result = self
            .cas
            .update(&self.name, |cm| {
                let mut record = held_record(cm, &self.identity, &self.name)?;
                record.holder_identity.clear();
                record.lease_duration = RELEASED_LEASE;
                record.renew_time = crate::clock::wall_now();
                cm.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(names::LEADER_ANNOTATION.to_string(), record.to_json());
                if let Some(data) = cm.data.as_mut() {
                    data.retain(|key, value| {
                        !(key.starts_with(names::LEADER_ENTRY_PREFIX) && is_own_entry(value, session))
                    });
                }
                Ok(Change::Write)
            })
            .await;
        match result {
            Ok(_) => tracing::info!(identity = %self.identity, "leadership released"),
            Err(error) => tracing::warn!(%error, "could not release the lock; it expires on its own"),
        }
    }
}

/// A leader entry written under `session`.
fn is_own_entry(value: &str, session: Uuid) -> bool {
    names::parse_leader_entry(value).is_some_and(|(entry_session, _)| entry_session == session)
}

fn raw_record(cm: &ConfigMap) -> Option<&str> {
    cm.metadata
        .annotations
        .as_ref()?
        .get(names::LEADER_ANNOTATION)
        .map(String::as_str)
}

fn jitter(max: Duration) -> Duration {
    max.mul_f64(fastrand::f64())
}

/// Pings `changed` on every change of the ConfigMap and sends a deleted one's final
/// state to `deleted`; re-watches after errors, expiry (410 Gone) and the server
/// closing the watch.
async fn watch_config_map(
    api: Api<ConfigMap>,
    name: String,
    changed: Arc<Notify>,
    deleted: watch::Sender<Option<ConfigMap>>,
) {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    loop {
        match api.watch(&params, "0").await {
            Ok(stream) => {
                let mut stream = stream.boxed();
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Error(status)) => {
                            tracing::debug!(code = status.code, "watch ended by the server");
                            break;
                        }
                        Ok(WatchEvent::Deleted(cm)) => {
                            deleted.send_replace(Some(cm));
                            changed.notify_one();
                        }
                        Ok(_) => changed.notify_one(),
                        Err(error) => {
                            tracing::debug!(%error, "watch broke");
                            break;
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "cannot watch the cluster ConfigMap"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
