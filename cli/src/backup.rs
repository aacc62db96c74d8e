//! `flink-ha backup`: a cluster's HA ConfigMaps, whole, and the list of payloads they name
//! (size and SHA-256 where storage was given) in one JSON file; and `backup --restore FILE`,
//! which re-creates the HA ConfigMaps of a backup that no longer exist — never over an
//! existing one, and only once every payload they name is found in storage.
//!
//! `gc` writes one of these before it deletes a ConfigMap, so every deletion of HA state it
//! makes can be undone. `inspect --from FILE` reads a backup as it reads a dump.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use flink_ha_policy::flink_state::normalize_uri;
use flink_ha_policy::ha_state::{self, PayloadFact};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};

use crate::inspect::{ClusterArgs, StorageArgs, gather};
use crate::live::SeenConfigMap;
use crate::storage_access::StorageAccess;

/// The `kind` of a backup file.
pub const BACKUP_KIND: &str = "FlinkHaBackup";

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub target: ClusterArgs,

    /// Write the backup to this file (`-` for standard output).
    #[arg(short, long, value_name = "FILE", required_unless_present = "restore")]
    pub out: Option<PathBuf>,

    /// Re-create the HA ConfigMaps of this backup that no longer exist (never over an
    /// existing one), once every payload they name is found in storage. A dry run unless
    /// --yes.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["out", "cluster_id"])]
    pub restore: Option<PathBuf>,

    /// With --restore: create the ConfigMaps.
    #[arg(long, requires = "restore")]
    pub yes: bool,
}

/// One backup file.
#[derive(Debug, Serialize, Deserialize)]
pub struct Backup {
    /// Always [`BACKUP_KIND`].
    pub kind: String,
    /// The format's version: 1.
    pub version: u32,
    /// When it was taken (the API server's clock).
    pub taken_at: String,
    /// The API server it was taken from.
    pub api_server: String,
    /// Why it was taken: `flink-ha backup`, or the gc run it precedes.
    pub reason: String,
    /// The HA ConfigMaps, whole (as the API server returned them).
    pub configmaps: Vec<ConfigMap>,
    /// The payloads their pointers name.
    pub payloads: Vec<PayloadRecord>,
    /// The storage root the objects below were copied from (gc's backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_root: Option<String>,
    /// Storage objects copied into the backup's folder before gc deleted them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<SavedObject>,
}

/// A storage object saved beside the backup file, as it was before gc deleted it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedObject {
    pub uri: String,
    /// Its path under the storage root (`<folder>/completedCheckpoint…`).
    pub relative: String,
    /// Its copy, relative to the backup file's folder.
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

/// The file name of the backup inside a backup folder.
pub const BACKUP_FILE: &str = "backup.json";

/// One payload a pointer of the backup names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayloadRecord {
    pub uri: String,
    /// `found`, `missing`, `not checked` (no storage given), or why it could not be read.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

pub fn run(args: &BackupArgs) -> Result<ExitCode> {
    crate::live::block_on(async {
        match &args.restore {
            Some(path) => restore(path, &args.target.storage, args.yes).await,
            None => take(args).await,
        }
    })
}

async fn take(args: &BackupArgs) -> Result<ExitCode> {
    if args.target.source.from.is_some() {
        bail!("backup reads a live cluster; a dump is already a backup of its ConfigMaps");
    }
    let out = args.out.as_ref().context("--out FILE is required")?;
    let gathered = gather(&args.target.source, args.target.cluster_id.as_deref(), None).await?;
    if gathered.clusters.is_empty() {
        bail!("no Flink HA ConfigMaps in {}", gathered.scope_description);
    }
    let names: Vec<(String, String)> = gathered
        .clusters
        .iter()
        .flat_map(|c| c.configmaps.iter().map(|cm| (c.namespace.clone(), cm.name.clone())))
        .collect();
    let storage = args.target.storage.open()?;
    let backup = build(
        &gathered.configmaps,
        &names,
        storage.as_ref().map(|(s, _)| s),
        gathered.now,
        "flink-ha backup",
    )
    .await?;
    let text = serde_json::to_string_pretty(&backup).context("encoding the backup")?;
    if out.as_os_str() == "-" {
        println!("{text}");
    } else {
        write_new(out, &text)?;
        let found = backup.payloads.iter().filter(|p| p.state == "found").count();
        eprintln!(
            "flink-ha: backed up {} HA ConfigMap(s) of {} cluster(s) and the list of {} payload(s) ({found} found) to {}",
            backup.configmaps.len(),
            gathered.clusters.len(),
            backup.payloads.len(),
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A backup of the ConfigMaps named `(namespace, name)` among `seen`, with the payloads
/// their pointers name (checksummed where storage is given).
pub async fn build(
    seen: &[SeenConfigMap],
    names: &[(String, String)],
    storage: Option<&StorageAccess>,
    now: jiff::Timestamp,
    reason: &str,
) -> Result<Backup> {
    let chosen: Vec<&SeenConfigMap> = seen
        .iter()
        .filter(|s| {
            names
                .iter()
                .any(|(ns, n)| *ns == s.record.namespace && *n == s.record.name)
        })
        .collect();
    let records: Vec<_> = chosen.iter().map(|s| s.record.clone()).collect();
    let mut uris: Vec<String> = ha_state::read_clusters(&records, now, None)
        .iter()
        .flat_map(|c| c.payload_uris())
        .collect();
    uris.sort();
    uris.dedup();
    let mut payloads = Vec::new();
    for uri in uris {
        payloads.push(match storage {
            Some(storage) => payload_record(storage, &uri).await,
            None => PayloadRecord {
                uri,
                state: "not checked".to_owned(),
                size: None,
                sha256: None,
            },
        });
    }
    let api_server = crate::live::api_server_url().await;
    Ok(Backup {
        kind: BACKUP_KIND.to_owned(),
        version: 1,
        taken_at: now.to_string(),
        api_server,
        reason: reason.to_owned(),
        configmaps: chosen
            .iter()
            .map(|s| {
                let mut cm = s.object.clone();
                cm.metadata.managed_fields = None;
                cm
            })
            .collect(),
        payloads,
        storage_root: storage.map(|s| s.uri_of(&s.child(&[]))),
        objects: Vec::new(),
    })
}

async fn payload_record(storage: &StorageAccess, uri: &str) -> PayloadRecord {
    let mut record = PayloadRecord {
        uri: uri.to_owned(),
        state: String::new(),
        size: None,
        sha256: None,
    };
    match storage.locate(uri).await {
        PayloadFact::Found { size, read_from } => {
            record.size = Some(size);
            match storage.sha256(&read_from).await {
                Ok(digest) => {
                    record.state = "found".to_owned();
                    record.sha256 = Some(digest);
                }
                Err(e) => record.state = format!("found, unreadable: {e:#}"),
            }
        }
        PayloadFact::Missing { .. } => record.state = "missing".to_owned(),
        PayloadFact::Foreign { storage } => record.state = format!("outside {storage}"),
        PayloadFact::Unreachable { error } => record.state = format!("storage did not answer: {error}"),
    }
    record
}

/// Writes `text` to a new file: a backup never replaces another.
pub fn write_new(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| {
            format!(
                "creating {} (a backup is never written over an existing file)",
                path.display()
            )
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads a backup file, refusing anything else.
pub fn read(path: &Path) -> Result<Backup> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let backup: Backup = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a flink-ha backup (`flink-ha backup -o FILE`)",
            path.display()
        )
    })?;
    if backup.kind != BACKUP_KIND || backup.version != 1 {
        bail!(
            "{} is a {} of version {}, not a {BACKUP_KIND} of version 1",
            path.display(),
            backup.kind,
            backup.version
        );
    }
    Ok(backup)
}

async fn restore(path: &Path, storage_args: &StorageArgs, yes: bool) -> Result<ExitCode> {
    // A backup folder (gc's) holds backup.json and the copies of the objects it deleted.
    let (file, folder) = if path.is_dir() {
        (path.join(BACKUP_FILE), path.to_path_buf())
    } else {
        (
            path.to_path_buf(),
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        )
    };
    let backup = read(&file)?;
    let client = crate::live::client().await?;
    let mut failed = false;
    if !backup.objects.is_empty() {
        let Some((storage, _)) = storage_args.open()? else {
            bail!(
                "the backup holds {} storage object(s) to put back: give the same --storage or --config as the run that made it ({})",
                backup.objects.len(),
                backup.storage_root.as_deref().unwrap_or("?")
            );
        };
        let root = storage.uri_of(&storage.child(&[]));
        if backup.storage_root.as_deref() != Some(root.as_str()) {
            bail!(
                "the backup's objects came from {}, not {root}",
                backup.storage_root.as_deref().unwrap_or("(no storage)")
            );
        }
        failed |= restore_objects(&backup, &folder, &storage, yes).await?;
    }
    // Which of them are gone.
    let mut missing_configmaps = Vec::new();
    let mut existing = Vec::new();
    for cm in &backup.configmaps {
        let namespace = cm.metadata.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let name = cm
            .metadata
            .name
            .clone()
            .context("a ConfigMap of the backup has no name")?;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        match api
            .get_opt(&name)
            .await
            .with_context(|| format!("reading configmap {namespace}/{name}"))?
        {
            Some(_) => existing.push(format!("{namespace}/{name}")),
            None => missing_configmaps.push((namespace, name, cm)),
        }
    }
    for name in &existing {
        println!("keep configmap {name}: it exists, and a backup never overwrites");
    }
    if missing_configmaps.is_empty() {
        println!("nothing to restore: every HA ConfigMap of {} exists", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    // Every payload the re-created ConfigMaps name must exist: a pointer to nothing would
    // stop the next JobManager's recovery.
    let records: Vec<_> = missing_configmaps
        .iter()
        .map(|(_, _, cm)| crate::live::record_of(cm))
        .collect();
    let uris: Vec<String> = ha_state::read_clusters(&records, jiff::Timestamp::now(), None)
        .iter()
        .flat_map(|c| c.payload_uris())
        .collect();
    if !uris.is_empty() {
        let Some((storage, _)) = storage_args.open()? else {
            bail!(
                "the ConfigMaps to restore name {} payload(s): give --storage or --config so that restore can check they still exist",
                uris.len()
            );
        };
        let facts: BTreeMap<String, PayloadFact> = crate::storage_access::locate_all(&storage, &uris).await;
        // In a dry run, what the backup puts back first counts as there.
        let put_back: Vec<&str> = backup.objects.iter().map(|o| o.uri.as_str()).collect();
        let absent: Vec<String> = facts
            .iter()
            .filter(|(_, f)| !matches!(f, PayloadFact::Found { .. }))
            .filter(|(uri, _)| !put_back.contains(&normalize_uri(uri).as_str()))
            .map(|(uri, fact)| format!("{uri} ({})", describe_fact(fact)))
            .collect();
        if !absent.is_empty() {
            bail!(
                "refusing to restore: {} payload(s) the ConfigMaps name are not in storage, and a pointer to nothing stops the next JobManager: {}",
                absent.len(),
                absent.join("; ")
            );
        }
        println!("every one of the {} payload(s) they name exists", uris.len());
    }
    let verb = if yes { "created" } else { "would create" };
    // Job ConfigMaps first, the cluster ConfigMap (the lock) last, as Flink makes them.
    missing_configmaps.sort_by_key(|(_, name, _)| name.ends_with("-cluster-config-map"));
    for (namespace, name, cm) in missing_configmaps {
        if yes {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
            if let Err(e) = api.create(&PostParams::default(), &fresh(cm)).await {
                failed = true;
                println!("NOT created: configmap {namespace}/{name}: {e}");
                continue;
            }
        }
        println!("{verb} configmap {namespace}/{name}");
    }
    if !yes {
        println!("dry run: run again with --yes to create them");
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Puts back every saved object that is not in storage (create-only), after checking its
/// copy's checksum. Returns whether any failed.
async fn restore_objects(backup: &Backup, folder: &Path, storage: &StorageAccess, yes: bool) -> Result<bool> {
    use sha2::{Digest, Sha256};
    let mut failed = false;
    for object in &backup.objects {
        let copy = folder.join(&object.file);
        let bytes = std::fs::read(&copy).with_context(|| format!("reading {}", copy.display()))?;
        let digest = crate::storage_access::hex(&Sha256::digest(&bytes));
        if digest != object.sha256 {
            bail!(
                "{} does not match its checksum in the backup: the copy of {} is damaged; nothing was restored from it",
                copy.display(),
                object.uri
            );
        }
        let parts: Vec<&str> = object.relative.split('/').collect();
        let path = storage.child(&parts);
        if storage.stat(&path).await?.is_some() {
            println!("keep {}: it exists, and a backup never overwrites", object.uri);
            continue;
        }
        if !yes {
            println!("would put back {} ({} bytes)", object.uri, object.size);
        } else if storage.put_new(&path, bytes).await? {
            println!("put back {} ({} bytes)", object.uri, object.size);
        } else {
            failed = true;
            println!("NOT put back: {} appeared meanwhile", object.uri);
        }
    }
    Ok(failed)
}

/// The ConfigMap as a new object: no server-set fields, and no owner references (an HA
/// ConfigMap must not have them; an owner that is gone would have it collected at once).
fn fresh(cm: &ConfigMap) -> ConfigMap {
    let mut cm = cm.clone();
    let meta = &mut cm.metadata;
    meta.uid = None;
    meta.resource_version = None;
    meta.creation_timestamp = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.generation = None;
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    cm
}

fn describe_fact(fact: &PayloadFact) -> String {
    match fact {
        PayloadFact::Found { .. } => "found".to_owned(),
        PayloadFact::Missing { looked_at } => format!("missing: looked at {looked_at}"),
        PayloadFact::Foreign { storage } => format!("outside {storage}"),
        PayloadFact::Unreachable { error } => format!("storage did not answer: {error}"),
    }
}
