//! The nemesis harness's own view of the API server: every version of every ConfigMap in
//! a namespace, as the API server stored it, read by a watch that goes around the
//! JobManagers' proxies. The checker's fence rules (d) and deletion rules (b) rest on
//! this, not on what a JobManager believes it wrote.
//!
//! A watch delivers every change in order from a resourceVersion on. When the server
//! has compacted past it (410 Gone), versions in between are lost: the watcher relists
//! and records a gap, and the checker does not judge what a gap may hide.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};

use flink_ha_runtime::checkpoint_store::CHECKPOINT_PREFIX;
use flink_ha_runtime::cleanup::EXECUTION_PLAN_PREFIX;
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::history::monotonic_ns;
use flink_ha_runtime::payloads::Pointer;

/// A pointer key of a ConfigMap version: checkpoint or execution plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointerEntry {
    pub key: String,
    pub path: String,
    pub marked: bool,
}

/// One stored version of a ConfigMap (or its deletion), as the harness received it.
#[derive(Clone, Debug)]
pub struct CmVersion {
    /// `CLOCK_MONOTONIC` ns when the harness received it: the version was stored no later.
    pub received_ns: u64,
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub deleted: bool,
    /// The job fence (`flink-ha/leader-fence`): epoch and holder; `None` if none.
    pub fence: Option<(u64, String)>,
    /// Checkpoint and execution-plan pointers.
    pub pointers: Vec<PointerEntry>,
}

impl CmVersion {
    fn of(cm: &ConfigMap, deleted: bool) -> CmVersion {
        let mut pointers = Vec::new();
        for (key, value) in cm.data.iter().flatten() {
            if (key.starts_with(CHECKPOINT_PREFIX) || key.starts_with(EXECUTION_PLAN_PREFIX))
                && let Ok(pointer) = Pointer::parse(value)
            {
                pointers.push(PointerEntry {
                    key: key.clone(),
                    path: pointer.path,
                    marked: pointer.marked_for_deletion,
                });
            }
        }
        CmVersion {
            received_ns: monotonic_ns(),
            namespace: cm.metadata.namespace.clone().unwrap_or_default(),
            name: cm.metadata.name.clone().unwrap_or_default(),
            resource_version: cm.metadata.resource_version.clone().unwrap_or_default(),
            deleted,
            fence: Fence::read(cm)
                .ok()
                .flatten()
                .map(|fence| (fence.epoch(), fence.holder().to_string())),
            pointers,
        }
    }
}

/// What the watch saw so far.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    pub versions: Vec<CmVersion>,
    /// When a watch had to relist (`CLOCK_MONOTONIC` ns): versions before may be missing.
    pub gaps: Vec<u64>,
}

/// A running watch of one namespace's ConfigMaps; stops when dropped.
pub struct ConfigMapWatch {
    seen: Arc<Mutex<Watched>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConfigMapWatch {
    /// Lists the namespace's ConfigMaps, then watches every change from there.
    pub async fn start(client: kube::Client, namespace: &str) -> Result<ConfigMapWatch, kube::Error> {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let seen = Arc::new(Mutex::new(Watched::default()));
        let version = relist(&api, &seen).await?;
        let task = tokio::spawn(watch(api, seen.clone(), version));
        Ok(ConfigMapWatch { seen, task })
    }

    pub fn seen(&self) -> Watched {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for ConfigMapWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(seen: &Mutex<Watched>, version: CmVersion) {
    if let Ok(mut seen) = seen.lock() {
        seen.versions.push(version);
    }
}

/// Records every ConfigMap as a version; the list's resourceVersion.
async fn relist(api: &Api<ConfigMap>, seen: &Mutex<Watched>) -> Result<String, kube::Error> {
    let list = api.list(&ListParams::default()).await?;
    for cm in &list.items {
        record(seen, CmVersion::of(cm, false));
    }
    Ok(list.metadata.resource_version.unwrap_or_default())
}

async fn watch(api: Api<ConfigMap>, seen: Arc<Mutex<Watched>>, mut version: String) {
    let params = WatchParams::default().timeout(290);
    loop {
        let stream = match api.watch(&params, &version).await {
            Ok(stream) => stream,
            Err(_) => {
                // The API server paused or restarting: the same version again shortly.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        futures::pin_mut!(stream);
        loop {
            match stream.try_next().await {
                Ok(Some(WatchEvent::Added(cm) | WatchEvent::Modified(cm))) => {
                    version = cm.metadata.resource_version.clone().unwrap_or(version);
                    record(&seen, CmVersion::of(&cm, false));
                }
                Ok(Some(WatchEvent::Deleted(cm))) => {
                    version = cm.metadata.resource_version.clone().unwrap_or(version);
                    record(&seen, CmVersion::of(&cm, true));
                }
                Ok(Some(WatchEvent::Bookmark(bookmark))) => version = bookmark.metadata.resource_version,
                Ok(Some(WatchEvent::Error(status))) if status.code == 410 => {
                    if let Ok(mut seen) = seen.lock() {
                        seen.gaps.push(monotonic_ns());
                    }
                    loop {
                        match relist(&api, &seen).await {
                            Ok(listed) => break version = listed,
                            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    }
                    break;
                }
                // Another error, the server's timeout or a broken stream: watch again from
                // the last version received.
                Ok(Some(WatchEvent::Error(_)) | None) | Err(_) => break,
            }
        }
    }
}
