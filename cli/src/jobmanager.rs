//! `flink-ha jobmanager`: the runtime's JobManager-like process (leader election,
//! leader entries, fake jobs that checkpoint, recovery on takeover) against the cluster
//! of the current kubeconfig. For failover tests and the demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use flink_ha_runtime::checkpoint_store::MissingCheckpoint;
use flink_ha_runtime::history::History;
use flink_ha_runtime::jobmanager::{self, JobManagerOptions, OrphanSweep};
use flink_ha_runtime::sweep;
use flink_ha_runtime::{ConfigError, HaSettings};

#[derive(Args)]
pub struct JobManagerArgs {
    /// The Flink configuration (config.yaml or flink-conf.yaml). It is linted first; the
    /// process does not start on error findings.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The RPC address published in the leader entries of the dispatcher, the resource
    /// manager and the jobs.
    #[arg(long, default_value = "pekko.tcp://flink@127.0.0.1:6123/user/rpc/dispatcher_1")]
    address: String,
    /// The REST endpoint published in the `restserver` leader entry (an http(s) URL, as
    /// Flink writes and its clients read there).
    #[arg(long, default_value = "http://127.0.0.1:8081", value_parser = parse_http_url)]
    rest_address: String,
    /// Fake jobs to submit when the cluster has none.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// How often each job completes a checkpoint (Flink's duration syntax: `1 s`, `500ms`).
    #[arg(long, default_value = "1 s", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// End each job once it completed checkpoint N (succeeded, cancelled or failed, at
    /// random; its result recorded, its HA data cleaned up) and submit a new one in its
    /// place. Without it, jobs run until the
    /// process stops.
    #[arg(long, value_name = "N")]
    finish_after: Option<u64>,
    /// Append what this process does (leadership, recoveries, checkpoints, job ends)
    /// to FILE as JSON lines, for the nemesis test's checker.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// How often the leader deletes this cluster's payloads that no pointer names (left
    /// by a JobManager killed between writing a payload and its pointer). Only files
    /// whose names carry this cluster's identity are ever deleted. The sweep refuses,
    /// and says why, when `high-availability.cluster-id` is unset (the shared
    /// `default` folder every standalone cluster writes into) and on a store that
    /// ignores create-only writes (`If-None-Match`); it deletes nothing while a pointer
    /// in the cluster's ConfigMaps cannot be read.
    #[arg(long, value_name = "DURATION", default_value = "10 min", value_parser = parse_duration)]
    orphan_sweep_interval: Duration,
    /// How long this process must have seen an orphaned payload (its own monotonic
    /// clock, not storage's timestamps) before the sweep deletes it. It must exceed the
    /// time an add's pointer write can take: (2 × (max-retries + 1) + 1) leases.
    #[arg(long, value_name = "DURATION", default_value = "1 h", value_parser = parse_duration)]
    orphan_min_age: Duration,
    /// Never sweep orphaned payloads.
    #[arg(long)]
    no_orphan_sweep: bool,
    /// When a job's newest checkpoint payload is missing from storageDir, recover the
    /// job from the newest older checkpoint that is there, rolling its state back to it.
    /// Without it that job's recovery fails, naming the checkpoint's key and URI, as
    /// Flink's does.
    #[arg(long)]
    recover_from_older_checkpoint: bool,
    /// Run this process's wall clock ahead (`+2 min`) or behind (`-3 min`) — what it
    /// writes as the lock's acquire and renew times. For tests of clock skew: the
    /// runtime decides nothing by the wall clock (a Flink standby beside it would).
    #[arg(long, value_name = "OFFSET", allow_hyphen_values = true, value_parser = parse_offset)]
    wall_clock_offset: Option<i64>,
}

/// A signed duration in Flink's syntax (`-3 min`, `+90 s`, `2 min`), in milliseconds.
fn parse_offset(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    let (sign, rest) = match trimmed.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let duration = parse_duration(rest.trim())?;
    i64::try_from(duration.as_millis())
        .map(|ms| sign * ms)
        .map_err(|_| format!("`{text}` is too large an offset"))
}

fn parse_http_url(text: &str) -> Result<String, String> {
    if text.starts_with("http://") || text.starts_with("https://") {
        Ok(text.to_string())
    } else {
        Err(format!("`{text}` is not an http:// or https:// URL"))
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    flink_ha_policy::duration::parse(text).map_err(|e| format!("`{text}` {e}"))
}

pub fn run(args: &JobManagerArgs) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(&args.config).with_context(|| format!("cannot read {}", args.config.display()))?;
    let name = args.config.display().to_string();
    let mut settings = match HaSettings::from_flink_config(&name, &text) {
        Ok(settings) => settings,
        Err(ConfigError::Rejected { report, .. }) => {
            eprint!("{report}");
            eprintln!("flink-ha: the JobManager does not start with a configuration that has errors");
            return Ok(ExitCode::from(1));
        }
        Err(error) => anyhow::bail!(error),
    };
    if args.recover_from_older_checkpoint {
        settings.on_missing_checkpoint = MissingCheckpoint::FallBackToOlder;
    }
    if let Some(offset_ms) = args.wall_clock_offset {
        tracing::warn!(
            offset_ms,
            "this process's wall clock runs off by an offset (--wall-clock-offset)"
        );
        flink_ha_runtime::clock::set_wall_clock_offset(offset_ms);
    }
    for finding in &settings.report.findings {
        tracing::warn!(rule = finding.rule.as_str(), "{}", finding.message);
    }
    let history = match &args.history {
        Some(path) => {
            History::open(path).with_context(|| format!("cannot open the history file {}", path.display()))?
        }
        None => History::disabled(),
    };
    let orphan_sweep = if args.no_orphan_sweep {
        None
    } else {
        let floor = sweep::min_age_floor(&settings.election);
        anyhow::ensure!(
            args.orphan_min_age >= floor,
            "--orphan-min-age {:?} is too young: with a lease of {:?} and {} retries ({}), a pointer may still land on a payload up to {floor:?} old",
            args.orphan_min_age,
            settings.election.lease_duration,
            settings.election.max_retries,
            args.config.display()
        );
        Some(OrphanSweep {
            interval: args.orphan_sweep_interval,
            min_age: args.orphan_min_age,
        })
    };
    let options = JobManagerOptions {
        address: args.address.clone(),
        rest_address: args.rest_address.clone(),
        jobs: args.jobs,
        checkpoint_interval: args.checkpoint_interval,
        finish_after: args.finish_after,
        history,
        orphan_sweep,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("cannot reach Kubernetes (KUBECONFIG, ~/.kube/config or the in-cluster account)")?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let why = crate::signal::termination().await;
            tracing::info!("{why}: stopping, releasing leadership");
            let _ = stop.send(true);
        });
        jobmanager::run(client, settings, options, stopped)
            .await
            .context("the JobManager failed")
    })?;
    Ok(ExitCode::SUCCESS)
}
