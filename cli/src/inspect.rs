//! `flink-ha inspect`: a cluster's HA state, live or from a dump — its HA ConfigMaps and
//! their size, the leader and its lease, each component's address, each job's plan,
//! checkpoints and counter, and (with storage) whether each payload exists and the
//! external checkpoint path a manual restore starts from. Findings as `lint` prints them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use flink_ha_policy::ha_state::{self, ClusterState, ObjectFinding};
use flink_ha_policy::{InputFormat, LintRun, Report};
use flink_ha_runtime::StorageLocation;
use flink_ha_runtime::storage::StorageOptions;
use jiff::Timestamp;

use crate::live::{self, Scope, SeenConfigMap};
use crate::storage_access::{self, StorageAccess};

#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub target: ClusterArgs,

    /// Judge leases at this time (RFC 3339) instead of the API server's clock (live) or
    /// this machine's (with --from): for a support bundle, the time it was taken.
    #[arg(long, value_name = "TIME")]
    pub at: Option<Timestamp>,

    /// Output format: text (state, then findings), json (`clusters` beside lint's
    /// `files` and `summary`), sarif (findings only).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Which clusters a command reads, from where, and how it reaches their storage
/// (`inspect` and `gc`).
#[derive(Args)]
pub struct ClusterArgs {
    /// Only this cluster id (`kubernetes.cluster-id`); all cluster ids found when left out.
    #[arg(value_name = "CLUSTER-ID")]
    pub cluster_id: Option<String>,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Where the ConfigMaps come from.
#[derive(Args)]
pub struct SourceArgs {
    /// Namespace to read (default: the kubeconfig's).
    #[arg(short = 'n', long, value_name = "NAMESPACE", conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,

    /// Read every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Read ConfigMaps from a `kubectl get cm -o yaml` (or json) dump instead of a live
    /// cluster. Cluster existence is then unknown.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["namespace", "all_namespaces"])]
    pub from: Option<PathBuf>,
}

/// How to reach the storageDir.
#[derive(Args)]
pub struct StorageArgs {
    /// The cluster's Flink configuration (config.yaml or flink-conf.yaml): its
    /// `high-availability.storageDir` and its `s3.*`/`gs.*`/`fs.azure.*` options.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The storageDir (overrides the one in --config), or a folder holding a copy of it
    /// or of its payload files.
    #[arg(long, value_name = "URI")]
    pub storage: Option<String>,
}

impl StorageArgs {
    /// The storage to read, if any was given, with the configuration's location.
    pub fn open(&self) -> Result<Option<(StorageAccess, Option<StorageLocation>)>> {
        let location = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                Some(StorageLocation::from_flink_config(&path.display().to_string(), &text)?)
            }
            None => None,
        };
        let (dir, options) = match (&self.storage, &location) {
            (Some(dir), Some(location)) => (dir.clone(), location.storage_options.clone()),
            (Some(dir), None) => (dir.clone(), StorageOptions::default()),
            (None, Some(location)) => (location.storage_dir.clone(), location.storage_options.clone()),
            (None, None) => return Ok(None),
        };
        Ok(Some((StorageAccess::open(&dir, &options)?, location)))
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Sarif,
}

/// The ConfigMaps and clusters a command works on, read once.
pub struct Gathered {
    pub configmaps: Vec<SeenConfigMap>,
    pub clusters: Vec<ClusterState>,
    pub now: Timestamp,
    /// The live client, if not from a dump.
    pub client: Option<kube::Client>,
    pub scope_description: String,
    /// The workloads found in scope (live only), keyed by namespace and cluster id.
    pub workloads: BTreeMap<(String, String), Vec<String>>,
}

/// Reads the ConfigMaps (live or dump), groups the clusters, and (live) looks up which
/// still exist.
pub async fn gather(source: &SourceArgs, cluster_id: Option<&str>, at: Option<Timestamp>) -> Result<Gathered> {
    let (configmaps, now, client, scope_description) = match &source.from {
        Some(path) => (
            live::read_dump(path)?,
            at.unwrap_or_else(Timestamp::now),
            None,
            path.display().to_string(),
        ),
        None => {
            let client = live::client().await?;
            let scope = Scope::new(source.namespace.as_deref(), source.all_namespaces, &client);
            let configmaps = live::list_configmaps(&client, &scope).await?;
            let now = match at {
                Some(at) => at,
                None => live::server_time(&client).await?,
            };
            (configmaps, now, Some((client, scope)), String::new())
        }
    };
    let records: Vec<_> = configmaps.iter().map(|c| c.record.clone()).collect();
    let mut clusters = ha_state::read_clusters(&records, now, cluster_id);
    let (client, scope_description, workloads) = match client {
        Some((client, scope)) => {
            let workloads = live::workloads(&client, &scope).await?;
            live::apply_workloads(&mut clusters, &workloads);
            (Some(client), scope.describe(), workloads)
        }
        None => (None, scope_description, BTreeMap::new()),
    };
    Ok(Gathered {
        configmaps,
        clusters,
        now,
        client,
        scope_description,
        workloads,
    })
}

pub fn run(args: &InspectArgs) -> Result<ExitCode> {
    live::block_on(inspect(args))
}

async fn inspect(args: &InspectArgs) -> Result<ExitCode> {
    let mut gathered = gather(&args.target.source, args.target.cluster_id.as_deref(), args.at).await?;
    if gathered.clusters.is_empty() {
        match &args.target.cluster_id {
            Some(id) => bail!(
                "no HA ConfigMaps of cluster id `{id}` in {}",
                gathered.scope_description
            ),
            None => {
                eprintln!("flink-ha: no Flink HA ConfigMaps in {}", gathered.scope_description);
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    if let Some((storage, _)) = args.target.storage.open()? {
        for cluster in &mut gathered.clusters {
            read_payloads(&storage, cluster).await;
        }
    }
    let findings = findings(&gathered.configmaps, &gathered.clusters);
    let run = LintRun::new(findings);
    match args.format {
        OutputFormat::Text => {
            print!("{}", ha_state::render_text(&gathered.clusters));
            println!();
            if run.files.is_empty() {
                println!("no findings");
            } else {
                print!("{}", run.to_text());
            }
        }
        OutputFormat::Json => {
            let value = serde_json::json!({
                "at": gathered.now.to_string(),
                "clusters": gathered.clusters,
                "files": run.files,
                "summary": run.summary,
            });
            println!("{}", serde_json::to_string_pretty(&value).context("rendering JSON")?);
        }
        OutputFormat::Sarif => println!("{}", run.to_sarif()),
    }
    Ok(if run.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Looks up every payload a cluster's pointers name, and reads each job's latest
/// completed checkpoint.
pub async fn read_payloads(storage: &StorageAccess, cluster: &mut ClusterState) {
    let facts = storage_access::locate_all(storage, &cluster.payload_uris()).await;
    cluster.apply_payloads(&facts);
    for job in &mut cluster.jobs {
        let Some(latest) = job.recovery_checkpoint() else {
            continue;
        };
        let bytes = match &latest.entry.payload {
            Some(ha_state::PayloadFact::Found { read_from, .. }) => {
                storage.read(read_from).await.map_err(|e| format!("{e:#}"))
            }
            Some(other) => Err(format!("its payload is not readable ({})", fact_word(other))),
            None => continue,
        };
        ha_state::apply_latest_checkpoint(job, bytes.as_deref().map_err(Clone::clone));
        if let Some(latest) = job.latest.as_mut()
            && let Some(info) = &latest.info
            && let Some(dir) = &info.external_pointer
        {
            let metadata = info.metadata_uri.clone().unwrap_or_else(|| format!("{dir}/_metadata"));
            latest.wholeness = Some(wholeness(storage, dir, &metadata).await);
        }
    }
}

/// Whether a checkpoint is whole: its `_metadata` read (Flink's format, bounded) and every
/// state file it references found with the size Flink recorded (a segment of a merged file:
/// the file long enough to hold it).
pub async fn wholeness(storage: &StorageAccess, dir: &str, metadata_uri: &str) -> ha_state::Wholeness {
    use flink_ha_policy::checkpoint_metadata::{self, Location};
    let bytes = match storage.read(metadata_uri).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return match storage.locate(metadata_uri).await {
                ha_state::PayloadFact::Missing { .. } => ha_state::Wholeness::NotWhole {
                    problems: vec![format!("{metadata_uri}: missing")],
                },
                _ => ha_state::Wholeness::Unknown { why: format!("{e:#}") },
            };
        }
    };
    let metadata = match checkpoint_metadata::read(&bytes) {
        Ok(metadata) => metadata,
        Err(e) => {
            return ha_state::Wholeness::Unknown {
                why: format!("{metadata_uri}: {e}"),
            };
        }
    };
    // Each file once: the largest extent any handle needs of it.
    let mut needed: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    for (_, _, _, file) in metadata.files() {
        let Some(uri) = file.location.resolve(dir) else {
            continue;
        };
        let (extent, exact) = match &file.location {
            Location::Segment { start, .. } => (start.saturating_add(file.size), false),
            _ => (file.size, true),
        };
        let entry = needed.entry(uri).or_insert((0, exact));
        entry.0 = entry.0.max(extent);
        entry.1 &= exact;
    }
    let mut problems = Vec::new();
    let bytes: u64 = needed.values().map(|(size, _)| size).sum();
    for (uri, (size, exact)) in &needed {
        let Some(path) = storage.path_in_store(uri) else {
            problems.push(format!("{uri}: not in the store of {}", storage.storage_dir));
            continue;
        };
        match storage.stat(&path).await {
            Ok(None) => problems.push(format!("{uri}: missing")),
            Ok(Some((found, _))) if (*exact && found != *size) || found < *size => {
                problems.push(format!("{uri}: {found} bytes, Flink recorded {size}"));
            }
            Ok(Some(_)) => {}
            Err(e) => {
                return ha_state::Wholeness::Unknown { why: format!("{e:#}") };
            }
        }
    }
    if problems.is_empty() {
        ha_state::Wholeness::Whole {
            files: needed.len(),
            bytes,
        }
    } else {
        ha_state::Wholeness::NotWhole { problems }
    }
}

fn fact_word(fact: &ha_state::PayloadFact) -> &'static str {
    match fact {
        ha_state::PayloadFact::Found { .. } => "found",
        ha_state::PayloadFact::Missing { .. } => "missing",
        ha_state::PayloadFact::Unreachable { .. } => "storage unreachable",
        ha_state::PayloadFact::Foreign { .. } => "outside the storageDir",
    }
}

/// The core's lint of each HA ConfigMap of the clusters (owner references, labels, size,
/// pointer formats), then the state rules (HA209–HA212), per object.
pub fn findings(configmaps: &[SeenConfigMap], clusters: &[ClusterState]) -> Vec<(String, Report)> {
    let mut by_object: BTreeMap<String, Report> = BTreeMap::new();
    for seen in configmaps {
        let record = &seen.record;
        let belongs = clusters
            .iter()
            .any(|c| c.namespace == record.namespace && c.configmaps.iter().any(|cm| cm.name == record.name));
        if !belongs {
            continue;
        }
        let path = record.object_path();
        let findings = lint_object(&path, &seen.object);
        by_object.entry(path).or_default().findings.extend(findings);
    }
    for ObjectFinding { object, finding } in ha_state::state_findings(clusters) {
        by_object.entry(object).or_default().findings.push(finding);
    }
    by_object.into_iter().filter(|(_, r)| !r.findings.is_empty()).collect()
}

/// Lints one live object as a manifest. Positions point into a rendering of it that
/// nobody sees, so they are dropped: the object path and the key say where.
pub fn lint_object<K: serde::Serialize>(path: &str, object: &K) -> Vec<flink_ha_policy::Finding> {
    let manifest = match serde_yaml::to_string(object) {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!(object = path, error = %e, "cannot render the object for the lint");
            return Vec::new();
        }
    };
    let mut report = flink_ha_policy::lint_as(path, manifest.as_bytes(), InputFormat::Kubernetes);
    for finding in &mut report.findings {
        finding.line = None;
        finding.column = None;
    }
    report.findings
}
