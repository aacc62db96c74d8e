//! The completed-checkpoint store of a job: `checkpointID-<id, 19 digits>` entries in the
//! job ConfigMap, keeping `execution.checkpointing.num-retained` of them; recovery takes
//! the highest id (keys are zero-padded so they sort by id, as Flink relies on).
//!
//! Two ConfigMap writes per completed checkpoint, retention included (Flink 2.3: four
//! updates, each after a GET): the write that adds the new pointer also marks the ones
//! falling out of retention; their payloads are deleted; a second write removes them.

use bytes::Bytes;

use crate::cas::ConfigMapCas;
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::names;
use crate::payloads::{PayloadStore, Pointer};
use crate::state_handle_store::{Guard, StateHandleStore, live_entries};

pub const CHECKPOINT_PREFIX: &str = "checkpointID-";
/// The payload file name prefix, as Flink names it.
pub const PAYLOAD_KIND: &str = "completedCheckpoint";

/// `checkpointID-0000000000000000042`.
pub fn checkpoint_key(checkpoint_id: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{checkpoint_id:019}")
}

/// The id in a checkpoint key, `None` for any other key.
pub fn checkpoint_id(key: &str) -> Option<u64> {
    let digits = key.strip_prefix(CHECKPOINT_PREFIX)?;
    (digits.len() == 19 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

pub struct CompletedCheckpointStore {
    store: StateHandleStore,
    num_retained: usize,
}

impl CompletedCheckpointStore {
    /// The store of `job_id`; `fence` must have claimed the job ConfigMap.
    pub fn new(
        cas: ConfigMapCas,
        cluster_id: &str,
        job_id: &str,
        payloads: PayloadStore,
        fence: Fence,
        num_retained: u32,
    ) -> Self {
        CompletedCheckpointStore {
            store: StateHandleStore {
                cas,
                name: names::job_config_map(cluster_id, job_id),
                payloads,
                guard: Guard::Fence(fence),
            },
            num_retained: usize::try_from(num_retained.max(1)).unwrap_or(1),
        }
    }

    /// Adds a completed checkpoint and drops those beyond retention, oldest first. The
    /// ids dropped.
    pub async fn add(&self, id: u64, payload: Bytes) -> Result<Vec<u64>> {
        let key = checkpoint_key(id);
        let mut subsumed: Vec<(String, String)> = Vec::new();
        let keep = self.num_retained;
        let name = self.store.name.clone();
        self.store
            .add_with(&key, PAYLOAD_KIND, payload, |cm| {
                subsumed.clear();
                let live = live_entries(cm, &name, CHECKPOINT_PREFIX);
                let drop_count = live.len().saturating_sub(keep);
                let data = cm.data.get_or_insert_with(Default::default);
                for (old_key, mut pointer) in live.into_iter().take(drop_count) {
                    subsumed.push((old_key.clone(), pointer.path.clone()));
                    pointer.marked_for_deletion = true;
                    data.insert(old_key, pointer.to_json());
                }
                Ok(())
            })
            .await?;
        // Payloads first; a key whose payload could not be deleted stays marked (invisible)
        // for a later removal to finish.
        let mut removable = Vec::new();
        for (old_key, path) in &subsumed {
            match self.store.payloads.delete(path).await {
                Ok(()) => removable.push(old_key.clone()),
                Err(error) => tracing::warn!(key = %old_key, %error, "subsumed checkpoint payload not deleted yet"),
            }
        }
        if !removable.is_empty() {
            self.store.remove_marked_keys(&removable).await?;
        }
        Ok(subsumed.iter().filter_map(|(k, _)| checkpoint_id(k)).collect())
    }

    /// The ids of the retained checkpoints, ascending.
    pub async fn checkpoint_ids(&self) -> Result<Vec<u64>> {
        Ok(self
            .store
            .list(CHECKPOINT_PREFIX)
            .await?
            .iter()
            .filter_map(|(k, _)| checkpoint_id(k))
            .collect())
    }

    /// Recovery: the highest checkpoint whose payload can be read, with its payload. An
    /// unreadable one is skipped with a warning in favour of the next lower.
    pub async fn latest(&self) -> Result<Option<(u64, Bytes)>> {
        let entries = self.store.list(CHECKPOINT_PREFIX).await?;
        for (key, Pointer { path, .. }) in entries.iter().rev() {
            let Some(id) = checkpoint_id(key) else {
                tracing::warn!(%key, "skipping a checkpoint key without a 19-digit id");
                continue;
            };
            match self.store.payloads.get(path).await {
                Ok(bytes) => return Ok(Some((id, bytes))),
                Err(error) => tracing::warn!(%key, %path, %error, "checkpoint payload unreadable; trying an older one"),
            }
        }
        Ok(None)
    }

    /// On a globally terminal job every checkpoint goes (pointers and payloads); otherwise
    /// they stay for recovery.
    pub async fn shutdown(&self, job_is_terminal: bool) -> Result<()> {
        if !job_is_terminal {
            return Ok(());
        }
        for (key, _) in self.store.list(CHECKPOINT_PREFIX).await? {
            match self.store.remove(&key).await {
                Ok(()) | Err(Error::Missing { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_to_19_digits_and_read_back() {
        assert_eq!(checkpoint_key(42), "checkpointID-0000000000000000042");
        assert_eq!(checkpoint_id("checkpointID-0000000000000000042"), Some(42));
        assert_eq!(checkpoint_key(u64::MAX).len(), CHECKPOINT_PREFIX.len() + 20);
        assert_eq!(checkpoint_id("checkpointID-42"), None);
        assert_eq!(checkpoint_id("checkpointID-00000000000000000x2"), None);
        assert_eq!(checkpoint_id("counter"), None);
        // Sorting keys sorts ids.
        let mut keys = [checkpoint_key(10), checkpoint_key(9), checkpoint_key(100)];
        keys.sort();
        assert_eq!(keys.map(|k| checkpoint_id(&k)), [Some(9), Some(10), Some(100)]);
    }
}
