//! `flink-ha gc`: finds the HA state of clusters that are gone and deletes it — a dry run
//! unless `--yes`.
//!
//! What it will delete, per cluster id whose HA ConfigMaps outlived it (no JobManager
//! Deployment, no FlinkDeployment, no live lease, idle longer than `--older-than`):
//! its HA ConfigMaps (exact Flink names only, each with uid and resourceVersion
//! preconditions: nothing that changed since it looked), then — only once every ConfigMap
//! is gone — the payloads its pointers name, its jobs' `blob/job_<id>/` folders and
//! job-result-store entries, and its payload folder when the folder is the cluster's own
//! (named after the cluster id, seen with `-A` so no namespace hides a cluster with the
//! same id, no other cluster pointing into it, and the runtime's owner marker, if any,
//! naming it; `default` is shared by standalone clusters and is never emptied wholesale). With `-A` and storage access it also finds payload folders no HA
//! ConfigMap anywhere refers to.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use flink_ha_policy::flink_state::normalize_uri;
use flink_ha_policy::ha_state::{self, ClusterState, Existence, PayloadFact, human_ms};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Preconditions};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::inspect::{ClusterArgs, gather};
use crate::storage_access::{ListedObject, StorageAccess};

#[derive(Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub target: ClusterArgs,

    /// Only state idle for longer than this: since the lease expired or was released (or,
    /// without a lease, since the newest ConfigMap was created). Flink's duration syntax.
    #[arg(long, value_name = "DURATION", default_value = "1 h", value_parser = crate::parse_duration)]
    pub older_than: Duration,

    /// Delete. Without it, gc prints what it would delete and why, and changes nothing.
    #[arg(long)]
    pub yes: bool,

    /// Delete exactly what a saved dry run (`gc --format json > plan.json`) listed, after
    /// someone reviewed it, instead of planning again. ConfigMaps still go only if they
    /// are unchanged since that dry run looked (uid and resourceVersion preconditions).
    #[arg(long, value_name = "PLAN", conflicts_with_all = ["yes", "cluster_id", "older_than"])]
    pub apply: Option<std::path::PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = GcFormat::Text)]
    pub format: GcFormat,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GcFormat {
    Text,
    Json,
}

/// One thing gc deletes.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// A storage object.
    Object {
        uri: String,
        size: u64,
        /// Why it goes.
        why: String,
        #[serde(skip)]
        path: Option<Path>,
    },
}

/// What gc decided for one cluster id.
#[derive(Clone, Debug, Serialize, Deserialize)]
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

pub fn run(args: &GcArgs) -> Result<ExitCode> {
    crate::live::block_on(gc(args))
}

/// A dry run's JSON, as `--apply` reads it back.
#[derive(Deserialize)]
struct SavedPlans {
    dry_run: bool,
    plans: Vec<Plan>,
}

async fn gc(args: &GcArgs) -> Result<ExitCode> {
    if args.target.source.from.is_some() {
        bail!("gc deletes from a live cluster; --from is for `flink-ha inspect`");
    }
    if let Some(path) = &args.apply {
        return apply_saved(path, args).await;
    }
    let gathered = gather(&args.target.source, args.target.cluster_id.as_deref(), None).await?;
    let client = gathered.client.clone().context("gc needs a live cluster")?;
    let storage = args.target.storage.open()?;
    let mut plans = Vec::new();
    for cluster in &gathered.clusters {
        let mut plan = plan_cluster(cluster, gathered.now, args.older_than, &gathered.configmaps);
        if !plan.refused
            && let Some((storage, location)) = &storage
        {
            let folder = location.as_ref().map(|l| l.storage_cluster_id.as_str());
            let jrs = location.as_ref().map(|l| l.job_result_store_path.as_str());
            let scope = Scope {
                all_namespaces: args.target.source.all_namespaces,
                clusters: &gathered.clusters,
            };
            plan_storage(&mut plan, cluster, storage, folder, jrs, &scope).await?;
        } else if !plan.refused {
            plan.kept
                .push("payloads: no storage given (--config or --storage); only the ConfigMaps are removed".to_owned());
        }
        plans.push(plan);
    }
    if gathered.clusters.is_empty()
        && let Some(id) = &args.target.cluster_id
    {
        bail!(
            "no HA ConfigMaps of cluster id `{id}` in {}",
            gathered.scope_description
        );
    }
    let folder_plan = match (&storage, args.target.source.all_namespaces) {
        (Some((storage, _)), true) if args.target.cluster_id.is_none() => {
            orphaned_folders(storage, &gathered.clusters, gathered.now, args.older_than).await?
        }
        _ => None,
    };
    plans.extend(folder_plan);
    if args.yes {
        for plan in &mut plans {
            if !plan.refused {
                execute(plan, &client, storage.as_ref().map(|(s, _)| s)).await;
            }
        }
    }
    print_plans(&plans, args, args.yes);
    Ok(if plans.iter().any(|p| p.failed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether a cluster's state may go, and its ConfigMaps.
fn plan_cluster(
    cluster: &ClusterState,
    now: Timestamp,
    older_than: Duration,
    seen: &[crate::live::SeenConfigMap],
) -> Plan {
    let mut plan = Plan {
        namespace: cluster.namespace.clone(),
        cluster_id: cluster.cluster_id.clone(),
        reason: String::new(),
        refused: true,
        deletions: Vec::new(),
        kept: Vec::new(),
        outcome: Vec::new(),
        failed: false,
    };
    let older_than_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    if let Existence::Exists { workloads } = &cluster.existence {
        plan.reason = format!("refused: {} exists", workloads.join(" and "));
        return plan;
    }
    let idle_ms = match &cluster.leader {
        Some(leader) if leader.state.is_live() => {
            plan.reason = format!(
                "refused: its lease is live ({}; a JobManager may still run)",
                match &leader.state {
                    ha_state::LeaseState::Live { holder, expires_in_ms } =>
                        format!("held by {holder}, expires in {}", human_ms(*expires_in_ms)),
                    _ => String::new(),
                }
            );
            return plan;
        }
        Some(leader) => leader.state.idle_ms(),
        // No lease: judge by the newest ConfigMap's creation.
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
    plan.refused = false;
    plan.reason = format!(
        "orphaned: no JobManager Deployment or FlinkDeployment, no leader for {}",
        human_ms(idle_ms)
    );
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

/// The storage residue of an orphaned cluster.
/// What gc could see: whether every namespace, and the clusters found there.
struct Scope<'a> {
    all_namespaces: bool,
    clusters: &'a [ClusterState],
}

async fn plan_storage(
    plan: &mut Plan,
    cluster: &ClusterState,
    storage: &StorageAccess,
    configured_folder: Option<&str>,
    job_result_store: Option<&str>,
    scope: &Scope<'_>,
) -> Result<()> {
    let mut planned: BTreeSet<String> = BTreeSet::new();
    let mut folder_names: BTreeSet<String> = BTreeSet::new();
    // The payloads its pointers name, where they really are (not a rebased copy).
    let facts = crate::storage_access::locate_all(storage, &cluster.payload_uris()).await;
    for (uri, fact) in &facts {
        match fact {
            PayloadFact::Found { size, read_from } if normalize_uri(uri) == *read_from => {
                if let Some(name) = folder_name_of(read_from) {
                    folder_names.insert(name.to_owned());
                }
                if planned.insert(read_from.clone()) {
                    plan.deletions.push(Deletion::Object {
                        uri: read_from.clone(),
                        size: *size,
                        why: "named by a pointer of this cluster".to_owned(),
                        path: None,
                    });
                }
            }
            PayloadFact::Found { read_from, .. } => plan.kept.push(format!(
                "{uri}: found only as a copy at {read_from}, which gc does not delete"
            )),
            PayloadFact::Missing { .. } => {}
            PayloadFact::Foreign { storage } => plan.kept.push(format!("{uri}: outside {storage}")),
            PayloadFact::Unreachable { error } => bail!("storage did not answer for {uri}: {error}"),
        }
    }
    let folder_name = configured_folder
        .map(str::to_owned)
        .or_else(|| folder_names.into_iter().next());
    let Some(folder_name) = folder_name else {
        plan.kept.push(
            "payload folder: unknown (no payload found; give --config for high-availability.cluster-id)".to_owned(),
        );
        return Ok(());
    };
    let folder = storage.child(&[&folder_name]);
    // The folder is the cluster's own only if it is named after it, gc sees every
    // namespace, no other cluster (another namespace's with the same id included) points
    // into it or carries its name, and the runtime's owner marker, if there is one, names
    // this cluster.
    let shared_with: Vec<String> = scope
        .clusters
        .iter()
        .filter(|c| !(c.namespace == cluster.namespace && c.cluster_id == cluster.cluster_id))
        .filter(|c| {
            c.cluster_id == folder_name
                || c.payload_uris()
                    .iter()
                    .any(|u| folder_name_of(&normalize_uri(u)) == Some(folder_name.as_str()))
        })
        .map(|c| format!("{}/{}", c.namespace, c.cluster_id))
        .collect();
    let marker = folder_owner(storage, &folder).await;
    let this_owner = format!("{}/{}", cluster.namespace, cluster.cluster_id);
    let own_folder = folder_name == cluster.cluster_id
        && scope.all_namespaces
        && shared_with.is_empty()
        && marker.as_ref().is_none_or(|owner| *owner == this_owner);
    let job_ids: Vec<&str> = cluster.jobs.iter().map(|j| j.job_id.as_str()).collect();
    for object in storage.list(&folder).await? {
        if planned.contains(&object.uri) {
            continue;
        }
        let relative: Vec<String> = object
            .path
            .prefix_match(&folder)
            .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect())
            .unwrap_or_default();
        let in_job_blob = relative.first().map(String::as_str) == Some("blob")
            && relative
                .get(1)
                .is_some_and(|d| job_ids.iter().any(|j| d == &format!("job_{j}")));
        let why = if in_job_blob {
            "blob of one of its jobs".to_owned()
        } else if own_folder {
            format!("in its own payload folder {folder_name}/")
        } else {
            continue;
        };
        push_object(plan, &mut planned, object, why);
    }
    if !own_folder {
        let why = if folder_name != cluster.cluster_id {
            format!("the folder is not named after the cluster id (standalone clusters share `{folder_name}`)")
        } else if !shared_with.is_empty() {
            format!("{} use it too", shared_with.join(", "))
        } else if let Some(owner) = marker.filter(|owner| *owner != this_owner) {
            format!("its owner marker names {owner}")
        } else {
            "a cluster with this id in another namespace may share it; gc empties a whole folder only with -A"
                .to_owned()
        };
        plan.kept
            .push(format!("other files in {}: {why}", storage.uri_of(&folder)));
    }
    // Job-result-store entries of its jobs.
    let jrs = job_result_store
        .and_then(|path| storage.path_in_store(path))
        .unwrap_or_else(|| storage.child(&["job-result-store", &folder_name]));
    for object in storage.list(&jrs).await? {
        let name = object.path.filename().unwrap_or("").to_owned();
        if job_ids
            .iter()
            .any(|j| name == format!("{j}.json") || name == format!("{j}_DIRTY.json"))
            && !planned.contains(&object.uri)
        {
            push_object(
                plan,
                &mut planned,
                object,
                "job-result-store entry of one of its jobs".to_owned(),
            );
        }
    }
    Ok(())
}

/// The owner the runtime's marker in `folder` names (`<namespace>/<cluster-id>`), if the
/// folder has one; an unreadable marker names nobody we could match.
async fn folder_owner(storage: &StorageAccess, folder: &Path) -> Option<String> {
    let marker = folder.clone().join(flink_ha_runtime::payloads::OWNER_MARKER);
    let bytes = storage.read(&storage.uri_of(&marker)).await.ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    Some(value["owner"].as_str().unwrap_or("(unreadable)").to_owned())
}

fn push_object(plan: &mut Plan, planned: &mut BTreeSet<String>, object: ListedObject, why: String) {
    planned.insert(object.uri.clone());
    plan.deletions.push(Deletion::Object {
        uri: object.uri,
        size: object.size,
        why,
        path: Some(object.path),
    });
}

/// The name of the folder an object is in: `cluster-a` for
/// `s3://bucket/ha/cluster-a/completedCheckpoint0a1b`.
fn folder_name_of(uri: &str) -> Option<&str> {
    let (folder, _) = uri.rsplit_once('/')?;
    folder.rsplit('/').next().filter(|name| !name.is_empty())
}

/// Payload folders under the storageDir that no HA ConfigMap in any namespace refers to,
/// untouched for longer than `older_than` (only with `-A`: a cluster in another namespace
/// may own a folder).
async fn orphaned_folders(
    storage: &StorageAccess,
    clusters: &[ClusterState],
    now: Timestamp,
    older_than: Duration,
) -> Result<Option<Plan>> {
    let root = storage.child(&[]);
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
    let mut plan = Plan {
        namespace: "*".to_owned(),
        cluster_id: "(storage)".to_owned(),
        reason: format!(
            "payload folders of {} that no HA ConfigMap refers to",
            storage.storage_dir
        ),
        refused: false,
        deletions: Vec::new(),
        kept: Vec::new(),
        outcome: Vec::new(),
        failed: false,
    };
    let older_than_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let mut planned = BTreeSet::new();
    // Payload folders, and the job-result-store and application-result-store folders
    // Flink keeps per HA cluster id.
    let mut candidates = Vec::new();
    for folder in storage.folders(&root).await? {
        if folder == "job-result-store" || folder == "application-result-store" {
            for inner in storage.folders(&storage.child(&[&folder])).await? {
                candidates.push((
                    inner.clone(),
                    format!("{folder}/{inner}"),
                    storage.child(&[&folder, &inner]),
                ));
            }
        } else {
            candidates.push((folder.clone(), folder.clone(), storage.child(&[&folder])));
        }
    }
    for (cluster_folder, folder, path) in candidates {
        if referenced.contains(&cluster_folder) {
            continue;
        }
        if cluster_folder == "default" {
            plan.kept.push(format!(
                "{folder}/: the folder of every standalone cluster without high-availability.cluster-id, never deleted wholesale"
            ));
            continue;
        }
        let objects = storage.list(&path).await?;
        let newest = objects.iter().map(|o| o.last_modified).max();
        // The API server's clock counts whole seconds: a file written this second can look
        // a little in the future.
        let idle_ms = newest.map_or(i64::MAX, |t| {
            now.as_millisecond().saturating_sub(t.as_millisecond()).max(0)
        });
        if idle_ms < older_than_ms {
            plan.kept.push(format!("{folder}/: written {} ago", human_ms(idle_ms)));
            continue;
        }
        for object in objects {
            push_object(
                &mut plan,
                &mut planned,
                object,
                format!("in folder {folder}/, which no HA ConfigMap refers to"),
            );
        }
    }
    Ok((!plan.deletions.is_empty() || !plan.kept.is_empty()).then_some(plan))
}

async fn apply_saved(path: &std::path::Path, args: &GcArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let saved: SavedPlans = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the JSON of `flink-ha gc --format json`", path.display()))?;
    if !saved.dry_run {
        bail!(
            "{} records a run that already deleted; apply a dry run's plan",
            path.display()
        );
    }
    let client = crate::live::client().await?;
    let storage = args.target.storage.open()?;
    let needs_storage = saved
        .plans
        .iter()
        .any(|p| !p.refused && p.deletions.iter().any(|d| matches!(d, Deletion::Object { .. })));
    if needs_storage && storage.is_none() {
        bail!("the plan deletes storage objects: give the same --storage or --config as the dry run");
    }
    let mut plans = saved.plans;
    for plan in &mut plans {
        plan.outcome.clear();
        if !plan.refused {
            execute(plan, &client, storage.as_ref().map(|(s, _)| s)).await;
        }
    }
    print_plans(&plans, args, true);
    Ok(if plans.iter().any(|p| p.failed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Deletes a plan: ConfigMaps under their preconditions, then (only if all of them went)
/// the storage objects.
async fn execute(plan: &mut Plan, client: &kube::Client, storage: Option<&StorageAccess>) {
    let mut configmaps_gone = true;
    for deletion in &plan.deletions {
        let Deletion::Configmap {
            namespace,
            name,
            uid,
            resource_version,
            ..
        } = deletion
        else {
            continue;
        };
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: uid.clone(),
                resource_version: resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => plan.outcome.push(format!("deleted configmap {namespace}/{name}")),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                plan.outcome
                    .push(format!("configmap {namespace}/{name} was already gone"));
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                configmaps_gone = false;
                plan.failed = true;
                plan.outcome.push(format!(
                    "NOT deleted: configmap {namespace}/{name} changed since gc looked ({}); a JobManager may be back",
                    status.message
                ));
                break;
            }
            Err(e) => {
                configmaps_gone = false;
                plan.failed = true;
                plan.outcome
                    .push(format!("NOT deleted: configmap {namespace}/{name}: {e}"));
                break;
            }
        }
    }
    if !configmaps_gone {
        plan.outcome
            .push("storage left as it was: not every ConfigMap went".to_owned());
        return;
    }
    let Some(storage) = storage else { return };
    for deletion in &plan.deletions {
        let Deletion::Object { uri, path, .. } = deletion else {
            continue;
        };
        // A saved plan carries URIs only; one outside this store is not deleted through it.
        let Some(path) = path.clone().or_else(|| storage.path_in_store(uri)) else {
            plan.failed = true;
            plan.outcome
                .push(format!("NOT deleted: {uri} is not in {}", storage.storage_dir));
            continue;
        };
        match storage.delete(&path).await {
            Ok(()) => plan.outcome.push(format!("deleted {uri}")),
            Err(e) => {
                plan.failed = true;
                plan.outcome.push(format!("NOT deleted: {e:#}"));
            }
        }
    }
}

fn print_plans(plans: &[Plan], args: &GcArgs, deleting: bool) {
    if let GcFormat::Json = args.format {
        let value = serde_json::json!({ "dry_run": !deleting, "plans": plans });
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        return;
    }
    if plans.is_empty() {
        println!("nothing to collect: no Flink HA ConfigMaps found");
        return;
    }
    let verb = if deleting { "delete" } else { "would delete" };
    let mut total = (0usize, 0u64);
    for plan in plans {
        println!(
            "cluster {} (namespace {}): {}",
            plan.cluster_id, plan.namespace, plan.reason
        );
        if plan.refused {
            continue;
        }
        // After a run, what happened replaces what was planned.
        let planned = if plan.outcome.is_empty() {
            &plan.deletions[..]
        } else {
            &[]
        };
        for deletion in planned {
            match deletion {
                Deletion::Configmap {
                    namespace,
                    name,
                    uid,
                    resource_version,
                    size_bytes,
                } => {
                    total.0 += 1;
                    println!(
                        "  {verb} configmap {namespace}/{name} ({size_bytes} bytes; if still uid {}, resourceVersion {})",
                        uid.as_deref().unwrap_or("?"),
                        resource_version.as_deref().unwrap_or("?")
                    );
                }
                Deletion::Object { uri, size, why, .. } => {
                    total.0 += 1;
                    total.1 += size;
                    println!("  {verb} {uri} ({size} bytes): {why}");
                }
            }
        }
        for kept in &plan.kept {
            println!("  keep {kept}");
        }
        for outcome in &plan.outcome {
            println!("  {outcome}");
        }
    }
    if !deleting {
        let candidates = plans.iter().filter(|p| !p.refused && !p.deletions.is_empty()).count();
        if candidates > 0 {
            println!(
                "dry run: {} object(s), {} bytes of payloads; run again with --yes to delete (or save --format json and --apply it)",
                total.0, total.1
            );
        }
    }
}
