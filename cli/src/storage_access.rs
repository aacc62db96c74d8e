//! The storageDir as `inspect` and `gc` see it: where a pointer's payload is, whether it
//! exists and with what size, its bytes, and what lies in a folder.
//!
//! Pointers carry the payload's full URI as the JobManager saw it (Flink writes
//! `file:/mnt/ha/default/completedCheckpoint…`, `s3://bucket/ha/default/…`). A support
//! bundle or a copy of the storageDir sits elsewhere, so a payload that is not under the
//! storageDir given is looked for in it by its last path segments
//! (`<cluster folder>/<file>`, then `<file>`), and the output says where it was found.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use flink_ha_policy::flink_state::normalize_uri;
use flink_ha_policy::ha_state::PayloadFact;
use flink_ha_policy::java_serial::MAX_STREAM_BYTES;
use flink_ha_runtime::storage::{self, StorageOptions};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// An open storageDir.
pub struct StorageAccess {
    /// As given (for messages).
    pub storage_dir: String,
    store: Arc<dyn ObjectStore>,
    /// `s3://bucket`, `file://` (schemes normalised: `s3a`/`s3p` are `s3`).
    store_uri: String,
    root: Path,
}

/// One object found by a listing.
#[derive(Clone, Debug)]
pub struct ListedObject {
    /// Its URI in the form pointers use.
    pub uri: String,
    /// Its path inside the store.
    pub path: Path,
    pub size: u64,
    /// When it was last written (storage's clock).
    pub last_modified: jiff::Timestamp,
}

impl StorageAccess {
    /// Opens `storage_dir` with the Flink file-system options given.
    pub fn open(storage_dir: &str, options: &StorageOptions) -> Result<StorageAccess> {
        let normalized = normalize_uri(storage_dir);
        let (store, root) =
            storage::open(&normalized, options).with_context(|| format!("opening storage {storage_dir}"))?;
        let store_uri = storage::store_uri(&normalized).with_context(|| format!("opening storage {storage_dir}"))?;
        Ok(StorageAccess {
            storage_dir: storage_dir.to_owned(),
            store,
            store_uri,
            root,
        })
    }

    /// The URI of a path in this store.
    pub fn uri_of(&self, path: &Path) -> String {
        format!("{}/{path}", self.store_uri)
    }

    /// A child path of the storageDir (`<storageDir>/<parts…>`).
    pub fn child(&self, parts: &[&str]) -> Path {
        parts.iter().fold(self.root.clone(), |p, part| p.clone().join(*part))
    }

    /// The segments of `path` below the storageDir (`["default", "completedCheckpoint…"]`),
    /// or `None` if it is not below it (the storageDir itself included).
    pub fn relative(&self, path: &Path) -> Option<Vec<String>> {
        let parts: Vec<String> = path.prefix_match(&self.root)?.map(|p| p.as_ref().to_owned()).collect();
        (!parts.is_empty()).then_some(parts)
    }

    /// The path of `uri` in this store, if it is in this store at all (same scheme and
    /// bucket/account).
    pub fn path_in_store(&self, uri: &str) -> Option<Path> {
        let normalized = normalize_uri(uri);
        let url = url::Url::parse(&normalized).ok()?;
        let store_uri = storage::store_uri(&normalized).ok()?;
        if store_uri != self.store_uri {
            return None;
        }
        Path::from_url_path(url.path()).ok()
    }

    /// Where `uri` is, whether it exists, its size.
    pub async fn locate(&self, uri: &str) -> PayloadFact {
        let direct = self.path_in_store(uri);
        if let Some(path) = direct.as_ref().filter(|p| p.prefix_matches(&self.root)) {
            return self.head(path, &self.uri_of(path)).await;
        }
        // Not under the storageDir given: a copy of it, or a folder of payload files.
        let parts: Vec<String> = match url::Url::parse(&normalize_uri(uri)) {
            Ok(url) => url
                .path_segments()
                .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let mut looked_at = Vec::new();
        for take in [2usize, 1] {
            if parts.len() < take {
                continue;
            }
            let tail: Vec<&str> = parts[parts.len() - take..].iter().map(String::as_str).collect();
            let path = self.child(&tail);
            match self.head(&path, &self.uri_of(&path)).await {
                found @ PayloadFact::Found { .. } => return found,
                PayloadFact::Unreachable { error } => return PayloadFact::Unreachable { error },
                _ => looked_at.push(self.uri_of(&path)),
            }
        }
        if direct.is_none() {
            return PayloadFact::Foreign {
                storage: self.storage_dir.clone(),
            };
        }
        PayloadFact::Missing {
            looked_at: format!("{uri} (nor at {})", looked_at.join(" or ")),
        }
    }

    async fn head(&self, path: &Path, uri: &str) -> PayloadFact {
        match self.store.head(path).await {
            Ok(meta) => PayloadFact::Found {
                size: meta.size,
                read_from: uri.to_owned(),
            },
            Err(object_store::Error::NotFound { .. }) => PayloadFact::Missing {
                looked_at: uri.to_owned(),
            },
            Err(e) => PayloadFact::Unreachable { error: e.to_string() },
        }
    }

    /// The bytes of a payload found by [`StorageAccess::locate`] (at most the Java reader's
    /// limit).
    pub async fn read(&self, read_from: &str) -> Result<Vec<u8>> {
        let Some(path) = self.path_in_store(read_from) else {
            bail!("{read_from} is not in {}", self.storage_dir);
        };
        let result = self
            .store
            .get(&path)
            .await
            .with_context(|| format!("reading {read_from}"))?;
        if result.meta.size > MAX_STREAM_BYTES as u64 {
            bail!(
                "{read_from} is {} bytes, over the {MAX_STREAM_BYTES}-byte limit",
                result.meta.size
            );
        }
        let bytes = result.bytes().await.with_context(|| format!("reading {read_from}"))?;
        Ok(bytes.to_vec())
    }

    /// The SHA-256 of a payload found by [`StorageAccess::locate`], read as a stream (no
    /// size limit, constant memory).
    pub async fn sha256(&self, read_from: &str) -> Result<String> {
        use sha2::{Digest, Sha256};
        let Some(path) = self.path_in_store(read_from) else {
            bail!("{read_from} is not in {}", self.storage_dir);
        };
        let mut stream = self
            .store
            .get(&path)
            .await
            .with_context(|| format!("reading {read_from}"))?
            .into_stream();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream
            .try_next()
            .await
            .with_context(|| format!("reading {read_from}"))?
        {
            hasher.update(&chunk);
        }
        Ok(hex(&hasher.finalize()))
    }

    /// Copies an object into a local file (created new), returning its size and SHA-256.
    pub async fn copy_to_file(&self, path: &Path, dest: &std::path::Path) -> Result<(u64, String)> {
        use sha2::{Digest, Sha256};
        use std::io::Write;
        let uri = self.uri_of(path);
        let mut stream = self
            .store
            .get(path)
            .await
            .with_context(|| format!("reading {uri}"))?
            .into_stream();
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(dest)
            .with_context(|| format!("creating {}", dest.display()))?;
        let (mut size, mut hasher) = (0u64, Sha256::new());
        while let Some(chunk) = stream.try_next().await.with_context(|| format!("reading {uri}"))? {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .with_context(|| format!("writing {}", dest.display()))?;
        }
        file.sync_all().with_context(|| format!("writing {}", dest.display()))?;
        Ok((size, hex(&hasher.finalize())))
    }

    /// Writes `bytes` at `path` only if nothing is there (create-only: never overwrites).
    /// `Ok(false)`: something already was.
    pub async fn put_new(&self, path: &Path, bytes: Vec<u8>) -> Result<bool> {
        let options = object_store::PutOptions::from(object_store::PutMode::Create);
        match self.store.put_opts(path, bytes.into(), options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("writing {}", self.uri_of(path))),
        }
    }

    /// Every object under `prefix`, recursively.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ListedObject>> {
        let objects: Vec<_> = self
            .store
            .list(Some(prefix))
            .try_collect()
            .await
            .with_context(|| format!("listing {}", self.uri_of(prefix)))?;
        Ok(objects
            .into_iter()
            .map(|meta| ListedObject {
                uri: self.uri_of(&meta.location),
                size: meta.size,
                last_modified: jiff::Timestamp::from_millisecond(meta.last_modified.timestamp_millis())
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                path: meta.location,
            })
            .collect())
    }

    /// An object's size and modification time now, or `None` if it is gone.
    pub async fn stat(&self, path: &Path) -> Result<Option<(u64, jiff::Timestamp)>> {
        match self.store.head(path).await {
            Ok(meta) => Ok(Some((
                meta.size,
                jiff::Timestamp::from_millisecond(meta.last_modified.timestamp_millis())
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            ))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading the metadata of {}", self.uri_of(path))),
        }
    }

    /// Deletes one object (idempotent: an absent object is not an error).
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {}", self.uri_of(path))),
        }
    }
}

/// Lower-case hex of a digest: how backups and gc plans write SHA-256.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What storage says about each URI.
pub async fn locate_all(storage: &StorageAccess, uris: &[String]) -> BTreeMap<String, PayloadFact> {
    let mut facts = BTreeMap::new();
    for uri in uris {
        facts.insert(uri.clone(), storage.locate(uri).await);
    }
    facts
}
