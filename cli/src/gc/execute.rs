//! gc's deletions, each under a precondition: ConfigMaps by uid and resourceVersion, then
//! (only once every ConfigMap of the cluster is gone) storage objects while they still
//! have the size and modification time gc saw. And `--apply` of a reviewed dry run, which
//! checks the plan before it deletes anything.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use flink_ha_policy::ha_layout::HaConfigMapName;
use flink_ha_policy::storage_layout;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Preconditions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::plan::{Deletion, Plan};
use super::{GcArgs, report};
use crate::backup;
use crate::live::SeenConfigMap;
use crate::storage_access::StorageAccess;

/// Where a plan was made: `--apply` runs it only against the same API server and root.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanContext {
    /// The API server's URL from the kubeconfig.
    pub api_server: String,
    /// The kubeconfig's current context, if it names one.
    #[serde(default)]
    pub kube_context: Option<String>,
    /// The storage root's URI, if storage was given.
    #[serde(default)]
    pub storage_root: Option<String>,
}

impl PlanContext {
    /// The context of this run.
    pub async fn current(storage: Option<&StorageAccess>) -> PlanContext {
        let api_server = crate::live::api_server_url().await;
        let kube_context = kube::config::Kubeconfig::read().ok().and_then(|k| k.current_context);
        PlanContext {
            api_server,
            kube_context,
            storage_root: storage.map(|s| s.uri_of(&s.child(&[]))),
        }
    }
}

/// The digest a dry run prints beside its plans, over the context and the plans: `--apply`
/// recomputes it, so an edited plan is refused.
pub fn digest(context: &PlanContext, plans: &[Plan]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(context).unwrap_or_default());
    hasher.update(b"\n");
    hasher.update(serde_json::to_vec(plans).unwrap_or_default());
    crate::storage_access::hex(&hasher.finalize())
}

/// A dry run's JSON, as `--apply` reads it back.
#[derive(Deserialize)]
struct SavedPlans {
    dry_run: bool,
    context: PlanContext,
    digest: String,
    plans: Vec<Plan>,
}

pub async fn apply_saved(path: &std::path::Path, args: &GcArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let saved: SavedPlans = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not the JSON of `flink-ha gc --format json` (this version's: with context and digest)",
            path.display()
        )
    })?;
    if !saved.dry_run {
        bail!(
            "{} records a run that already deleted; apply a dry run's plan",
            path.display()
        );
    }
    if digest(&saved.context, &saved.plans) != saved.digest {
        bail!(
            "{}: the plan's digest does not match its content: it was edited after the dry run; plan again",
            path.display()
        );
    }
    let client = crate::live::client().await?;
    let storage = args.target.storage.open()?;
    let here = PlanContext::current(storage.as_ref().map(|(s, _)| s)).await;
    if here.api_server != saved.context.api_server {
        bail!(
            "the plan was made against {}, but the kubeconfig now points at {}",
            saved.context.api_server,
            here.api_server
        );
    }
    let storage = storage.map(|(s, _)| s);
    check_saved(&saved.plans, &saved.context, &here, storage.as_ref())?;
    let mut plans = saved.plans;
    let mut seen = Vec::new();
    for plan in plans.iter().filter(|p| !p.refused) {
        for deletion in &plan.deletions {
            if let Deletion::Configmap { namespace, name, .. } = deletion {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
                if let Some(object) = api
                    .get_opt(name)
                    .await
                    .with_context(|| format!("reading configmap {namespace}/{name} for the backup"))?
                {
                    seen.push(SeenConfigMap {
                        record: crate::live::record_of(&object),
                        object,
                    });
                }
            }
        }
    }
    let now = jiff::Timestamp::now();
    let dir = args.backup_dir.clone().unwrap_or_else(|| default_backup_dir(now));
    write_backup(&plans, &seen, storage.as_ref(), &dir, now).await?;
    for plan in &mut plans {
        plan.outcome.clear();
        if !plan.refused {
            execute(plan, &client, storage.as_ref()).await;
        }
    }
    report::print(&plans, &here, None, args.format, true);
    Ok(if plans.iter().any(|p| p.failed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What a saved plan may delete: HA ConfigMaps with both preconditions, and Flink HA files
/// inside the same storage root.
fn check_saved(plans: &[Plan], saved: &PlanContext, here: &PlanContext, storage: Option<&StorageAccess>) -> Result<()> {
    for plan in plans.iter().filter(|p| !p.refused) {
        for deletion in &plan.deletions {
            match deletion {
                Deletion::Configmap {
                    namespace,
                    name,
                    uid,
                    resource_version,
                    ..
                } => {
                    if uid.is_none() || resource_version.is_none() {
                        bail!(
                            "the plan deletes configmap {namespace}/{name} without a uid and resourceVersion precondition"
                        );
                    }
                    if HaConfigMapName::parse(name).is_none() {
                        bail!("the plan deletes configmap {namespace}/{name}, which is not a Flink HA ConfigMap name");
                    }
                }
                Deletion::Object { uri, .. } => {
                    let Some(storage) = storage else {
                        bail!("the plan deletes storage objects: give the same --storage or --config as the dry run");
                    };
                    if saved.storage_root != here.storage_root {
                        bail!(
                            "the plan was made for storage root {}, not {}",
                            saved.storage_root.as_deref().unwrap_or("(none)"),
                            here.storage_root.as_deref().unwrap_or("(none)")
                        );
                    }
                    let Some(relative) = storage.path_in_store(uri).and_then(|p| storage.relative(&p)) else {
                        bail!("the plan deletes {uri}, which is not inside {}", storage.storage_dir);
                    };
                    let parts: Vec<&str> = relative.iter().map(String::as_str).collect();
                    if !storage_layout::classify(&parts).is_ha_data() {
                        bail!("the plan deletes {uri}, which is not a file of Flink's HA layout");
                    }
                }
            }
        }
    }
    Ok(())
}

/// Before anything is deleted: the ConfigMaps the plans delete, whole, and a copy of every
/// storage object they delete, into a new folder `dir` that `flink-ha backup --restore`
/// puts back from. Nothing is deleted if this fails.
pub async fn write_backup(
    plans: &[Plan],
    seen: &[SeenConfigMap],
    storage: Option<&StorageAccess>,
    dir: &std::path::Path,
    now: jiff::Timestamp,
) -> Result<()> {
    let deletions = plans.iter().filter(|p| !p.refused).flat_map(|p| p.deletions.iter());
    let (mut names, mut objects) = (Vec::new(), Vec::new());
    for deletion in deletions {
        match deletion {
            Deletion::Configmap { namespace, name, .. } => names.push((namespace.clone(), name.clone())),
            Deletion::Object { uri, path, .. } => objects.push((uri.clone(), path.clone())),
        }
    }
    if names.is_empty() && objects.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir.parent().unwrap_or(std::path::Path::new(".")))
        .with_context(|| format!("creating the folder of {}", dir.display()))?;
    std::fs::create_dir(dir)
        .with_context(|| format!("creating the backup folder {} (never an existing one)", dir.display()))?;
    let mut backup = backup::build(seen, &names, storage, now, "flink-ha gc").await?;
    if let Some(storage) = storage {
        for (uri, path) in objects {
            let Some(path) = path.or_else(|| storage.path_in_store(&uri)) else {
                bail!("{uri} is not in {}", storage.storage_dir);
            };
            let Some(relative) = storage.relative(&path) else {
                bail!("{uri} is not inside {}", storage.storage_dir);
            };
            let relative = relative.join("/");
            let file = format!("objects/{relative}");
            let (size, sha256) = storage.copy_to_file(&path, &dir.join(&file)).await?;
            backup.objects.push(backup::SavedObject {
                uri,
                relative,
                file,
                size,
                sha256,
            });
        }
    }
    let text = serde_json::to_string_pretty(&backup).context("encoding the backup")?;
    backup::write_new(&dir.join(backup::BACKUP_FILE), &text)?;
    eprintln!(
        "flink-ha: backed up {} ConfigMap(s) and {} storage object(s) to {}; `flink-ha backup --restore {}` (with the same --storage) puts them back",
        backup.configmaps.len(),
        backup.objects.len(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// The default backup folder of a gc run: named after the time, in the current folder.
pub fn default_backup_dir(now: jiff::Timestamp) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("flink-ha-gc-backup-{}", now.strftime("%Y%m%dT%H%M%SZ")))
}

/// Deletes a plan: ConfigMaps under their preconditions, then (only if all of them went)
/// the storage objects, each only while it is as gc saw it.
pub async fn execute(plan: &mut Plan, client: &kube::Client, storage: Option<&StorageAccess>) {
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
        let Deletion::Object {
            uri,
            path,
            size,
            last_modified,
            ..
        } = deletion
        else {
            continue;
        };
        // A saved plan carries URIs only; one outside this store is not deleted through it.
        let Some(path) = path.clone().or_else(|| storage.path_in_store(uri)) else {
            plan.failed = true;
            plan.outcome
                .push(format!("NOT deleted: {uri} is not in {}", storage.storage_dir));
            continue;
        };
        // The precondition object stores lack: as gc saw it, or left alone.
        match storage.stat(&path).await {
            Ok(None) => {
                plan.outcome.push(format!("{uri} was already gone"));
                continue;
            }
            Ok(Some((now_size, now_modified))) => {
                let seen = last_modified.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
                if now_size != *size || seen != Some(now_modified) {
                    plan.failed = true;
                    plan.outcome.push(format!(
                        "NOT deleted: {uri} changed since gc looked ({now_size} bytes, written {now_modified})"
                    ));
                    continue;
                }
            }
            Err(e) => {
                plan.failed = true;
                plan.outcome.push(format!("NOT deleted: {e:#}"));
                continue;
            }
        }
        match storage.delete(&path).await {
            Ok(()) => plan.outcome.push(format!("deleted {uri}")),
            Err(e) => {
                plan.failed = true;
                plan.outcome.push(format!("NOT deleted: {e:#}"));
            }
        }
    }
}
