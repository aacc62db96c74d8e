//! The checkpoint ID counter: the `counter` key of a job ConfigMap, the next checkpoint
//! id in decimal (Flink's `KubernetesCheckpointIDCounter`), read-incremented-written by
//! compare-and-set, and fenced ([`crate::fence`]) so a deposed leader cannot move it.

use crate::cas::{Change, ConfigMapCas};
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::names;

/// The data key of the counter.
/// The runtime's counter key (`flink-ha.counter`), beside its own checkpoint keys.
pub use flink_ha_policy::ha_layout::RUNTIME_COUNTER_KEY as COUNTER_KEY;
/// The first checkpoint id (Flink's `INITIAL_CHECKPOINT_ID`).
pub const INITIAL_CHECKPOINT_ID: u64 = 1;

/// The checkpoint id counter of one job, in its job ConfigMap, written under this
/// leader's fence.
pub struct CheckpointIdCounter {
    cas: ConfigMapCas,
    name: String,
    fence: Fence,
}

impl CheckpointIdCounter {
    /// The counter of `job_id`; `fence` must have claimed the job ConfigMap.
    pub fn new(cas: ConfigMapCas, cluster_id: &str, job_id: &str, fence: Fence) -> Self {
        CheckpointIdCounter {
            cas,
            name: names::job_config_map(cluster_id, job_id),
            fence,
        }
    }

    /// Puts the initial value in place unless a counter is there (a recovered job keeps
    /// its count).
    pub async fn start(&self) -> Result<()> {
        self.cas
            .update(&self.name, |cm| {
                self.fence.check(cm, &self.name)?;
                let data = cm.data.get_or_insert_with(Default::default);
                if data.contains_key(COUNTER_KEY) {
                    return Ok(Change::Unchanged);
                }
                data.insert(COUNTER_KEY.into(), INITIAL_CHECKPOINT_ID.to_string());
                Ok(Change::Write)
            })
            .await
            .map(drop)
    }

    /// The current value, and the counter raised by one.
    pub async fn get_and_increment(&self) -> Result<u64> {
        let mut current = 0;
        self.cas
            .update(&self.name, |cm| {
                self.fence.check(cm, &self.name)?;
                current = read_counter(cm, &self.name)?;
                let next = current.checked_add(1).ok_or_else(|| Error::Corrupt {
                    name: self.name.clone(),
                    key: COUNTER_KEY.into(),
                    reason: "the counter is at its maximum".into(),
                })?;
                cm.data
                    .get_or_insert_with(Default::default)
                    .insert(COUNTER_KEY.into(), next.to_string());
                Ok(Change::Write)
            })
            .await?;
        Ok(current)
    }

    /// The current value (a read; no fence needed).
    pub async fn get(&self) -> Result<u64> {
        let cm = self.cas.get(&self.name).await?.ok_or_else(|| Error::Missing {
            name: self.name.clone(),
        })?;
        read_counter(&cm, &self.name)
    }

    /// Sets the counter (restoring from a savepoint).
    pub async fn set_count(&self, count: u64) -> Result<()> {
        self.cas
            .update(&self.name, |cm| {
                self.fence.check(cm, &self.name)?;
                let data = cm.data.get_or_insert_with(Default::default);
                if data.get(COUNTER_KEY).map(String::as_str) == Some(count.to_string().as_str()) {
                    return Ok(Change::Unchanged);
                }
                data.insert(COUNTER_KEY.into(), count.to_string());
                Ok(Change::Write)
            })
            .await
            .map(drop)
    }

    /// On a globally terminal job the counter goes; otherwise it stays for recovery.
    pub async fn shutdown(&self, job_is_terminal: bool) -> Result<()> {
        if !job_is_terminal {
            return Ok(());
        }
        let removed = self
            .cas
            .update(&self.name, |cm| {
                self.fence.check(cm, &self.name)?;
                let removed = cm.data.as_mut().and_then(|d| d.remove(COUNTER_KEY));
                Ok(if removed.is_some() {
                    Change::Write
                } else {
                    Change::Unchanged
                })
            })
            .await;
        match removed {
            Ok(_) | Err(Error::Missing { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The counter's value; a missing key is the initial id, a malformed one an error.
fn read_counter(cm: &k8s_openapi::api::core::v1::ConfigMap, name: &str) -> Result<u64> {
    match cm.data.as_ref().and_then(|d| d.get(COUNTER_KEY)) {
        None => Ok(INITIAL_CHECKPOINT_ID),
        Some(text) => text.trim().parse().map_err(|_| Error::Corrupt {
            name: name.to_string(),
            key: COUNTER_KEY.into(),
            reason: format!("`{text}` is not a whole number"),
        }),
    }
}
