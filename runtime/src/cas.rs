//! Compare-and-set on a ConfigMap, Flink's write protocol: GET, apply an idempotent
//! change (which may refuse, e.g. when this process no longer leads), PUT with the
//! `resourceVersion` that was read. A 409 retries from the GET, up to
//! `kubernetes.transactional-operation.max-retries` times after the first attempt.
//!
//! Every request has a deadline: kube's default read timeout is minutes, far longer
//! than a lease. A write whose answer never came is "possibly written", and the caller
//! learns it ([`Error::PossiblyWritten`]) so it never deletes a payload that a pointer
//! may now reference.
//!
//! A job's own stores write through a [`ConfigMapCas::keeping`] clone: it remembers the
//! job ConfigMap as last read or written, and if the ConfigMap is deleted under the job
//! while this grant's lease is valid, the next write creates it again from that copy
//! (fence, counter and checkpoint pointers) before applying its change. Flink's own
//! JobManager starts the job empty in that case; the nemesis found this runtime did too.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};

use crate::error::{Error, Result};
use crate::leader_election::LeaderLease;
use crate::names;

/// What an update function decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The ConfigMap was changed in place: write it.
    Write,
    /// Nothing to do (the change is already there): succeed without a write.
    Unchanged,
}

/// Compare-and-set writes to the ConfigMaps of one namespace.
#[derive(Clone)]
pub struct ConfigMapCas {
    /// The ConfigMap API of the namespace.
    pub(crate) api: Api<ConfigMap>,
    /// Retries after the first attempt (Flink's `kubernetes.transactional-operation.max-retries`).
    pub(crate) max_retries: u32,
    /// The deadline of each request.
    request_timeout: Duration,
    /// A copy of one ConfigMap to put back if it is deleted ([`ConfigMapCas::keeping`]).
    keeper: Option<Keeper>,
}

/// The copy of one ConfigMap its writer keeps to put it back ([`ConfigMapCas::keeping`]).
#[derive(Clone)]
struct Keeper {
    name: String,
    last: Arc<Mutex<Option<ConfigMap>>>,
    lease: LeaderLease,
}

impl Keeper {
    fn keep(&self, name: &str, cm: &ConfigMap) {
        if name == self.name {
            *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(cm.clone());
        }
    }

    /// The copy to create `name` from, if it is this keeper's and the lease is valid.
    fn copy_of(&self, name: &str) -> Option<ConfigMap> {
        if name != self.name || self.lease.check().is_err() {
            return None;
        }
        let mut copy = self.last.lock().unwrap_or_else(PoisonError::into_inner).clone()?;
        // What the server sets on create, and nothing of the deleted object's identity.
        let meta = &mut copy.metadata;
        meta.resource_version = None;
        meta.uid = None;
        meta.creation_timestamp = None;
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        meta.managed_fields = None;
        meta.generation = None;
        Some(copy)
    }
}

impl ConfigMapCas {
    /// Writes through `api`, retrying a conflict `max_retries` times, each request bounded
    /// by `request_timeout`.
    pub fn new(api: Api<ConfigMap>, max_retries: u32, request_timeout: Duration) -> Self {
        ConfigMapCas {
            api,
            max_retries,
            request_timeout,
            keeper: None,
        }
    }

    /// This CAS, keeping a copy of `name` as last read or written; when `name` is found
    /// deleted while `lease` is valid, a write creates it again from that copy first.
    /// For a job's own stores under its fence: the copy is what the fence holder wrote.
    pub fn keeping(&self, name: &str, lease: LeaderLease) -> ConfigMapCas {
        ConfigMapCas {
            keeper: Some(Keeper {
                name: name.to_string(),
                last: Arc::new(Mutex::new(None)),
                lease,
            }),
            ..self.clone()
        }
    }

    /// Reads a ConfigMap; `None` if it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<ConfigMap>> {
        let got = self
            .within_deadline(format!("GET ConfigMap {name}"), self.api.get_opt(name))
            .await?
            .map_err(Error::Kube)?;
        if let (Some(keeper), Some(cm)) = (&self.keeper, &got) {
            keeper.keep(name, cm);
        }
        Ok(got)
    }

    /// Applies `change` to the current ConfigMap and writes it if it asks to, retrying
    /// on conflicts. `Missing` if the ConfigMap does not exist.
    pub async fn update<F>(&self, name: &str, change: F) -> Result<ConfigMap>
    where
        F: FnMut(&mut ConfigMap) -> Result<Change>,
    {
        self.update_or_create(name, None, change).await
    }

    /// As [`ConfigMapCas::update`]; a missing ConfigMap is first created from `template`
    /// (with `change` applied to it), and a lost creation race falls back to updating.
    pub async fn update_or_create<F>(
        &self,
        name: &str,
        template: Option<&ConfigMap>,
        mut change: F,
    ) -> Result<ConfigMap>
    where
        F: FnMut(&mut ConfigMap) -> Result<Change>,
    {
        // Once one write's outcome is unknown, every later error keeps "possibly
        // written": a refusal or a conflict seen afterwards does not undo a write that
        // may have landed before it.
        let mut unanswered = Unanswered::default();
        let attempts = self.max_retries.saturating_add(1);
        for attempt in 1..=attempts {
            let current = match self.get(name).await {
                Ok(current) => current,
                // Nothing was written by this read; try again while attempts remain.
                Err(error @ (Error::Timeout { .. } | Error::Kube(_))) if attempt < attempts => {
                    tracing::debug!(%name, %error, attempt, "read failed; retrying");
                    continue;
                }
                Err(error) => return Err(unanswered.or(name, error)),
            };
            let kept = match (&current, &self.keeper) {
                (None, Some(keeper)) => keeper.copy_of(name),
                _ => None,
            };
            let (mut object, exists) = match (current, kept, template) {
                (Some(object), _, _) => (object, true),
                (None, Some(kept), _) => {
                    tracing::warn!(%name, "the ConfigMap was deleted under this leader's job; creating it again from the copy this leader last read or wrote");
                    (kept, false)
                }
                (None, None, Some(template)) => (template.clone(), false),
                (None, None, None) => {
                    return Err(unanswered.or(name, Error::Missing { name: name.to_string() }));
                }
            };
            match change(&mut object) {
                Ok(Change::Unchanged) if exists => return Ok(object),
                Ok(_) => {}
                Err(error) => return Err(unanswered.or(name, error)),
            }
            let version = object.metadata.resource_version.clone().unwrap_or_default();
            let written = if exists {
                self.within_deadline(
                    format!("PUT ConfigMap {name}"),
                    self.api.replace(name, &PostParams::default(), &object),
                )
                .await
            } else {
                object.metadata.resource_version = None;
                self.within_deadline(
                    format!("POST ConfigMap {name}"),
                    self.api.create(&PostParams::default(), &object),
                )
                .await
            };
            match written {
                Ok(Ok(stored)) => {
                    if let Some(keeper) = &self.keeper {
                        keeper.keep(name, &stored);
                    }
                    return Ok(stored);
                }
                // 409: a concurrent writer won (or created it first). Re-read and retry.
                Ok(Err(kube::Error::Api(status))) if status.code == 409 => {
                    tracing::debug!(%name, attempt, "conflict; retrying");
                }
                Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                    return Err(unanswered.or(name, Error::Missing { name: name.to_string() }));
                }
                // Another 4xx: the server refused it; it was not written.
                Ok(Err(kube::Error::Api(status))) if (400..500).contains(&status.code) => {
                    return Err(unanswered.or(name, Error::Kube(kube::Error::Api(status))));
                }
                // 5xx, a lost connection or no answer in time: it may have been applied.
                Ok(Err(error)) => unanswered.push(version, error.to_string()),
                Err(timeout) => unanswered.push(version, timeout.to_string()),
            }
        }
        Err(unanswered.or(
            name,
            Error::Conflict {
                name: name.to_string(),
                attempts,
            },
        ))
    }

    /// The job ConfigMaps of `cluster_id`: those with its HA labels whose names are
    /// `<cluster-id>-<job-id>-config-map` exactly (the labels alone also match
    /// `flink-config-<id>` and `pod-template-<id>`).
    pub async fn job_config_maps(&self, cluster_id: &str) -> Result<Vec<ConfigMap>> {
        let params = ListParams::default().labels(&names::ha_selector(cluster_id));
        let listed = self
            .within_deadline(
                format!("list the HA ConfigMaps of {cluster_id}"),
                self.api.list(&params),
            )
            .await??;
        Ok(listed
            .items
            .into_iter()
            .filter(|cm| {
                cm.metadata
                    .name
                    .as_deref()
                    .is_some_and(|name| names::is_job_config_map(cluster_id, name))
            })
            .collect())
    }

    /// Runs one request under the per-request deadline; past it, [`Error::Timeout`]
    /// naming `what`.
    pub async fn within_deadline<T>(&self, what: String, request: impl Future<Output = T>) -> Result<T> {
        tokio::time::timeout(self.request_timeout, request)
            .await
            .map_err(|_| Error::Timeout {
                what,
                waited: self.request_timeout,
            })
    }
}

/// The writes of one compare-and-set (or conditioned delete) whose answers never came.
#[derive(Default)]
pub(crate) struct Unanswered {
    /// The resourceVersion each was conditioned on (empty for a create).
    versions: Vec<String>,
    last_reason: Option<String>,
}

impl Unanswered {
    pub(crate) fn push(&mut self, version: String, reason: String) {
        self.versions.push(version);
        self.last_reason = Some(reason);
    }

    /// `error`, unless a write may have landed before it: then "possibly written".
    pub(crate) fn or(self, name: &str, error: Error) -> Error {
        match self.last_reason {
            None => error,
            Some(reason) => Error::PossiblyWritten {
                name: name.to_string(),
                reason: match error {
                    // Running out of attempts adds nothing to the unknown outcome.
                    Error::Conflict { .. } => reason,
                    error => format!("{reason}; then {error}"),
                },
                unanswered_versions: self.versions,
            },
        }
    }
}
