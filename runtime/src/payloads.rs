//! Payloads in `<storageDir>/<cluster-id>/` through `object_store`: written create-only
//! under fresh unique names (never overwritten), read back, deleted idempotently.
//!
//! A payload's name says which cluster wrote it: `<kind>-<owner>-<24 hex digits>`, the
//! owner being [`PayloadOwner`] (a hash of the namespace, the cluster id and a random
//! token the cluster ConfigMap carries). Several clusters may write into one folder
//! (every cluster without `high-availability.cluster-id` writes into `default/`); the
//! name is what proves a file to be this cluster's, so the orphan sweep
//! ([`crate::sweep`]) considers nothing else. Names of earlier versions (`<kind><24 hex
//! digits>`) are still read, and never swept: nothing in them says whose they are.
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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::HaSettings;
use crate::error::{Error, Result};
use crate::storage::{self, StorageOptions};

/// The runtime's pointer format, owned by the policy core beside Flink's own (so
/// `inspect`, `gc` and `audit` read exactly what this crate writes).
pub use flink_ha_policy::flink_state::{RuntimePointer as Pointer, RuntimePointerError as PointerError};

/// The name of the file that says which cluster owns a payload folder (see
/// [`PayloadStore::claim_folder`]); the core's storage layout knows it too, so `gc` reads it.
pub const OWNER_MARKER: &str = flink_ha_policy::storage_layout::OWNER_MARKER;

/// The kind of the object [`PayloadStore::create_only_holds`] writes to probe the store:
/// named like a payload of its owner, so that one a killed process left behind is an
/// orphan the sweep removes like any other.
/// `gc` places it through the core's storage layout.
pub const PROBE_KIND: &str = flink_ha_policy::storage_layout::PROBE_PREFIX;

/// The random part of a payload name this runtime writes: 24 lowercase hex digits.
const NAME_SUFFIX_LEN: usize = 24;

/// The owner part of a payload name: 16 lowercase hex digits.
const OWNER_LEN: usize = 16;

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `name` (a file name in the cluster folder) is a payload this runtime wrote: a
/// known kind, then `-<owner>-` and 24 lowercase hex digits, or (as earlier versions
/// wrote them) the 24 digits right after the kind. Flink's own payloads
/// (`completedCheckpoint` + 12 hex digits), its `blob/` folder and anything else a user
/// keeps beside them never match, so the orphan sweep cannot touch them.
pub fn is_runtime_payload_name(name: &str, kinds: &[&str]) -> bool {
    kinds.iter().any(|kind| {
        name.strip_prefix(kind).is_some_and(|rest| {
            is_hex(rest, NAME_SUFFIX_LEN)
                || rest
                    .strip_prefix('-')
                    .and_then(|rest| rest.split_once('-'))
                    .is_some_and(|(owner, random)| is_hex(owner, OWNER_LEN) && is_hex(random, NAME_SUFFIX_LEN))
        })
    })
}

/// The annotation of the cluster ConfigMap that holds its payload owner token: 32
/// random hex digits, minted by the leader that first takes the lock (the election) and
/// kept for as long as the ConfigMap lives, through a restore after a deletion too.
pub const OWNER_TOKEN_ANNOTATION: &str = "flink-ha/payload-owner";

/// The payload owner token of a cluster ConfigMap ([`OWNER_TOKEN_ANNOTATION`]).
pub fn owner_token(cm: &ConfigMap) -> Option<&str> {
    cm.metadata
        .annotations
        .as_ref()?
        .get(OWNER_TOKEN_ANNOTATION)
        .map(String::as_str)
        .filter(|token| !token.is_empty())
}

/// The cluster a payload belongs to, as its name carries it: 16 hex digits of a hash
/// (64-bit FNV-1a, stable across versions and platforms) of the namespace, the cluster
/// id and the cluster ConfigMap's owner token ([`OWNER_TOKEN_ANNOTATION`]). The token
/// sets apart twin clusters created apart (one cluster id in two namespaces or two
/// Kubernetes clusters); the namespace, a copy of the ConfigMap in another namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PayloadOwner(String);

impl PayloadOwner {
    /// The owner of the payloads of cluster `cluster_id` in `namespace`, whose cluster
    /// ConfigMap carries the owner token `token`.
    pub fn new(namespace: &str, cluster_id: &str, token: &str) -> PayloadOwner {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("{namespace}/{cluster_id}/{token}").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        PayloadOwner(format!("{hash:016x}"))
    }

    /// The 16 hex digits a payload name carries.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` is a payload of one of `kinds` that this owner wrote:
    /// `<kind>-<owner>-<24 hex digits>`. Names of earlier versions and of other owners
    /// are not.
    pub fn owns(&self, name: &str, kinds: &[&str]) -> bool {
        kinds.iter().any(|kind| {
            name.strip_prefix(kind)
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|rest| rest.strip_prefix(self.0.as_str()))
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|random| is_hex(random, NAME_SUFFIX_LEN))
        })
    }
}

impl std::fmt::Display for PayloadOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A payload of this cluster found in the folder by a listing.
#[derive(Clone, Debug)]
pub struct StoredPayload {
    /// The URI a pointer to it carries.
    pub uri: String,
    /// How long ago this process first saw it in a listing, by its own monotonic clock
    /// (storage's timestamps come from another clock, which may be skewed).
    pub age: Duration,
}

/// What a listing of the folder found.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The payloads whose name carries the owner listed for.
    pub owned: Vec<StoredPayload>,
    /// The payloads of this runtime whose name does not: another cluster's, or written
    /// by an earlier version (whose names carry no owner). Never swept.
    pub not_ours: usize,
}

/// Keeps a payload marked unsettled while its write runs; unmarks it however the write
/// ends (failed or cancelled), unless it is kept for the caller to settle.
struct Marked<'a> {
    payloads: &'a PayloadStore,
    uri: String,
    kept: bool,
}

impl Drop for Marked<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.payloads.settled(&self.uri);
        }
    }
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
    /// Whose names new payloads carry; `None`: the unowned names of earlier versions,
    /// which no sweep ever deletes.
    owner: Option<PayloadOwner>,
    /// When this process first listed each payload of the folder (shared by every
    /// clone): the orphan sweep's clock.
    first_seen: Arc<Mutex<HashMap<String, Instant>>>,
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
            owner: None,
            first_seen: Arc::default(),
        }
    }

    /// This folder, writing names that carry `owner` (see [`PayloadOwner`]). The clone
    /// shares the unsettled payloads and the first-seen clock with this store.
    pub fn owned_by(&self, owner: PayloadOwner) -> PayloadStore {
        PayloadStore {
            owner: Some(owner),
            ..self.clone()
        }
    }

    /// Whose names new payloads carry; `None` for the unowned names of earlier versions.
    pub fn owner(&self) -> Option<&PayloadOwner> {
        self.owner.as_ref()
    }

    /// The folder's own name: the storage cluster id (`high-availability.cluster-id`,
    /// `default` when unset).
    pub fn folder_name(&self) -> Option<&str> {
        self.root.filename()
    }

    /// A fresh name for a `kind` object: `<kind>-<owner>-<24 hex>`, or without an owner
    /// `<kind><24 hex>`.
    fn fresh_name(&self, kind: &str) -> String {
        let random = format!("{:012x}{:012x}", fastrand::u64(..1 << 48), fastrand::u64(..1 << 48));
        match &self.owner {
            Some(owner) => format!("{kind}-{owner}-{random}"),
            None => format!("{kind}{random}"),
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

    /// Writes `bytes` under a fresh name (`<kind>-<owner>-<24 hex>`), never over an
    /// existing object; the URI a pointer to it carries.
    ///
    /// The payload is unsettled ([`PayloadStore::mark_unsettled`]) before its write
    /// starts, and stays so when this returns it: the caller settles it once its pointer
    /// write has an outcome. So no sweep of this process ever sees it in storage
    /// unmarked before then. A failed or cancelled write leaves no mark.
    ///
    /// A write whose answer was lost leaves nothing behind: `object_store` retries it,
    /// and the create-only retry then finds the object the first attempt wrote
    /// ("already exists"); one holding these very bytes is ours, and the write
    /// succeeded. When the write fails with its outcome unknown, what may have landed
    /// under the fresh name (which no pointer names yet) is deleted, as far as storage
    /// lets.
    pub async fn put_new(&self, kind: &str, bytes: Bytes) -> Result<String> {
        for _ in 0..3 {
            let path = self.root.clone().join(self.fresh_name(kind));
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            let uri = self.uri_of(&path);
            // Marked before the write: it may land before its answer does.
            let mut marked = Marked {
                payloads: self,
                uri: uri.clone(),
                kept: false,
            };
            self.mark_unsettled(&uri);
            match self
                .store
                .put_opts(&path, PutPayload::from(bytes.clone()), options)
                .await
            {
                Ok(_) => {
                    marked.kept = true;
                    return Ok(uri);
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // 96 random bits are not taken by chance: it is our own lost write,
                    // unless the bytes say otherwise (then draw another name).
                    if self.holds(&path, &bytes).await {
                        marked.kept = true;
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
    /// leaves it alone, however old, until [`PayloadStore::settled`].
    /// [`PayloadStore::put_new`] marks what it writes itself.
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

    /// The payloads unsettled right now. Taken by the sweep after its listing and
    /// before it reads the pointers: a payload settled in between has its pointer in
    /// what the sweep reads.
    pub fn unsettled_now(&self) -> HashSet<String> {
        // The set is whole even if a holder panicked: inserts and removes do not tear.
        self.unsettled.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The URI of the object a pointer's path names, written the way [`PayloadStore::put_new`]
    /// returns it; `None` for a pointer outside this store.
    pub fn canonical_uri(&self, pointer_path: &str) -> Option<String> {
        self.pointer_uri(pointer_path).ok()
    }

    /// As [`PayloadStore::canonical_uri`], with a pointer outside this store refused
    /// (saying where it points).
    pub fn pointer_uri(&self, pointer_path: &str) -> Result<String> {
        self.resolve(pointer_path).map(|path| self.uri_of(&path))
    }

    /// The payloads of `kinds` directly in the folder (not in sub-folders such as
    /// `blob/`) whose names carry `owner`, each with the time since this process first
    /// listed it; and how many of this runtime's payloads there are not `owner`'s.
    /// Flink's own files and a user's are neither.
    pub async fn list_owned(&self, kinds: &[&str], owner: &PayloadOwner) -> Result<Listing> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.root))
            .await
            .map_err(|e| self.failed("list the payloads in", e))?;
        let now = Instant::now();
        let mut first_seen = self.first_seen.lock().unwrap_or_else(PoisonError::into_inner);
        let mut listing = Listing::default();
        let mut seen_now = HashMap::new();
        for meta in listed.objects {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let any_owner = crate::planted::planted(crate::planted::Bug::SweepAnyOwner);
            if owner.owns(name, kinds) || (any_owner && is_runtime_payload_name(name, kinds)) {
                let uri = self.uri_of(&meta.location);
                let since = first_seen.get(&uri).copied().unwrap_or(now);
                seen_now.insert(uri.clone(), since);
                listing.owned.push(StoredPayload {
                    uri,
                    age: now.saturating_duration_since(since),
                });
            } else if is_runtime_payload_name(name, kinds) {
                listing.not_ours += 1;
            }
        }
        // What is gone is forgotten: the map stays as small as the folder.
        *first_seen = seen_now;
        Ok(listing)
    }

    /// Whether the store honours create-only writes (`PutMode::Create`, S3's
    /// `If-None-Match: *`), tried on a fresh object of [`PROBE_KIND`]: written once, then
    /// again, which must fail as "already exists". The probe is deleted afterwards. The
    /// owner marker and the payloads' fresh names rely on it; some S3-compatible stores
    /// ignore the condition and overwrite.
    pub async fn create_only_holds(&self) -> Result<bool> {
        let path = self.root.clone().join(self.fresh_name(PROBE_KIND));
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let probe = || PutPayload::from_static(b"a probe of create-only writes; deleted at once");
        // The second write says something only after a first one known to have landed
        // (a retry after a lost answer may meet the first as "already exists").
        let again = match self.store.put_opts(&path, probe(), create()).await {
            Ok(_) => self.store.put_opts(&path, probe(), create()).await,
            Err(error) => {
                self.delete_probe(&path).await;
                return Err(self.failed("write a probe of create-only writes into", error));
            }
        };
        self.delete_probe(&path).await;
        match again {
            Ok(_) => Ok(false),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(true),
            Err(error) => Err(self.failed("write a probe of create-only writes into", error)),
        }
    }

    /// Deletes the probe of [`PayloadStore::create_only_holds`], as far as storage lets.
    async fn delete_probe(&self, path: &Path) {
        if let Err(error) = self.store.delete(path).await
            && !matches!(error, object_store::Error::NotFound { .. })
        {
            // It carries this cluster's name: a later sweep removes it.
            tracing::warn!(%path, %error, "could not delete the probe of create-only writes");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [&str; 2] = ["completedCheckpoint", "submittedExecutionPlan"];

    #[test]
    fn an_owner_is_a_stable_hash_of_namespace_cluster_and_token() {
        // Fixed: payloads written by one version are swept by the next.
        let owner = PayloadOwner::new("orders", "shop", "6f1c3c8e-1f7d-4a59-a0a4-0a9c2e3b1d21");
        assert_eq!(owner.as_str(), "45d1fe273ef0293d");
        // A twin (same cluster id) in another namespace, or one created apart in another
        // Kubernetes cluster (another token), is another owner.
        assert_ne!(
            owner,
            PayloadOwner::new("billing", "shop", "6f1c3c8e-1f7d-4a59-a0a4-0a9c2e3b1d21")
        );
        assert_ne!(
            owner,
            PayloadOwner::new("orders", "shop", "0b7e1a52-5b8c-4c1e-9f57-3d0a7f9e2c11")
        );
    }

    #[test]
    fn only_names_that_carry_the_owner_are_its_own() {
        let owner = PayloadOwner::new("orders", "shop", "6f1c3c8e-1f7d-4a59-a0a4-0a9c2e3b1d21");
        let other = PayloadOwner::new("billing", "shop", "6f1c3c8e-1f7d-4a59-a0a4-0a9c2e3b1d21");
        let random = "0123456789abcdef01234567";
        let own = format!("completedCheckpoint-{owner}-{random}");
        let others = format!("submittedExecutionPlan-{other}-{random}");
        let earlier = format!("completedCheckpoint{random}");
        let flinks = "completedCheckpointe31c6049fc69";
        assert!(owner.owns(&own, &KINDS));
        assert!(!owner.owns(&others, &KINDS));
        assert!(
            !owner.owns(&earlier, &KINDS),
            "an earlier version's name proves nothing"
        );
        assert!(!owner.owns(flinks, &KINDS));
        assert!(!owner.owns(&format!("{own}0"), &KINDS));
        assert!(!owner.owns(&format!("blob-{owner}-{random}"), &KINDS));
        // This runtime's, either form; never Flink's.
        for name in [&own, &others, &earlier] {
            assert!(is_runtime_payload_name(name, &KINDS), "{name}");
        }
        assert!(!is_runtime_payload_name(flinks, &KINDS));
        assert!(!is_runtime_payload_name(
            &format!("completedCheckpoint-{owner}-{}", &random[1..]),
            &KINDS
        ));
        assert!(!is_runtime_payload_name(
            &format!("completedCheckpoint-XYZ-{random}"),
            &KINDS
        ));
    }

    #[tokio::test]
    async fn put_new_marks_a_payload_unsettled_before_it_writes_and_names_its_owner() -> Result<()> {
        let temp = tempfile::tempdir().map_err(|e| Error::Storage(e.to_string()))?;
        let dir = temp.path();
        let owner = PayloadOwner::new("orders", "shop", "6f1c3c8e-1f7d-4a59-a0a4-0a9c2e3b1d21");
        let payloads = PayloadStore::open(&format!("file://{}", dir.display()), "shop")?.owned_by(owner.clone());
        let uri = payloads
            .put_new("completedCheckpoint", Bytes::from_static(b"x"))
            .await?;
        assert!(uri.contains(&format!("/shop/completedCheckpoint-{owner}-")), "{uri}");
        assert!(payloads.is_unsettled(&uri), "left marked for the caller to settle");
        payloads.settled(&uri);
        assert!(payloads.unsettled_now().is_empty());
        // A write that fails leaves no mark behind.
        let blocked = PayloadStore::open(&format!("file://{}/file/below", dir.join("a-file").display()), "shop")?;
        std::fs::write(dir.join("a-file"), b"not a folder").map_err(|e| Error::Storage(e.to_string()))?;
        assert!(
            blocked
                .put_new("completedCheckpoint", Bytes::from_static(b"x"))
                .await
                .is_err()
        );
        assert!(blocked.unsettled_now().is_empty());
        // The local file system keeps create-only writes; the probe leaves nothing.
        assert!(payloads.create_only_holds().await?);
        let names: Vec<_> = std::fs::read_dir(dir.join("shop"))
            .map_err(|e| Error::Storage(e.to_string()))?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        Ok(())
    }
}
