//! `flink-ha gc`: finds the HA state of clusters that are gone and deletes it — a dry run
//! unless `--yes`. It deletes only what it can prove is the dead cluster's own and
//! unreferenced; whatever it cannot prove it keeps, and says why.
//!
//! - [`plan`]: the decisions, from what was read (ConfigMaps of every namespace in scope,
//!   the workloads, one listing of the storage root).
//! - [`execute`]: the deletions, each under a precondition, and `--apply` of a saved plan.
//! - [`report`]: the text and JSON output.
//!
//! The proof, in order (README "gc" and ARCHITECTURE "Who may delete what"):
//!
//! 1. **Dead, not unknown.** No Deployment, Job, StatefulSet, Pod or FlinkDeployment of the
//!    id; a readable lease that expired or was released longer than `--older-than` ago. A
//!    cluster without a readable lease is unknown and kept, unless `--assume-dead`.
//! 2. **A storage root that is a storageDir.** It has a path below the bucket, and every
//!    object under it is in Flink's HA layout; a checkpoint, a savepoint or an unknown file
//!    there means the root is wrong, and nothing in storage is touched.
//! 3. **Its own, unreferenced.** Payloads only with `-A` (a cluster in a namespace gc did not
//!    read could name them): files its pointers name, its jobs' blobs and job-result entries
//!    — minus anything another cluster names — and, in a folder named after it that nobody
//!    else uses, the other Flink HA files there. A folder no ConfigMap refers to goes only
//!    when the runtime's owner marker names a cluster that has no ConfigMaps left.

mod execute;
mod plan;
mod report;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::inspect::{ClusterArgs, gather};

/// The shortest `--older-than`: a cluster idle for less may be restarting (a node drain,
/// a slow image pull), and its next JobManager recovers from exactly this state.
pub const OLDER_THAN_FLOOR: Duration = Duration::from_secs(3600);

#[derive(Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub target: ClusterArgs,

    /// Only state idle for longer than this: since the lease expired or was released.
    /// Flink's duration syntax; at least 1 h.
    #[arg(long, value_name = "DURATION", default_value = "7 d", value_parser = crate::parse_duration)]
    pub older_than: Duration,

    /// Treat a cluster without a readable lease (a pre-1.15 layout, a broken record, no
    /// cluster ConfigMap) as gone once its newest HA ConfigMap is older than
    /// --older-than. Without it such a cluster is "unknown" and kept.
    #[arg(long)]
    pub assume_dead: bool,

    /// Delete. Without it, gc prints what it would delete and why, and changes nothing.
    #[arg(long)]
    pub yes: bool,

    /// Delete exactly what a saved dry run (`gc --format json > plan.json`) listed, after
    /// someone reviewed it, instead of planning again. Refused unless the plan is
    /// unedited (its digest), made against the same API server and storage root, and
    /// names only HA ConfigMaps (each with uid and resourceVersion preconditions) and
    /// Flink HA files inside the root.
    #[arg(long, value_name = "PLAN", conflicts_with_all = ["yes", "cluster_id", "older_than", "assume_dead"])]
    pub apply: Option<std::path::PathBuf>,

    /// With --yes or --apply: the new folder the backup goes to before anything is deleted
    /// (the ConfigMaps whole, a copy of every storage object), for `flink-ha backup
    /// --restore`. Default: `flink-ha-gc-backup-<time>` in the current folder.
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<std::path::PathBuf>,

    /// Delete one cluster folder no HA ConfigMap refers to, which gc cannot prove is an
    /// orphan on its own (no owner marker): every file in `<storageDir>/<NAME>/` and its
    /// result-store entries. Needs -A; a dry run shows the count and size, and --yes then
    /// needs --confirm-files with that count.
    #[arg(
        long,
        value_name = "NAME",
        requires = "all_namespaces",
        conflicts_with = "cluster_id"
    )]
    pub folder: Option<String>,

    /// With --folder and --yes: the number of files the dry run showed; refused if the
    /// folder now holds another number.
    #[arg(long, value_name = "N", requires = "folder")]
    pub confirm_files: Option<usize>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = GcFormat::Text)]
    pub format: GcFormat,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GcFormat {
    Text,
    Json,
}

pub fn run(args: &GcArgs) -> Result<ExitCode> {
    crate::live::block_on(gc(args))
}

async fn gc(args: &GcArgs) -> Result<ExitCode> {
    if args.target.source.from.is_some() {
        bail!("gc deletes from a live cluster; --from is for `flink-ha inspect`");
    }
    if let Some(path) = &args.apply {
        return execute::apply_saved(path, args).await;
    }
    if args.older_than < OLDER_THAN_FLOOR {
        bail!(
            "--older-than {} is below gc's floor of 1 h: a cluster idle for less may be restarting, and its next JobManager recovers from this state",
            flink_ha_policy::ha_state::human_ms(i64::try_from(args.older_than.as_millis()).unwrap_or(i64::MAX))
        );
    }
    let gathered = gather(&args.target.source, args.target.cluster_id.as_deref(), None).await?;
    let client = gathered.client.clone().context("gc needs a live cluster")?;
    let storage = args.target.storage.open()?;
    let inventory = match &storage {
        Some((storage, _)) => Some(plan::Inventory::read(storage).await?),
        None => None,
    };
    let settings = plan::Settings {
        older_than: args.older_than,
        assume_dead: args.assume_dead,
        all_namespaces: args.target.source.all_namespaces,
        sweep_folders: args.target.source.all_namespaces && args.target.cluster_id.is_none(),
        now: gathered.now,
    };
    let mut plans = Vec::new();
    if let Some(folder) = &args.folder {
        let (Some((storage, _)), Some(inventory)) = (&storage, &inventory) else {
            bail!("--folder needs the storage root: give --storage or --config");
        };
        // --folder needs -A: the workloads gather listed are every namespace's.
        let plan = plan::named_folder(storage, inventory, folder, &gathered.clusters, &gathered.workloads).await?;
        if args.yes {
            let (count, _) = plan.object_totals();
            match args.confirm_files {
                Some(n) if n == count => {}
                Some(n) => bail!("--confirm-files {n}, but {folder}/ now holds {count} file(s); look again (dry run)"),
                None => bail!("deleting {folder}/ needs --confirm-files {count} (the count the dry run shows)"),
            }
        }
        plans.push(plan);
    }
    for cluster in gathered.clusters.iter().filter(|_| args.folder.is_none()) {
        let mut plan = plan::liveness(cluster, &settings, &gathered.configmaps);
        if !plan.refused {
            match (&storage, &inventory) {
                (Some((storage, location)), Some(inventory)) => {
                    // A configuration describes one cluster: its folder counts only
                    // when gc is pointed at that cluster.
                    let configured =
                        location
                            .as_ref()
                            .filter(|_| args.target.cluster_id.is_some())
                            .map(|l| plan::Configured {
                                folder: l.storage_cluster_id.clone(),
                                job_result_store: l.job_result_store_path.clone(),
                            });
                    plan::storage(
                        &mut plan,
                        cluster,
                        storage,
                        inventory,
                        configured.as_ref(),
                        &gathered.clusters,
                        &settings,
                    )
                    .await?;
                }
                _ => plan.kept.push(
                    "payloads: no storage given (--config or --storage); only the ConfigMaps are removed".to_owned(),
                ),
            }
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
    if settings.sweep_folders
        && args.folder.is_none()
        && let (Some((storage, _)), Some(inventory)) = (&storage, &inventory)
    {
        // sweep_folders needs -A: the workloads gather listed are every namespace's.
        plans.extend(
            plan::orphaned_folders(storage, inventory, &gathered.clusters, &gathered.workloads, &settings).await,
        );
    }
    let context = execute::PlanContext::current(storage.as_ref().map(|(s, _)| s)).await;
    if args.yes {
        let dir = args
            .backup_dir
            .clone()
            .unwrap_or_else(|| execute::default_backup_dir(gathered.now));
        execute::write_backup(
            &plans,
            &gathered.configmaps,
            storage.as_ref().map(|(s, _)| s),
            &dir,
            gathered.now,
        )
        .await?;
        for plan in &mut plans {
            if !plan.refused {
                execute::execute(plan, &client, storage.as_ref().map(|(s, _)| s)).await;
            }
        }
    }
    report::print(&plans, &context, inventory.as_ref(), args.format, args.yes);
    Ok(if plans.iter().any(|p| p.failed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
