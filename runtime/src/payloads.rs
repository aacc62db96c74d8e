//! Payloads in `<storageDir>/<cluster-id>/` through `object_store`: written create-only
//! under fresh unique names (never overwritten), read back, deleted idempotently.
//!
//! ConfigMaps hold only pointers to these files ([`Pointer`]), as in Flink. The pointer
//! format is ours and small: `{"path":"<payload URI>"}`, plus `"markedForDeletion":true`
//! during a two-phase removal (Flink's "marked for deletion" flag).
//!
//! A pointer resolves to exactly one object: it carries the payload's full URI
//! (`s3://bucket/flink/recovery/<cluster-id>/completedCheckpoint…`, as Flink's own
//! pointers do), and a store reads or deletes only what lies inside it. A JobManager
//! configured with another bucket is refused, never shown "nothing there". Pointers of
//! earlier versions hold a bare object path and are read as paths inside this store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::HaSettings;
use crate::error::{Error, Result};
use crate::storage::{self, StorageOptions};

/// The runtime's pointer format, owned by the policy core beside Flink's own (so
/// `inspect`, `gc` and `audit` read exactly what this crate writes).
pub use flink_ha_policy::flink_state::{RuntimePointer as Pointer, RuntimePointerError as PointerError};

/// The name of the file that says which cluster owns a payload folder (see
/// [`PayloadStore::claim_folder`]).
pub const OWNER_MARKER: &str = "flink-ha-owner.json";

/// The random part of a payload name this runtime writes: 24 lowercase hex digits.
const NAME_SUFFIX_LEN: usize = 24;

/// Whether `name` (a file name in the cluster folder) is a payload this runtime wrote: a
/// known kind, then 24 lowercase hex digits. Flink's own payloads
/// (`completedCheckpoint` + 12 hex digits), its `blob/` folder and anything else a user
/// keeps beside them never match, so the orphan sweep cannot touch them.
pub fn is_runtime_payload_name(name: &str, kinds: &[&str]) -> bool {
    kinds.iter().any(|kind| {
        name.strip_prefix(kind).is_some_and(|suffix| {
            suffix.len() == NAME_SUFFIX_LEN && suffix.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    })
}

/// A payload found in the folder by a listing.
#[derive(Clone, Debug)]
pub struct StoredPayload {
    /// The URI a pointer to it carries.
    pub uri: String,
    /// How long ago storage says it was written (zero if its clock is ahead of ours).
    pub age: Duration,
}

/// Who owns a payload folder, as its marker file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FolderOwner {
    /// This cluster (its namespace and id): it may sweep the folder.
    This,
    /// Another cluster, or a marker this version cannot read: hands off.
    Other(String),
}

/// The payload folder of one cluster.
#[derive(Clone)]
pub struct PayloadStore {
    store: Arc<dyn ObjectStore>,
    /// The store's own URI without a path (`s3://bucket`, `file://`).
    store_uri: String,
    root: Path,
    description: String,
    /// Payloads this process wrote whose pointer write has not settled yet (shared by
    /// every clone): the orphan sweep never deletes them, however old.
    unsettled: Arc<Mutex<HashSet<String>>>,
}

impl PayloadStore {
    /// `<storage_dir>/<storage_cluster_id>/`, configured from the environment only (see
    /// [`storage`] for the schemes).
    pub fn open(storage_dir: &str, storage_cluster_id: &str) -> Result<PayloadStore> {
        PayloadStore::open_with(storage_dir, storage_cluster_id, &StorageOptions::default())
    }

    /// The payload folder of the cluster `settings` describe, with the file-system
    /// options of its Flink configuration.
    pub fn for_settings(settings: &HaSettings) -> Result<PayloadStore> {
        PayloadStore::open_with(
            &settings.storage_dir,
            &settings.storage_cluster_id,
            &settings.storage_options,
        )
    }

    /// `<storage_dir>/<storage_cluster_id>/` with explicit file-system options.
    pub fn open_with(storage_dir: &str, storage_cluster_id: &str, options: &StorageOptions) -> Result<PayloadStore> {
        let (store, base) = storage::open(storage_dir, options)?;
        Ok(PayloadStore::with_object_store(
            store,
            &storage::store_uri(storage_dir)?,
            base.join(storage_cluster_id),
        ))
    }

    /// A payload folder on an object store the caller built: `root` inside the store
    /// whose URI (scheme and authority, no path: `s3://bucket`, `file://`) is `store_uri`. For embedders with their own store
    /// configuration, and for tests that put a fault in front of a real store.
    pub fn with_object_store(store: Arc<dyn ObjectStore>, store_uri: &str, root: Path) -> PayloadStore {
        // `file://` keeps its slashes: its authority is empty.
        let store_uri = store_uri.to_string();
        PayloadStore {
            store,
            description: format!("{store_uri}/{root}"),
            store_uri,
            root,
            unsettled: Arc::default(),
        }
    }

    /// The URI a pointer carries for an object of this store.
    pub fn uri_of(&self, path: &Path) -> String {
        format!("{}/{path}", self.store_uri)
    }

    /// The object a pointer's path names, if it lies inside this store.
    fn resolve(&self, pointer_path: &str) -> Result<Path> {
        if !pointer_path.contains("://") {
            // A bare object path, as earlier versions wrote: inside this store.
            return Ok(Path::from(pointer_path));
        }
        match pointer_path
            .strip_prefix(self.store_uri.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(object) if !object.is_empty() => Ok(Path::from(object)),
            _ => Err(Error::Refused(format!(
                "the pointer names {pointer_path}, which is not in this JobManager's storageDir {}: \
                 is it configured with another bucket or file system than the one that wrote it?",
                self.description
            ))),
        }
    }

    /// The object store and this cluster's folder in it, for tools and tests that look
    /// underneath the pointers.
    pub fn object_store(&self) -> (&Arc<dyn ObjectStore>, &Path) {
        (&self.store, &self.root)
    }

    /// Where the payloads go, for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Writes `bytes` under a fresh name `<kind><24 hex>`, never over an existing object;
    /// the URI a pointer to it carries.
    ///
    /// A write whose answer was lost leaves nothing behind: `object_store` retries it,
    /// and the create-only retry then finds the object the first attempt wrote
    /// ("already exists"); one holding these very bytes is ours, and the write
    /// succeeded. When the write fails with its outcome unknown, what may have landed
    /// under the fresh name (which no pointer names yet) is deleted, as far as storage
    /// lets.
    pub async fn put_new(&self, kind: &str, bytes: Bytes) -> Result<String> {
        for _ in 0..3 {
            let name = format!(
                "{kind}{:012x}{:012x}",
                fastrand::u64(..1 << 48),
                fastrand::u64(..1 << 48)
            );
            let path = self.root.clone().join(name);
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            let uri = self.uri_of(&path);
            match self
                .store
                .put_opts(&path, PutPayload::from(bytes.clone()), options)
                .await
            {
                Ok(_) => return Ok(uri),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // 96 random bits are not taken by chance: it is our own lost write,
                    // unless the bytes say otherwise (then draw another name).
                    if self.holds(&path, &bytes).await {
                        return Ok(uri);
                    }
                }
                Err(error) => {
                    if let Err(left) = self.store.delete(&path).await
                        && !matches!(left, object_store::Error::NotFound { .. })
                    {
                        tracing::warn!(%path, error = %left, "a payload whose write failed may be left in storage");
                    }
                    return Err(self.failed("write a payload to", error));
                }
            }
        }
        Err(Error::Storage(format!(
            "no free name for a {kind} payload in {}",
            self.description
        )))
    }

    /// The payload at `uri` waits for its pointer write to settle: the orphan sweep
    /// leaves it alone, however old, until [`PayloadStore::settled`]. (A payload younger
    /// than the sweep's minimum age needs no mark: the age rule protects it.)
    pub fn mark_unsettled(&self, uri: &str) {
        if let Ok(mut unsettled) = self.unsettled.lock() {
            unsettled.insert(uri.to_string());
        }
    }

    /// The pointer write for the payload at `uri` ([`PayloadStore::put_new`]) settled:
    /// written, or proven not written and the payload deleted. From here on the orphan
    /// sweep judges it by the pointers alone.
    pub fn settled(&self, uri: &str) {
        if let Ok(mut unsettled) = self.unsettled.lock() {
            unsettled.remove(uri);
        }
    }

    /// Whether this process still waits to learn if a pointer to `uri` was written.
    pub fn is_unsettled(&self, uri: &str) -> bool {
        // A poisoned lock says nothing: count it as unsettled, the safe side.
        self.unsettled.lock().map_or(true, |unsettled| unsettled.contains(uri))
    }

    /// The URI of the object a pointer's path names, written the way [`PayloadStore::put_new`]
    /// returns it; `None` for a pointer outside this store.
    pub fn canonical_uri(&self, pointer_path: &str) -> Option<String> {
        self.resolve(pointer_path).ok().map(|path| self.uri_of(&path))
    }

    /// The payloads of `kinds` this runtime wrote directly in the folder (not in
    /// sub-folders such as `blob/`), with their age by storage's clock.
    pub async fn list_payloads(&self, kinds: &[&str]) -> Result<Vec<StoredPayload>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.root))
            .await
            .map_err(|e| self.failed("list the payloads in", e))?;
        let now = SystemTime::now();
        Ok(listed
            .objects
            .into_iter()
            .filter(|meta| {
                meta.location
                    .filename()
                    .is_some_and(|name| is_runtime_payload_name(name, kinds))
            })
            .map(|meta| {
                let written = SystemTime::UNIX_EPOCH
                    + Duration::from_millis(u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0));
                StoredPayload {
                    uri: self.uri_of(&meta.location),
                    age: now.duration_since(written).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Makes sure the folder's marker names `owner` (`<namespace>/<cluster-id>`, written
    /// if there is none) and says whether it does. Two clusters with one cluster id in
    /// two namespaces may share a storageDir; only the one the marker names sweeps.
    pub async fn claim_folder(&self, owner: &str) -> Result<FolderOwner> {
        let path = self.root.clone().join(OWNER_MARKER);
        let marker = serde_json::json!({ "owner": owner }).to_string();
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.store.put_opts(&path, PutPayload::from(marker), options).await {
            Ok(_) => return Ok(FolderOwner::This),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(error) => return Err(self.failed("write the owner marker into", error)),
        }
        let got = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.failed("read the owner marker of", e))?;
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.failed("read the owner marker of", e))?;
        let named = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|value| value["owner"].as_str().map(str::to_string));
        Ok(match named {
            Some(named) if named == owner => FolderOwner::This,
            Some(named) => FolderOwner::Other(named),
            None => FolderOwner::Other(format!("an unreadable marker {}", self.uri_of(&path))),
        })
    }

    /// Deletes the folder's owner marker if it names `owner` (the cluster's own
    /// shutdown cleanup); another cluster's marker stays.
    pub async fn release_folder(&self, owner: &str) -> Result<()> {
        let path = self.root.clone().join(OWNER_MARKER);
        let bytes = match self.store.get(&path).await {
            Ok(got) => got
                .bytes()
                .await
                .map_err(|e| self.failed("read the owner marker of", e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(self.failed("read the owner marker of", error)),
        };
        let named = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|value| value["owner"].as_str().map(str::to_string));
        if named.as_deref() != Some(owner) {
            return Ok(());
        }
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(self.failed("delete the owner marker of", error)),
        }
    }

    /// Whether the object at `path` holds exactly `bytes`.
    async fn holds(&self, path: &Path, bytes: &Bytes) -> bool {
        match self.store.get(path).await {
            Ok(got) => got.bytes().await.is_ok_and(|stored| stored == *bytes),
            Err(_) => false,
        }
    }

    /// The payload a pointer's path names. A missing object is
    /// [`Error::PayloadMissing`]; a pointer outside this store is refused.
    pub async fn get(&self, pointer_path: &str) -> Result<Bytes> {
        let path = self.resolve(pointer_path)?;
        let missing = |error: object_store::Error| match error {
            object_store::Error::NotFound { .. } => Error::PayloadMissing {
                path: pointer_path.to_string(),
            },
            error => self.failed("read a payload from", error),
        };
        let got = self.store.get(&path).await.map_err(missing)?;
        got.bytes().await.map_err(missing)
    }

    /// Deletes the payload a pointer's path names; one that is already gone is fine
    /// (removal is idempotent). Nothing outside this store is ever deleted.
    pub async fn delete(&self, pointer_path: &str) -> Result<()> {
        match self.store.delete(&self.resolve(pointer_path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(self.failed("delete a payload in", error)),
        }
    }

    /// An object-store error, with where it happened (the store's own message names the
    /// object, not always the storageDir the user configured).
    fn failed(&self, what: &str, source: object_store::Error) -> Error {
        Error::StorageIo {
            what: format!("{what} {}", self.description),
            source,
        }
    }

    /// Deletes every object under `<cluster folder>/<folder>/` and nothing beside it (the
    /// cluster cleanup's `blob/`: other clusters with the same id may share the folder).
    pub async fn delete_folder(&self, folder: &str) -> Result<()> {
        use futures::TryStreamExt;
        let prefix = self.root.clone().join(folder);
        let paths: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| self.failed(&format!("list {folder}/ in"), e))?;
        for path in paths {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(self.failed(&format!("delete from {folder}/ in"), error)),
            }
        }
        Ok(())
    }
}
