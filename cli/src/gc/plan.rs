//! gc's decisions: whether a cluster is dead, whether the storage root is a storageDir, and
//! which objects are provably the dead cluster's own and unreferenced. Everything else is
//! kept, with the reason in the plan.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, bail};
use flink_ha_policy::flink_state::normalize_uri;
use flink_ha_policy::ha_layout::HaConfigMapName;
use flink_ha_policy::ha_state::{self, ClusterState, Existence, human_ms};
use flink_ha_policy::storage_layout::{
    self, APPLICATION_RESULT_STORE_DIR, DEFAULT_FOLDER, JOB_RESULT_STORE_DIR, StorageObject,
};
use jiff::Timestamp;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::live::SeenConfigMap;
use crate::storage_access::{ListedObject, StorageAccess};

/// How gc was asked to judge.
pub struct Settings {
    pub older_than: Duration,
    pub assume_dead: bool,
    /// gc read every namespace (`-A`): only then can it know nobody else names a file.
    pub all_namespaces: bool,
    /// Look for folders no ConfigMap refers to (`-A` without a cluster id).
    pub sweep_folders: bool,
    /// The API server's clock when gc looked: every age is judged by it.
    pub now: Timestamp,
}

/// What the cluster's Flink configuration says about its storage (`--config`).
pub struct Configured {
    /// `high-availability.cluster-id`: the cluster folder.
    pub folder: String,
    /// `job-result-store.storage-path`.
    pub job_result_store: String,
}

/// One thing gc deletes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Deletion {
    /// An HA ConfigMap, with the preconditions it is deleted under.
    Configmap {
        namespace: String,
        name: String,
        uid: Option<String>,
        resource_version: Option<String>,
        size_bytes: usize,
    },
    /// A storage object, deleted only while it still has the size and modification time
    /// gc saw.
    Object {
        uri: String,
        size: u64,
        /// Storage's modification time when gc listed it (RFC 3339).
        #[serde(default)]
        last_modified: Option<String>,
        /// Why it goes.
        why: String,
        #[serde(skip)]
        path: Option<Path>,
    },
}

/// What gc decided for one cluster id (or, as `(storage)`, for folders no ConfigMap names).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Plan {
    pub namespace: String,
    pub cluster_id: String,
    /// Why it is orphaned, or why it is refused.
    pub reason: String,
    pub refused: bool,
    pub deletions: Vec<Deletion>,
    /// What was left on purpose, and why.
    pub kept: Vec<String>,
    /// After --yes: what happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcome: Vec<String>,
    #[serde(skip)]
    pub failed: bool,
}

impl Plan {
    fn new(namespace: &str, cluster_id: &str) -> Plan {
        Plan {
            namespace: namespace.to_owned(),
            cluster_id: cluster_id.to_owned(),
            reason: String::new(),
            refused: true,
            deletions: Vec::new(),
            kept: Vec::new(),
            outcome: Vec::new(),
            failed: false,
        }
    }

    fn delete_object(&mut self, object: &ListedObject, why: String) {
        let already = self
            .deletions
            .iter()
            .any(|d| matches!(d, Deletion::Object { uri, .. } if *uri == object.uri));
        if !already {
            self.deletions.push(Deletion::Object {
                uri: object.uri.clone(),
                size: object.size,
                last_modified: Some(object.last_modified.to_string()),
                why,
                path: Some(object.path.clone()),
            });
        }
    }
}

/// Every object under the storage root, read once, each placed in Flink's HA layout.
pub struct Inventory {
    pub root_uri: String,
    objects: Vec<(ListedObject, Vec<String>)>,
}

impl Inventory {
    /// Lists the root, and refuses one that is not a storageDir: no path below the
    /// bucket, or anything in it that is not Flink HA data.
    pub async fn read(storage: &StorageAccess) -> Result<Inventory> {
        let root = storage.child(&[]);
        let root_uri = storage.uri_of(&root);
        if root.as_ref().is_empty() {
            bail!(
                "refusing storage root {}: it has no path below the bucket or file system root, so it is not one cluster's storageDir; give high-availability.storageDir itself",
                storage.storage_dir
            );
        }
        let mut objects = Vec::new();
        let mut foreign: BTreeMap<&'static str, (usize, String)> = BTreeMap::new();
        for object in storage.list(&root).await? {
            let relative = storage.relative(&object.path).unwrap_or_default();
            let parts: Vec<&str> = relative.iter().map(String::as_str).collect();
            if let StorageObject::Foreign { looks_like } = storage_layout::classify(&parts) {
                let entry = foreign.entry(looks_like).or_insert((0, relative.join("/")));
                entry.0 += 1;
                continue;
            }
            objects.push((object, relative));
        }
        if !foreign.is_empty() {
            let found: Vec<String> = foreign
                .iter()
                .map(|(what, (count, example))| format!("{count} × {what}, e.g. {example}"))
                .collect();
            bail!(
                "refusing storage root {root_uri}: it holds data that is not Flink HA state ({}). gc deletes nothing in a root it cannot account for: give high-availability.storageDir itself, or leave out --storage to remove only ConfigMaps",
                found.join("; ")
            );
        }
        Ok(Inventory { root_uri, objects })
    }

    /// How many objects, and their bytes.
    pub fn totals(&self) -> (usize, u64) {
        (self.objects.len(), self.objects.iter().map(|(o, _)| o.size).sum())
    }

    fn find(&self, uri: &str) -> Option<&ListedObject> {
        self.objects.iter().map(|(o, _)| o).find(|o| o.uri == uri)
    }

    /// The objects whose path starts with `prefix` (segments under the root).
    fn under<'a>(&'a self, prefix: &'a [&'a str]) -> impl Iterator<Item = (&'a ListedObject, StorageObject<'a>)> + 'a {
        self.objects.iter().filter_map(move |(object, relative)| {
            let parts: Vec<&str> = relative.iter().map(String::as_str).collect();
            (parts.len() > prefix.len() && parts[..prefix.len()] == *prefix).then(|| (object, classify_owned(relative)))
        })
    }

    /// The top-level folders (cluster folders and result stores).
    fn folders(&self) -> BTreeSet<&str> {
        self.objects
            .iter()
            .filter_map(|(_, r)| r.first().map(String::as_str))
            .collect()
    }
}

/// [`storage_layout::classify`] over owned segments (the result borrows the strings, not
/// the slice of references).
fn classify_owned(relative: &[String]) -> StorageObject<'_> {
    let parts: Vec<&str> = relative.iter().map(String::as_str).collect();
    storage_layout::classify(&parts)
}

/// Whether the cluster is dead long enough for its state to go, and its ConfigMaps.
pub fn liveness(cluster: &ClusterState, settings: &Settings, seen: &[SeenConfigMap]) -> Plan {
    let now = settings.now;
    let mut plan = Plan::new(&cluster.namespace, &cluster.cluster_id);
    let older_than_ms = i64::try_from(settings.older_than.as_millis()).unwrap_or(i64::MAX);
    match &cluster.existence {
        Existence::Exists { workloads } => {
            plan.reason = format!("refused: {} exists", workloads.join(" and "));
            return plan;
        }
        Existence::Unknown => {
            plan.reason = "refused: whether it still runs is unknown (no workloads looked up)".to_owned();
            return plan;
        }
        Existence::Gone => {}
    }
    let idle_ms = match &cluster.leader {
        Some(leader) => match &leader.state {
            ha_state::LeaseState::Live { holder, expires_in_ms } => {
                plan.reason = format!(
                    "refused: its lease is live (held by {holder}, expires in {}; a JobManager may still run)",
                    human_ms(*expires_in_ms)
                );
                return plan;
            }
            state => state.idle_ms(),
        },
        None if !settings.assume_dead => {
            plan.reason = format!(
                "refused: unknown, not dead: no readable lease ({}), so a JobManager may still run; --assume-dead treats it as gone",
                cluster.leader_problem.as_deref().unwrap_or("no leader record")
            );
            return plan;
        }
        // --assume-dead: judge by the newest ConfigMap's creation.
        None => seen
            .iter()
            .filter(|s| s.record.namespace == cluster.namespace)
            .filter(|s| cluster.configmaps.iter().any(|c| c.name == s.record.name))
            .filter_map(|s| s.record.creation_timestamp)
            .max()
            .map_or(0, |t| now.as_millisecond().saturating_sub(t.as_millisecond())),
    };
    if idle_ms < older_than_ms {
        plan.reason = format!(
            "refused: idle for {}, not longer than --older-than {}",
            human_ms(idle_ms),
            human_ms(older_than_ms)
        );
        return plan;
    }
    // Every ConfigMap goes under uid and resourceVersion preconditions, and only by an
    // exact Flink HA name.
    if let Some(cm) = cluster
        .configmaps
        .iter()
        .find(|c| c.uid.is_none() || c.resource_version.is_none() || HaConfigMapName::parse(&c.name).is_none())
    {
        plan.reason = format!(
            "refused: ConfigMap {} has no uid/resourceVersion to delete it under, or no Flink HA name",
            cm.name
        );
        return plan;
    }
    plan.refused = false;
    plan.reason = format!("orphaned: no workload of the id, no leader for {}", human_ms(idle_ms));
    // Job ConfigMaps first, the cluster ConfigMap (the lock) last.
    let mut configmaps = cluster.configmaps.clone();
    configmaps.sort_by_key(|c| c.role == "cluster");
    for cm in configmaps {
        plan.deletions.push(Deletion::Configmap {
            namespace: cluster.namespace.clone(),
            name: cm.name,
            uid: cm.uid,
            resource_version: cm.resource_version,
            size_bytes: cm.size_bytes,
        });
    }
    plan
}

/// What the other clusters gc sees name: payload URIs and job ids, and the folders their
/// pointers point into.
struct OthersNames {
    uris: BTreeMap<String, String>,
    jobs: BTreeMap<String, String>,
    folders: BTreeMap<String, String>,
    ids: BTreeMap<String, String>,
    unreadable: Vec<String>,
}

impl OthersNames {
    fn of(cluster: &ClusterState, all: &[ClusterState]) -> OthersNames {
        let mut names = OthersNames {
            uris: BTreeMap::new(),
            jobs: BTreeMap::new(),
            folders: BTreeMap::new(),
            ids: BTreeMap::new(),
            unreadable: Vec::new(),
        };
        for other in all
            .iter()
            .filter(|c| !(c.namespace == cluster.namespace && c.cluster_id == cluster.cluster_id))
        {
            let who = format!("{}/{}", other.namespace, other.cluster_id);
            names.ids.insert(other.cluster_id.clone(), who.clone());
            for uri in other.payload_uris() {
                let uri = normalize_uri(&uri);
                if let Some(folder) = folder_name_of(&uri) {
                    names.folders.insert(folder.to_owned(), who.clone());
                }
                names.uris.insert(uri, who.clone());
            }
            for job in &other.jobs {
                names.jobs.insert(job.job_id.clone(), who.clone());
            }
            names
                .unreadable
                .extend(other.unreadable_pointers().into_iter().map(|p| format!("{who}: {p}")));
        }
        names
    }
}

/// The storage objects of a dead cluster that are provably its own and unreferenced.
pub async fn storage(
    plan: &mut Plan,
    cluster: &ClusterState,
    storage: &StorageAccess,
    inventory: &Inventory,
    configured: Option<&Configured>,
    all: &[ClusterState],
    settings: &Settings,
) -> Result<()> {
    if !settings.all_namespaces {
        plan.kept.push(
            "payloads: gc read one namespace, and a cluster in another may name the same files; run with -A to delete them"
                .to_owned(),
        );
        return Ok(());
    }
    let others = OthersNames::of(cluster, all);
    if !others.unreadable.is_empty() {
        plan.kept.push(format!(
            "payloads: what these pointers name is unknown, so no file can be proven unreferenced: {}",
            others.unreadable.join("; ")
        ));
        return Ok(());
    }
    let own_jobs: BTreeSet<&str> = cluster.jobs.iter().map(|j| j.job_id.as_str()).collect();
    // Its folder: the one its configuration names (`--config`, with a cluster id), else the
    // one named after it, as native Kubernetes Flink lays it out. Nothing outside it goes,
    // whatever a pointer says: a pointer can be wrong, or forged.
    let folder = configured.map_or(cluster.cluster_id.as_str(), |c| c.folder.as_str());
    for uri in cluster.payload_uris() {
        let uri = normalize_uri(&uri);
        match inventory.find(&uri) {
            Some(object) if folder_name_of(&uri) == Some(folder) => match others.uris.get(&uri) {
                Some(who) => plan.kept.push(format!("{uri}: {who} names it too")),
                None => plan.delete_object(object, "named by a pointer of this cluster".to_owned()),
            },
            Some(_) => plan.kept.push(format!(
                "{uri}: named by its pointer, but outside its folder {folder}/ (give --config with the cluster id if its high-availability.cluster-id differs)"
            )),
            None if storage.path_in_store(&uri).is_some_and(|p| storage.relative(&p).is_some()) => {}
            None => plan.kept.push(format!("{uri}: outside the storage root {}", inventory.root_uri)),
        }
    }
    own_folder_objects(plan, cluster, storage, inventory, folder, &own_jobs, &others, settings).await;
    // Its jobs' job-result entries.
    let jrs_prefix: Vec<String> = configured
        .and_then(|c| storage.path_in_store(&c.job_result_store))
        .and_then(|p| storage.relative(&p))
        .unwrap_or_else(|| vec![JOB_RESULT_STORE_DIR.to_owned(), folder.to_owned()]);
    let prefix: Vec<&str> = jrs_prefix.iter().map(String::as_str).collect();
    for (object, what) in inventory.under(&prefix) {
        // The runtime's entries are in a folder per cluster: only the dead cluster's own.
        if let StorageObject::ResultEntry {
            job_id: Some(job),
            cluster: owner,
            ..
        } = what
            && own_jobs.contains(job)
            && owner.is_none_or(|(ns, id)| ns == cluster.namespace && id == cluster.cluster_id)
        {
            match others.jobs.get(job) {
                Some(who) => plan.kept.push(format!("{}: job {job} is {who}'s too", object.uri)),
                None => plan.delete_object(object, "job-result-store entry of one of its jobs".to_owned()),
            }
        }
    }
    Ok(())
}

/// In the folder its payloads are in: its jobs' blobs; and, when the folder is provably
/// its own, the other Flink HA files there that are older than `--older-than`.
#[allow(clippy::too_many_arguments)]
async fn own_folder_objects(
    plan: &mut Plan,
    cluster: &ClusterState,
    storage: &StorageAccess,
    inventory: &Inventory,
    folder: &str,
    own_jobs: &BTreeSet<&str>,
    others: &OthersNames,
    settings: &Settings,
) {
    let this_owner = format!("{}/{}", cluster.namespace, cluster.cluster_id);
    let marker = folder_owner(storage, folder).await;
    let not_own = if folder == DEFAULT_FOLDER {
        Some(format!(
            "`{DEFAULT_FOLDER}` is the folder every standalone cluster without high-availability.cluster-id shares"
        ))
    } else if folder != cluster.cluster_id {
        Some(format!(
            "the folder is not named after the cluster id `{}`",
            cluster.cluster_id
        ))
    } else if let Some(who) = others.ids.get(folder).or_else(|| others.folders.get(folder)) {
        Some(format!("{who} uses it too"))
    } else {
        marker
            .as_ref()
            .filter(|owner| **owner != this_owner)
            .map(|owner| format!("its owner marker names {owner}"))
    };
    let older_than_ms = i64::try_from(settings.older_than.as_millis()).unwrap_or(i64::MAX);
    let prefix = [folder];
    let mut marker_object = None;
    for (object, what) in inventory.under(&prefix) {
        match what {
            StorageObject::Blob { job_id: Some(job), .. } if own_jobs.contains(job) => match others.jobs.get(job) {
                Some(who) => plan.kept.push(format!("{}: job {job} is {who}'s too", object.uri)),
                None => plan.delete_object(object, "blob of one of its jobs".to_owned()),
            },
            StorageObject::OwnerMarker { .. } => marker_object = Some(object),
            _ if not_own.is_none() => {
                let age_ms = settings
                    .now
                    .as_millisecond()
                    .saturating_sub(object.last_modified.as_millisecond());
                if let Some(who) = others.uris.get(&object.uri) {
                    plan.kept.push(format!("{}: {who} names it", object.uri));
                } else if age_ms < older_than_ms {
                    plan.kept
                        .push(format!("{}: written {} ago", object.uri, human_ms(age_ms)));
                } else {
                    plan.delete_object(object, format!("a Flink HA file in its own folder {folder}/"));
                }
            }
            _ => {}
        }
    }
    match not_own {
        Some(why) => plan.kept.push(format!(
            "other files in {}: {why}",
            storage.uri_of(&storage.child(&[folder]))
        )),
        // The marker goes last, after everything it vouched for.
        None => {
            if let Some(object) = marker_object.filter(|_| marker.as_deref() == Some(this_owner.as_str())) {
                plan.delete_object(object, "its owner marker, last".to_owned());
            }
        }
    }
}

/// The owner the runtime's marker in `folder` names (`<namespace>/<cluster-id>`), if the
/// folder has one; an unreadable marker names nobody we could match.
async fn folder_owner(storage: &StorageAccess, folder: &str) -> Option<String> {
    let marker = storage.child(&[folder, storage_layout::OWNER_MARKER]);
    let bytes = storage.read(&storage.uri_of(&marker)).await.ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    Some(value["owner"].as_str().unwrap_or("(unreadable)").to_owned())
}

/// The name of the folder an object is in: `cluster-a` for
/// `s3://bucket/ha/cluster-a/completedCheckpoint0a1b`.
fn folder_name_of(uri: &str) -> Option<&str> {
    let (folder, _) = uri.rsplit_once('/')?;
    folder.rsplit('/').next().filter(|name| !name.is_empty())
}

/// Folders that no HA ConfigMap in any namespace refers to. One goes only when the
/// runtime's owner marker names a cluster with no ConfigMaps and no workload left, and
/// nothing in it was written within `--older-than`; every other one is kept, with its
/// size, for a person to decide.
pub async fn orphaned_folders(
    storage: &StorageAccess,
    inventory: &Inventory,
    clusters: &[ClusterState],
    workloads: &BTreeMap<(String, String), Vec<String>>,
    settings: &Settings,
) -> Option<Plan> {
    let now = settings.now;
    let mut plan = Plan::new("*", "(storage)");
    plan.refused = false;
    plan.reason = format!("folders of {} that no HA ConfigMap refers to", inventory.root_uri);
    let referenced: BTreeSet<String> = clusters
        .iter()
        .flat_map(|c| {
            let mut names = vec![c.cluster_id.clone()];
            names.extend(
                c.payload_uris()
                    .iter()
                    .filter_map(|u| folder_name_of(&normalize_uri(u)).map(str::to_owned)),
            );
            names
        })
        .collect();
    let older_than_ms = i64::try_from(settings.older_than.as_millis()).unwrap_or(i64::MAX);
    for folder in inventory.folders() {
        if folder == JOB_RESULT_STORE_DIR || folder == APPLICATION_RESULT_STORE_DIR || referenced.contains(folder) {
            continue;
        }
        let prefix = [folder];
        let objects: Vec<&ListedObject> = inventory.under(&prefix).map(|(o, _)| o).collect();
        let (count, bytes) = (objects.len(), objects.iter().map(|o| o.size).sum::<u64>());
        let size = format!("{count} file(s), {bytes} bytes");
        if folder == DEFAULT_FOLDER {
            plan.kept.push(format!(
                "{folder}/ ({size}): the folder every standalone cluster without high-availability.cluster-id shares"
            ));
            continue;
        }
        let Some(owner) = folder_owner(storage, folder).await else {
            plan.kept.push(format!(
                "{folder}/ ({size}): no HA ConfigMap gc can see refers to it, but nothing proves whose it is (no owner marker; another Kubernetes cluster may use it); delete it by hand if it is yours"
            ));
            continue;
        };
        let Some((namespace, cluster_id)) = owner.split_once('/') else {
            plan.kept
                .push(format!("{folder}/ ({size}): its owner marker is unreadable"));
            continue;
        };
        if let Some(found) = workloads.get(&(namespace.to_owned(), cluster_id.to_owned())) {
            plan.kept.push(format!(
                "{folder}/ ({size}): its owner {owner} still runs ({})",
                found.join(", ")
            ));
            continue;
        }
        let newest = objects.iter().map(|o| o.last_modified).max();
        let idle_ms = newest.map_or(i64::MAX, |t| {
            now.as_millisecond().saturating_sub(t.as_millisecond()).max(0)
        });
        if idle_ms < older_than_ms {
            plan.kept
                .push(format!("{folder}/ ({size}): written {} ago", human_ms(idle_ms)));
            continue;
        }
        let why =
            format!("in folder {folder}/, whose owner marker names {owner}, a cluster with no HA ConfigMaps left");
        plan.delete_whole_folder(inventory, folder, &why, "the result store of that folder");
    }
    (!plan.deletions.is_empty() || !plan.kept.is_empty()).then_some(plan)
}

/// A folder an operator named (`--folder`): all of its files and its result-store entries,
/// if no HA ConfigMap in any namespace refers to it and no live owner marker claims it.
/// The plan carries the count and size the operator must confirm.
pub async fn named_folder(
    storage: &StorageAccess,
    inventory: &Inventory,
    folder: &str,
    clusters: &[ClusterState],
    workloads: &BTreeMap<(String, String), Vec<String>>,
) -> Result<Plan> {
    if folder.is_empty()
        || folder.contains('/')
        || folder == DEFAULT_FOLDER
        || folder == JOB_RESULT_STORE_DIR
        || folder == APPLICATION_RESULT_STORE_DIR
    {
        bail!(
            "--folder {folder:?}: name one cluster folder under the storageDir (not `default`, not a result store, no `/`)"
        );
    }
    let users: Vec<String> = clusters
        .iter()
        .filter(|c| {
            c.cluster_id == folder
                || c.payload_uris()
                    .iter()
                    .any(|u| folder_name_of(&normalize_uri(u)) == Some(folder))
        })
        .map(|c| format!("{}/{}", c.namespace, c.cluster_id))
        .collect();
    if !users.is_empty() {
        bail!(
            "--folder {folder}: HA ConfigMaps of {} refer to it; it is not an orphan",
            users.join(", ")
        );
    }
    if let Some(owner) = folder_owner(storage, folder).await
        && let Some((namespace, id)) = owner.split_once('/')
        && let Some(found) = workloads.get(&(namespace.to_owned(), id.to_owned()))
    {
        bail!(
            "--folder {folder}: its owner marker names {owner}, which still runs ({})",
            found.join(", ")
        );
    }
    let mut plan = Plan::new("*", &format!("(folder {folder})"));
    plan.refused = false;
    plan.delete_whole_folder(
        inventory,
        folder,
        &format!("in folder {folder}/, named by --folder"),
        "named by --folder",
    );
    let (count, bytes) = plan.object_totals();
    plan.reason = format!("named by --folder: {count} file(s), {bytes} bytes, no HA ConfigMap refers to it");
    Ok(plan)
}

impl Plan {
    /// Every file of a cluster folder (`why`) and of its result-store folders (`in
    /// <store>/<folder>/, <store_why>`), its owner marker last, after everything it vouched for.
    fn delete_whole_folder(&mut self, inventory: &Inventory, folder: &str, why: &str, store_why: &str) {
        let mut marker = None;
        let prefix = [folder];
        for (object, what) in inventory.under(&prefix) {
            match what {
                StorageObject::OwnerMarker { .. } => marker = Some(object),
                _ => self.delete_object(object, why.to_owned()),
            }
        }
        for store in [JOB_RESULT_STORE_DIR, APPLICATION_RESULT_STORE_DIR] {
            let prefix = [store, folder];
            for (object, _) in inventory.under(&prefix) {
                self.delete_object(object, format!("in {store}/{folder}/, {store_why}"));
            }
        }
        if let Some(object) = marker {
            self.delete_object(object, "its owner marker, last".to_owned());
        }
    }

    /// How many storage objects the plan deletes, and their bytes.
    pub fn object_totals(&self) -> (usize, u64) {
        self.deletions.iter().fold((0, 0), |(n, b), d| match d {
            Deletion::Object { size, .. } => (n + 1, b + size),
            Deletion::Configmap { .. } => (n, b),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_come_from_the_parent_segment() {
        assert_eq!(folder_name_of("s3://b/ha/a/completedCheckpoint0a"), Some("a"));
        assert_eq!(folder_name_of("file:///x"), None);
    }

    #[test]
    fn classify_owned_borrows_the_segments_it_was_given() {
        let relative: Vec<String> = ["job-result-store", "a", "25fc957960a1789dd1ef3466290fa995_DIRTY.json"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            classify_owned(&relative),
            StorageObject::ResultEntry {
                store: "job-result-store",
                folder: "a",
                name: "25fc957960a1789dd1ef3466290fa995_DIRTY.json",
                job_id: Some("25fc957960a1789dd1ef3466290fa995"),
                cluster: None,
            }
        );
    }
}
