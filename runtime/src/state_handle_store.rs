//! Flink's `KubernetesStateHandleStore` protocol: entries of a ConfigMap that point to
//! payloads in storageDir, every write guarded by leadership in the same CAS.
//!
//! - **Add**: the payload first (create-only, unique name), then the pointer by CAS. A CAS
//!   that definitely failed deletes the payload; one that possibly succeeded keeps it. The
//!   same pointer already there is success (a retried add).
//! - **Remove**, two-phase and idempotent: mark the entry by CAS (readers skip marked
//!   entries), delete the payload, remove the key by CAS. An add over a marked entry
//!   finishes that removal first.
//! - **Read**: a malformed pointer is skipped with a warning, never fatal to recovery.

use bytes::Bytes;
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
    Lock { identity: String },
    /// A job ConfigMap: its fence is this one.
    Fence(Fence),
}

impl Guard {
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
    pub cas: ConfigMapCas,
    pub name: String,
    pub payloads: PayloadStore,
    pub guard: Guard,
}

impl StateHandleStore {
    /// Stores `bytes` under `key`. `kind` names the payload file (`completedCheckpoint`, ...).
    pub async fn add(&self, key: &str, kind: &str, bytes: Bytes) -> Result<()> {
        self.add_with(key, kind, bytes, |_| Ok(())).await
    }

    /// As [`StateHandleStore::add`], with `also` applied to the same write (the checkpoint
    /// store marks what falls out of retention in the write that adds the new one).
    pub async fn add_with<F>(&self, key: &str, kind: &str, bytes: Bytes, mut also: F) -> Result<()>
    where
        F: FnMut(&mut ConfigMap) -> Result<()>,
    {
        let path = self.payloads.put_new(kind, bytes).await?;
        let pointer = Pointer {
            path: path.to_string(),
            marked_for_deletion: false,
        }
        .to_json();
        let mut stale_payload = None;
        let written = self
            .cas
            .update(&self.name, |cm| {
                // What an attempt finds is only the last attempt's business.
                stale_payload = None;
                self.guard.check(cm, &self.name)?;
                let data = cm.data.get_or_insert_with(Default::default);
                match data.get(key).map(|v| (v.clone(), Pointer::parse(v))) {
                    Some((existing, _)) if existing == pointer => return Ok(Change::Unchanged),
                    // A marked entry is on its way out: finish that removal with this write.
                    Some((_, Ok(old))) if old.marked_for_deletion => stale_payload = Some(old.path),
                    Some(_) => {
                        return Err(Error::AlreadyExists {
                            name: self.name.clone(),
                            key: key.to_string(),
                        });
                    }
                    None => {}
                }
                data.insert(key.to_string(), pointer.clone());
                also(cm)?;
                Ok(Change::Write)
            })
            .await;
        match written {
            Ok(_) => {
                if let Some(stale) = stale_payload {
                    self.delete_payload(&stale).await;
                }
                Ok(())
            }
            Err(error) => {
                if error.definitely_not_written() {
                    self.delete_payload(path.as_ref()).await;
                } else {
                    tracing::warn!(key, path = %path, "pointer possibly written; its payload is kept");
                }
                Err(error)
            }
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
                let mut pointer = Pointer::parse(value).map_err(|reason| Error::Corrupt {
                    name: self.name.clone(),
                    key: key.to_string(),
                    reason,
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
            Err(Error::Missing { .. }) => return Ok(()),
            Err(error) => return Err(error),
        }
        let Some(path) = marked else { return Ok(()) };
        // Phase 2: the payload. If this fails the entry stays marked and invisible, and a
        // later removal (or an add of the same key) finishes it.
        self.payloads.delete(&path).await?;
        // Phase 3: the key.
        self.remove_marked_keys(&[key.to_string()]).await
    }

    /// Removes keys whose entries are marked for deletion (and only those).
    pub async fn remove_marked_keys(&self, keys: &[String]) -> Result<()> {
        let result = self
            .cas
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
            .await;
        match result {
            Ok(_) | Err(Error::Missing { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn delete_payload(&self, path: &str) {
        if let Err(error) = self.payloads.delete(path).await {
            tracing::warn!(%path, %error, "could not delete a payload no pointer references");
        }
    }
}

fn live_pointer(cm: &ConfigMap, name: &str, key: &str) -> Option<Pointer> {
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

/// Live entries with `prefix`, sorted by key (checkpoint keys sort by id: zero-padded).
pub fn live_entries(cm: &ConfigMap, name: &str, prefix: &str) -> Vec<(String, Pointer)> {
    let Some(data) = cm.data.as_ref() else {
        return Vec::new();
    };
    data.range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .filter_map(|(k, _)| live_pointer(cm, name, k).map(|p| (k.clone(), p)))
        .collect()
}
