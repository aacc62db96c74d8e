//! The completed-checkpoint store of a job: `checkpointID-<id, 19 digits>` entries in the
//! job ConfigMap, keeping `execution.checkpointing.num-retained` of them; recovery takes
//! the highest id (keys are zero-padded so they sort by id, as Flink relies on).
//!
//! Two ConfigMap writes per completed checkpoint, retention included (Flink 2.3: four
//! updates, each after a GET): the write that adds the new pointer also marks the ones
//! falling out of retention; their payloads are deleted; a second write removes them.
//! Marked entries left behind by a crash or a lost answer are finished by the next add.
//!
//! **Recovery never starts a job empty, or from an older checkpoint, by mistake.** A
//! payload read that fails for a reason that may pass (a lost connection, a 5xx) is
//! retried with backoff, and one that keeps failing fails the recovery: the job is not
//! started, and nothing is dropped. A newest checkpoint whose payload the store proves
//! missing fails the recovery too, naming its key and URI, as Flink's does
//! ([`Error::CheckpointPayloadMissing`]): only the operator's explicit choice
//! ([`MissingCheckpoint::FallBackToOlder`]) skips it for an older one — and if every
//! retained checkpoint is missing, the store that answers is not the one that wrote them
//! (another endpoint, an emptied bucket), so that is refused even then. Until a recovery
//! read its checkpoint back (or proved there is none), adds are refused, so retention can
//! never drop the checkpoint a job should have restarted from.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::cas::ConfigMapCas;
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::names;
use crate::payloads::{PayloadStore, Pointer};
use crate::state_handle_store::{Guard, StateHandleStore, live_entries, marked_entries};

/// Flink's checkpoint keys (`checkpointID-%019d`), from the policy core's layout.
/// The runtime's checkpoint keys (`flink-ha.checkpointID-<19 digits>`): never Flink's own
/// `checkpointID-` keys, whose values Flink decodes as Java serialization.
pub use flink_ha_policy::ha_layout::{
    RUNTIME_CHECKPOINT_KEY_PREFIX as CHECKPOINT_PREFIX, runtime_checkpoint_id as checkpoint_id,
    runtime_checkpoint_key as checkpoint_key,
};
/// The payload file name prefix, as Flink names it.
pub const PAYLOAD_KIND: &str = "completedCheckpoint";

/// What [`CompletedCheckpointStore::add`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added {
    /// The payload URI the new checkpoint's pointer names.
    pub path: String,
    /// The ids this add dropped beyond retention (their pointers and payloads removed,
    /// or left marked for a later add to finish).
    pub subsumed: Vec<u64>,
}

/// How often, and how patiently, recovery reads a payload before it gives up.
#[derive(Clone, Copy, Debug)]
pub struct ReadRetries {
    /// How many reads at most, the first one included.
    pub attempts: u32,
    /// The pause after the first failure; it doubles after each further one.
    pub first_backoff: Duration,
}

impl Default for ReadRetries {
    /// Six attempts over about three seconds.
    fn default() -> Self {
        ReadRetries {
            attempts: 6,
            first_backoff: Duration::from_millis(100),
        }
    }
}

/// What recovery does when the newest checkpoint's payload is missing from storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingCheckpoint {
    /// Fail the recovery, naming the checkpoint's key and URI (Flink's behaviour): the
    /// job does not run until someone decides.
    #[default]
    Fail,
    /// Recover from the newest older checkpoint whose payload is there: the operator's
    /// explicit choice to roll the job's state back rather than not run it.
    FallBackToOlder,
}

/// A job's completed checkpoints. Recover first ([`CompletedCheckpointStore::recover`]);
/// adds are refused until then.
pub struct CompletedCheckpointStore {
    store: StateHandleStore,
    num_retained: usize,
    read_retries: ReadRetries,
    on_missing: MissingCheckpoint,
    recovered: AtomicBool,
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
            store: StateHandleStore::new(
                cas,
                names::job_config_map(cluster_id, job_id),
                payloads,
                Guard::Fence(fence),
            ),
            num_retained: usize::try_from(num_retained.max(1)).unwrap_or(1),
            read_retries: ReadRetries::default(),
            on_missing: MissingCheckpoint::default(),
            recovered: AtomicBool::new(false),
        }
    }

    /// Recovery reads with other retries than the default.
    pub fn with_read_retries(mut self, read_retries: ReadRetries) -> Self {
        self.read_retries = read_retries;
        self
    }

    /// Recovery with another answer to a missing newest payload than failing
    /// ([`MissingCheckpoint::Fail`], the default).
    pub fn with_missing_checkpoint(mut self, on_missing: MissingCheckpoint) -> Self {
        self.on_missing = on_missing;
        self
    }

    /// Adds a completed checkpoint and drops those beyond retention, oldest first.
    /// Refused before [`CompletedCheckpointStore::recover`] succeeded.
    pub async fn add(&self, id: u64, payload: Bytes) -> Result<Added> {
        if !self.recovered.load(Ordering::Acquire) {
            return Err(Error::Refused(format!(
                "checkpoint {id} of {}: the job's checkpoints were not recovered first, and retention could drop the one it must restart from",
                self.store.name
            )));
        }
        let key = checkpoint_key(id);
        let keep = self.num_retained;
        let name = self.store.name.clone();
        let stored = self
            .store
            .add_with(&key, PAYLOAD_KIND, payload, |cm| {
                let live = live_entries(cm, &name, CHECKPOINT_PREFIX);
                let drop_count = live.len().saturating_sub(keep);
                let data = cm.data.get_or_insert_with(Default::default);
                for (old_key, mut pointer) in live.into_iter().take(drop_count) {
                    pointer.marked_for_deletion = true;
                    data.insert(old_key, pointer.to_json());
                }
                Ok(())
            })
            .await?;
        // The checkpoint is in. What is marked now (those this add subsumed, and any a
        // crash or a lost answer left behind) goes: payloads first; a key whose payload
        // could not be deleted stays marked (invisible) for a later add to finish. A
        // failure here does not undo the add.
        let marked = marked_entries(&stored, CHECKPOINT_PREFIX);
        let mut removable = Vec::new();
        for (old_key, Pointer { path, .. }) in &marked {
            match self.store.payloads.delete(path).await {
                Ok(()) => removable.push(old_key.clone()),
                Err(error) => tracing::warn!(key = %old_key, %error, "subsumed checkpoint payload not deleted yet"),
            }
        }
        if !removable.is_empty()
            && let Err(error) = self.store.remove_marked_keys(&removable).await
        {
            tracing::warn!(%error, "subsumed checkpoint keys not removed yet");
        }
        let path = live_entries(&stored, &name, CHECKPOINT_PREFIX)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, pointer)| pointer.path)
            .unwrap_or_default();
        Ok(Added {
            path,
            subsumed: marked.iter().filter_map(|(k, _)| checkpoint_id(k)).collect(),
        })
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

    /// Recovery: the highest checkpoint with its payload, or `None` when the job has no
    /// checkpoint. Transient read errors are retried with backoff and then fail the
    /// recovery. A newest payload proven missing fails it too
    /// ([`Error::CheckpointPayloadMissing`]), unless the store was built with
    /// [`MissingCheckpoint::FallBackToOlder`]: then it is skipped for the newest older one
    /// that can be read, and if none can, the recovery is refused. Adds are allowed once
    /// it succeeded.
    pub async fn recover(&self) -> Result<Option<(u64, Bytes)>> {
        let mut entries = self.store.list(CHECKPOINT_PREFIX).await?;
        if crate::planted::planted(crate::planted::Bug::OlderCheckpoint) && entries.len() > 1 {
            entries.pop();
        }
        let mut missing = Vec::new();
        for (key, Pointer { path, .. }) in entries.iter().rev() {
            let Some(id) = checkpoint_id(key) else {
                tracing::warn!(%key, "skipping a checkpoint key without a 19-digit id");
                continue;
            };
            match self.read(path).await {
                Ok(bytes) => {
                    if !missing.is_empty() {
                        tracing::warn!(job = %self.store.name, skipped = ?missing, recovered = id, "newer checkpoints' payloads are missing from storageDir; recovering an older one, as chosen");
                    }
                    self.recovered.store(true, Ordering::Release);
                    return Ok(Some((id, bytes)));
                }
                Err(Error::PayloadMissing { path }) if self.on_missing == MissingCheckpoint::FallBackToOlder => {
                    missing.push(path)
                }
                Err(Error::PayloadMissing { path }) => {
                    return Err(Error::CheckpointPayloadMissing {
                        name: self.store.name.clone(),
                        key: key.clone(),
                        uri: path,
                    });
                }
                Err(error) => return Err(error),
            }
        }
        if !missing.is_empty() {
            return Err(Error::Refused(format!(
                "{}: the payload of every retained checkpoint is missing from storageDir {} ({}): the store that answers is not the one that wrote them (another endpoint or bucket?) or was emptied; the job is not started empty",
                self.store.name,
                self.store.payloads.description(),
                missing.join(", ")
            )));
        }
        self.recovered.store(true, Ordering::Release);
        Ok(None)
    }

    /// One payload, with retries for failures that may pass.
    ///
    /// "Not found" is retried as well: a pointer names the payload, so storage that says
    /// it is not there may be a lagging replica or a misrouted request (the nemesis's
    /// `storage-404`), and declaring the newest checkpoint missing fails the job's
    /// recovery. A payload truly gone costs the retries' three seconds, then fails as before.
    async fn read(&self, path: &str) -> Result<Bytes> {
        let mut backoff = self.read_retries.first_backoff;
        let mut attempt = 1;
        loop {
            match self.store.payloads.get(path).await {
                Err(error)
                    if (error.is_transient_storage_error() || matches!(error, Error::PayloadMissing { .. }))
                        && attempt < self.read_retries.attempts =>
                {
                    tracing::warn!(%path, %error, attempt, "checkpoint payload read failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// On a globally terminal job every checkpoint goes (pointers and payloads, marked
    /// leftovers of interrupted removals included: the job ConfigMap is deleted next, and
    /// a payload whose pointer goes with it would be left in storage for good);
    /// otherwise they stay for recovery.
    pub async fn shutdown(&self, job_is_terminal: bool) -> Result<()> {
        if !job_is_terminal {
            return Ok(());
        }
        let Some(cm) = self.store.cas.get(&self.store.name).await? else {
            return Ok(());
        };
        let keys: Vec<String> = cm
            .data
            .unwrap_or_default()
            .into_keys()
            .filter(|key| key.starts_with(CHECKPOINT_PREFIX))
            .collect();
        for key in keys {
            match self.store.remove(&key).await {
                Ok(()) | Err(Error::Missing { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}
