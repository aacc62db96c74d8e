//! Payloads in `<storageDir>/<cluster-id>/` through `object_store`: written create-only
//! under fresh unique names (never overwritten), read back, deleted idempotently.
//!
//! ConfigMaps hold only pointers to these files ([`Pointer`]), as in Flink. The pointer
//! format is ours and small: `{"path":"<object path>"}`, plus `"markedForDeletion":true`
//! during a two-phase removal (Flink's "marked for deletion" flag).

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};

/// Where a ConfigMap entry's payload is, and whether it is being removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointer {
    pub path: String,
    pub marked_for_deletion: bool,
}

impl Pointer {
    pub fn to_json(&self) -> String {
        if self.marked_for_deletion {
            serde_json::json!({ "path": self.path, "markedForDeletion": true }).to_string()
        } else {
            serde_json::json!({ "path": self.path }).to_string()
        }
    }

    /// Reads a pointer; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("is not a pointer (not JSON: {e})"))?;
        let path = value["path"]
            .as_str()
            .filter(|p| !p.is_empty())
            .ok_or("is not a pointer (no `path`)")?;
        Ok(Pointer {
            path: path.to_string(),
            marked_for_deletion: value["markedForDeletion"].as_bool().unwrap_or(false),
        })
    }
}

/// The payload folder of one cluster.
#[derive(Clone)]
pub struct PayloadStore {
    store: Arc<dyn ObjectStore>,
    root: Path,
    description: String,
}

impl PayloadStore {
    /// `<storage_dir>/<storage_cluster_id>/`. Only schemes whose `object_store` backend is
    /// compiled in are accepted (file:// always).
    pub fn open(storage_dir: &str, storage_cluster_id: &str) -> Result<PayloadStore> {
        let url = url::Url::parse(storage_dir)
            .map_err(|e| Error::Config(format!("storageDir `{storage_dir}` is not a URI: {e}")))?;
        let (store, base) = object_store::parse_url(&url).map_err(|e| {
            Error::Config(format!(
                "storageDir `{storage_dir}`: {e} (this build reads file:// only unless built with the s3, gcs or azure feature)"
            ))
        })?;
        let root = base.clone().join(storage_cluster_id);
        Ok(PayloadStore {
            store: Arc::from(store),
            description: format!("{}/{storage_cluster_id}", storage_dir.trim_end_matches('/')),
            root,
        })
    }

    /// Where the payloads go, for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Writes `bytes` under a fresh name `<kind><24 hex>`, never over an existing object.
    pub async fn put_new(&self, kind: &str, bytes: Bytes) -> Result<Path> {
        for _ in 0..3 {
            let name = format!("{kind}{:012x}{:012x}", fastrand::u64(..1 << 48), fastrand::u64(..1 << 48));
            let path = self.root.clone().join(name);
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self.store.put_opts(&path, PutPayload::from(bytes.clone()), options).await {
                Ok(_) => return Ok(path),
                // A name taken by chance: draw another.
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(error) => return Err(Error::Storage(error.to_string())),
            }
        }
        Err(Error::Storage(format!("no free name for a {kind} payload in {}", self.description)))
    }

    pub async fn get(&self, path: &str) -> Result<Bytes> {
        let path = Path::from(path);
        let got = self.store.get(&path).await.map_err(|e| Error::Storage(e.to_string()))?;
        got.bytes().await.map_err(|e| Error::Storage(e.to_string()))
    }

    /// Deletes every payload of the cluster (its cleanup on a normal shutdown).
    pub async fn delete_all(&self) -> Result<()> {
        use futures::TryStreamExt;
        let paths: Vec<Path> = self
            .store
            .list(Some(&self.root))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| Error::Storage(e.to_string()))?;
        for path in paths {
            self.delete(path.as_ref()).await?;
        }
        Ok(())
    }

    /// Deletes a payload; one that is already gone is fine (removal is idempotent).
    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.store.delete(&Path::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(Error::Storage(error.to_string())),
        }
    }
}
