//! Flink's `KubernetesStateHandleStore` protocol: entries of a ConfigMap that point to
//! payloads in storageDir, every write guarded by leadership in the same CAS.
//!
//! - **Add**: the payload first (create-only, unique name), then the pointer by CAS. A CAS
//!   that definitely failed deletes the payload; one whose answer was lost is settled by
//!   reading the ConfigMap back, and the payload is kept while the outcome stays unknown.
//!   The same pointer already there is success (a retried add), checked before the guard.
//!   An add whose outcome stayed unknown is settled again before each later add of the
//!   same store; once proven not written, its payload is deleted, so a lost answer during
//!   an API-server outage leaks nothing once the server is back.
//! - **Remove**, two-phase and idempotent: mark the entry by CAS (readers skip marked
//!   entries), delete the payload, remove the key by CAS. An add over a marked entry
//!   finishes that removal first.
//! - **Read**: a malformed pointer is skipped with a warning, never fatal to recovery.
//! - **Size**: an add that would take the ConfigMap past Kubernetes' 1 MiB is refused
//!   before the write, naming its key ([`Error::ConfigMapTooLarge`]).
//! - **A missing cluster ConfigMap proves nothing.** Reading back a write whose answer
//!   was lost, a cluster ConfigMap that is gone leaves the outcome unknown: its leader
//!   restores it with what it held when it was deleted, the lost write included if it
//!   landed. The payload is kept until a read settles it. (A job ConfigMap is never
//!   restored: gone, its pointers are gone with it.)
//!
//! Until an add settles, its payload is unsettled in the [`PayloadStore`], and the
//! orphan sweep ([`crate::sweep`]) leaves it alone.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use flink_ha_policy::ha_layout::{CONFIGMAP_LIMIT, configmap_entry_bytes};
use k8s_openapi::api::core::v1::ConfigMap;

use crate::cas::{Change, ConfigMapCas};
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::leader_election::check_holds_lock;
use crate::payloads::{PayloadStore, Pointer};

/// What a write must prove in the ConfigMap it writes.
#[derive(Clone, Debug)]
pub enum Guard {
    /// The cluster ConfigMap: its lock names this identity.
    Lock {
        /// This process's identity in the lock.
        identity: String,
    },
    /// A job ConfigMap: its fence is this one.
    Fence(Fence),
}

impl Guard {
    /// `Ok` if `cm` (named `name`) proves what this guard requires, else
    /// [`Error::NotLeader`] saying why not.
    pub fn check(&self, cm: &ConfigMap, name: &str) -> Result<()> {
        match self {
            Guard::Lock { identity } => check_holds_lock(cm, identity, name),
            Guard::Fence(fence) => fence.check(cm, name),
        }
    }
}

/// The entries of one ConfigMap.
#[derive(Clone)]
pub struct StateHandleStore {
    /// Compare-and-set on the ConfigMap.
    pub cas: ConfigMapCas,
    /// The ConfigMap's name.
    pub name: String,
    /// Where the entries' payloads live in `storageDir`.
    pub payloads: PayloadStore,
    /// What every write must prove in the ConfigMap: the lock or the job's fence.
    pub guard: Guard,
    /// Adds whose outcome is still unknown, to settle before the next add.
    unsettled: Arc<UnsettledAdds>,
}

/// The adds of one store whose outcome is unknown. When the store goes (its grant is
/// over), no one in this process will settle them: their payloads are handed to the
/// orphan sweep's age rule, which outlasts any write still in flight.
struct UnsettledAdds {
    adds: Mutex<Vec<Unsettled>>,
    payloads: PayloadStore,
}

impl Drop for UnsettledAdds {
    fn drop(&mut self) {
        if let Ok(adds) = self.adds.get_mut() {
            for add in adds.drain(..) {
                self.payloads.settled(&add.path);
            }
        }
    }
}

/// Keeps a payload marked unsettled while its add runs; unmarks it however the add ends
/// (returned, failed or cancelled), unless the add keeps it for a later settling.
struct Pending<'a> {
    payloads: &'a PayloadStore,
    uri: String,
    kept: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.payloads.settled(&self.uri);
        }
    }
}

/// What a removal makes of a ConfigMap that does not exist.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    IsRemoved,
    IsAnError,
}

/// An add whose pointer may or may not be in the ConfigMap.
#[derive(Clone, Debug)]
struct Unsettled {
    key: String,
    path: String,
    versions: Vec<String>,
}

impl StateHandleStore {
    /// The store of the ConfigMap `name`, its payloads in `payloads`, every write
    /// guarded by `guard`.
    pub fn new(cas: ConfigMapCas, name: impl Into<String>, payloads: PayloadStore, guard: Guard) -> StateHandleStore {
        StateHandleStore {
            cas,
            name: name.into(),
            payloads: payloads.clone(),
            guard,
            unsettled: Arc::new(UnsettledAdds {
                adds: Mutex::default(),
                payloads,
            }),
        }
    }

    /// Settles the adds whose outcome was unknown: a payload proven unreferenced is
    /// deleted; the rest stay for the next try. The number still unknown.
    pub async fn settle_unknown_adds(&self) -> usize {
        let pending = match self.unsettled.adds.lock() {
            Ok(mut unsettled) => std::mem::take(&mut *unsettled),
            Err(_) => return 0,
        };
        let mut still = Vec::new();
        for add in pending {
            match self.settle(&add.key, &add.path, &add.versions).await {
                Settled::Written(_) => self.payloads.settled(&add.path),
                Settled::NotWritten => {
                    tracing::info!(key = %add.key, path = %add.path, "a lost add proved not written; its payload is deleted");
                    self.delete_payload(&add.path).await;
                    self.payloads.settled(&add.path);
                }
                Settled::Unknown => still.push(add),
            }
        }
        let left = still.len();
        if let Ok(mut unsettled) = self.unsettled.adds.lock() {
            unsettled.extend(still);
        }
        left
    }

    /// Stores `bytes` under `key`. `kind` names the payload file (`completedCheckpoint`, ...).
    pub async fn add(&self, key: &str, kind: &str, bytes: Bytes) -> Result<()> {
        self.add_with(key, kind, bytes, |_| Ok(())).await.map(drop)
    }

    /// As [`StateHandleStore::add`], with `also` applied to the same write (the checkpoint
    /// store marks what falls out of retention in the write that adds the new one). The
    /// ConfigMap as the add left it.
    ///
    /// Whatever goes wrong, the payload is deleted only once no pointer can reference it:
    /// after a write whose answer was lost, the outcome is settled by reading the
    /// ConfigMap back, and an add that finds its own pointer there has succeeded, whatever
    /// the guard says now (a new leader that claimed the job after the write sees it).
    pub async fn add_with<F>(&self, key: &str, kind: &str, bytes: Bytes, mut also: F) -> Result<ConfigMap>
    where
        F: FnMut(&mut ConfigMap) -> Result<()>,
    {
        self.settle_unknown_adds().await;
        // Unsettled from before its write (put_new marks it): the guard unmarks it.
        let path = self.payloads.put_new(kind, bytes).await?;
        let mut pending = Pending {
            payloads: &self.payloads,
            uri: path.clone(),
            kept: false,
        };
        let pointer = Pointer {
            path: path.clone(),
            marked_for_deletion: false,
        }
        .to_json();
        let mut stale_payload = None;
        let written = self
            .cas
            .update(&self.name, |cm| {
                // What an attempt finds is only the last attempt's business.
                stale_payload = None;
                let existing = cm.data.as_ref().and_then(|data| data.get(key));
                // An earlier attempt of this add landed: done, whoever leads now.
                if existing == Some(&pointer) {
                    return Ok(Change::Unchanged);
                }
                match existing.map(|value| Pointer::parse(value)) {
                    // A marked entry is on its way out: finish that removal with this write.
                    Some(Ok(old)) if old.marked_for_deletion => stale_payload = Some(old.path),
                    Some(_) => {
                        return Err(Error::AlreadyExists {
                            name: self.name.clone(),
                            key: key.to_string(),
                        });
                    }
                    None => {}
                }
                self.guard.check(cm, &self.name)?;
                cm.data
                    .get_or_insert_with(Default::default)
                    .insert(key.to_string(), pointer.clone());
                also(cm)?;
                let bytes = entry_bytes(cm);
                if bytes > CONFIGMAP_LIMIT {
                    return Err(Error::ConfigMapTooLarge {
                        name: self.name.clone(),
                        key: key.to_string(),
                        bytes,
                        limit: CONFIGMAP_LIMIT,
                    });
                }
                Ok(Change::Write)
            })
            .await;
        match written {
            Ok(stored) => {
                if let Some(stale) = stale_payload {
                    self.delete_payload(&stale).await;
                }
                Ok(stored)
            }
            Err(Error::PossiblyWritten {
                name,
                reason,
                unanswered_versions,
            }) => match self.settle(key, &path, &unanswered_versions).await {
                Settled::Written(stored) => {
                    tracing::info!(key, %path, "a write whose answer was lost is in the ConfigMap: added");
                    Ok(*stored)
                }
                Settled::NotWritten => {
                    self.delete_payload(&path).await;
                    Err(Error::NotWritten { name, reason })
                }
                Settled::Unknown => {
                    tracing::warn!(key, %path, %reason, "pointer possibly written; its payload is kept");
                    pending.kept = true;
                    if let Ok(mut unsettled) = self.unsettled.adds.lock() {
                        unsettled.push(Unsettled {
                            key: key.to_string(),
                            path: path.clone(),
                            versions: unanswered_versions.clone(),
                        });
                    }
                    Err(Error::PossiblyWritten {
                        name,
                        reason,
                        unanswered_versions,
                    })
                }
            },
            Err(error) => {
                self.delete_payload(&path).await;
                Err(error)
            }
        }
    }

    /// Reads the ConfigMap back to learn whether a pointer to `path` under `key` was
    /// written by a compare-and-set whose answers were lost (conditioned on `versions`).
    async fn settle(&self, key: &str, path: &str, versions: &[String]) -> Settled {
        let current = match self.cas.get(&self.name).await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%error, "cannot read the ConfigMap back to settle a lost write");
                return Settled::Unknown;
            }
        };
        let Some(cm) = current else {
            return match self.guard {
                // The cluster ConfigMap's leader restores it with the content it had when
                // it was deleted: the lost write may be in it then (module docs).
                Guard::Lock { .. } => Settled::Unknown,
                // A job ConfigMap is never restored: a write conditioned on a version of
                // it can no longer land, and its pointers are gone with it.
                Guard::Fence(_) => Settled::NotWritten,
            };
        };
        let referenced = cm
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .and_then(|value| Pointer::parse(value).ok())
            .is_some_and(|pointer| pointer.path == path);
        if referenced {
            // Written (and, if marked, already being removed by whoever marked it).
            return Settled::Written(Box::new(cm));
        }
        let version = cm.metadata.resource_version.clone().unwrap_or_default();
        if versions.contains(&version) {
            // Still at a version a lost write was conditioned on: it may yet land.
            Settled::Unknown
        } else {
            Settled::NotWritten
        }
    }

    /// The payload of `key`; `None` if absent or being removed.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let Some(cm) = self.cas.get(&self.name).await? else {
            return Ok(None);
        };
        match live_pointer(&cm, &self.name, key) {
            Some(pointer) => self.payloads.get(&pointer.path).await.map(Some),
            None => Ok(None),
        }
    }

    /// The live entries whose key starts with `prefix`, sorted by key. Malformed
    /// pointers are skipped with a warning.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, Pointer)>> {
        let Some(cm) = self.cas.get(&self.name).await? else {
            return Ok(Vec::new());
        };
        Ok(live_entries(&cm, &self.name, prefix))
    }

    /// Removes `key` and its payload in two phases; an absent key is already removed.
    pub async fn remove(&self, key: &str) -> Result<()> {
        self.remove_if(key, Missing::IsRemoved).await
    }

    /// As [`StateHandleStore::remove`], but a missing ConfigMap is an error
    /// ([`Error::Missing`]), not "already removed": for the cluster ConfigMap, which
    /// exists while the cluster runs. Gone, it is being deleted, and its leader may
    /// restore it with the entry in it (see [`crate::leader_election`]): the removal
    /// must be tried again then, not reported done.
    pub async fn remove_from_existing(&self, key: &str) -> Result<()> {
        self.remove_if(key, Missing::IsAnError).await
    }

    async fn remove_if(&self, key: &str, missing: Missing) -> Result<()> {
        // Phase 1: mark (readers stop seeing it).
        let mut marked = None;
        let result = self
            .cas
            .update(&self.name, |cm| {
                marked = None;
                self.guard.check(cm, &self.name)?;
                let Some(value) = cm.data.as_mut().and_then(|d| d.get_mut(key)) else {
                    return Ok(Change::Unchanged);
                };
                let mut pointer = Pointer::parse(value).map_err(|error| Error::Corrupt {
                    name: self.name.clone(),
                    key: key.to_string(),
                    reason: error.to_string(),
                })?;
                marked = Some(pointer.path.clone());
                if pointer.marked_for_deletion {
                    return Ok(Change::Unchanged);
                }
                pointer.marked_for_deletion = true;
                *value = pointer.to_json();
                Ok(Change::Write)
            })
            .await;
        match result {
            Ok(_) => {}
            Err(Error::Missing { .. }) if missing == Missing::IsRemoved => return Ok(()),
            Err(error) => return Err(error),
        }
        let Some(path) = marked else { return Ok(()) };
        // Phase 2: the payload. If this fails the entry stays marked and invisible, and a
        // later removal (or an add of the same key) finishes it.
        self.payloads.delete(&path).await?;
        // Phase 3: the key.
        match self.remove_marked_keys_in(&[key.to_string()]).await {
            Err(Error::Missing { .. }) if missing == Missing::IsRemoved => Ok(()),
            removed => removed,
        }
    }

    /// Removes keys whose entries are marked for deletion (and only those); a missing
    /// ConfigMap holds none.
    pub async fn remove_marked_keys(&self, keys: &[String]) -> Result<()> {
        match self.remove_marked_keys_in(keys).await {
            Err(Error::Missing { .. }) => Ok(()),
            removed => removed,
        }
    }

    async fn remove_marked_keys_in(&self, keys: &[String]) -> Result<()> {
        self.cas
            .update(&self.name, |cm| {
                self.guard.check(cm, &self.name)?;
                let Some(data) = cm.data.as_mut() else {
                    return Ok(Change::Unchanged);
                };
                let before = data.len();
                data.retain(|k, v| !(keys.contains(k) && Pointer::parse(v).is_ok_and(|p| p.marked_for_deletion)));
                Ok(if data.len() == before {
                    Change::Unchanged
                } else {
                    Change::Write
                })
            })
            .await
            .map(drop)
    }

    async fn delete_payload(&self, path: &str) {
        if let Err(error) = self.payloads.delete(path).await {
            tracing::warn!(%path, %error, "could not delete a payload no pointer references");
        }
    }
}

/// The bytes the entries of `cm` count against [`CONFIGMAP_LIMIT`], keys included (the
/// API server counts only the values: this refuses a little early, never late).
fn entry_bytes(cm: &ConfigMap) -> usize {
    let text = cm
        .data
        .iter()
        .flatten()
        .map(|(key, value)| configmap_entry_bytes(key, value, false));
    let binary = cm
        .binary_data
        .iter()
        .flatten()
        .map(|(key, value)| key.len() + value.0.len());
    text.chain(binary).sum()
}

/// The pointer under `key` unless it is missing, marked for deletion or malformed (said
/// in a warning naming ConfigMap `name`).
pub(crate) fn live_pointer(cm: &ConfigMap, name: &str, key: &str) -> Option<Pointer> {
    let value = cm.data.as_ref()?.get(key)?;
    match Pointer::parse(value) {
        Ok(pointer) if !pointer.marked_for_deletion => Some(pointer),
        Ok(_) => None,
        Err(reason) => {
            tracing::warn!(%name, key, %reason, "skipping a malformed pointer");
            None
        }
    }
}

/// What reading back a write with a lost answer showed.
enum Settled {
    Written(Box<ConfigMap>),
    NotWritten,
    Unknown,
}

/// Live entries with `prefix`, sorted by key (checkpoint keys sort by id: zero-padded).
pub fn live_entries(cm: &ConfigMap, name: &str, prefix: &str) -> Vec<(String, Pointer)> {
    entries(cm, prefix)
        .filter_map(|(k, _)| live_pointer(cm, name, k).map(|p| (k.clone(), p)))
        .collect()
}

/// Entries with `prefix` marked for deletion (removals a crash or a lost answer left
/// half done), sorted by key.
pub fn marked_entries(cm: &ConfigMap, prefix: &str) -> Vec<(String, Pointer)> {
    entries(cm, prefix)
        .filter_map(|(k, v)| {
            Pointer::parse(v)
                .ok()
                .filter(|p| p.marked_for_deletion)
                .map(|p| (k.clone(), p))
        })
        .collect()
}

/// The raw entries whose key starts with `prefix`, in key order.
fn entries<'a>(cm: &'a ConfigMap, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a String)> {
    cm.data
        .iter()
        .flat_map(move |data| data.range(prefix.to_string()..))
        .take_while(move |(k, _)| k.starts_with(prefix))
}
