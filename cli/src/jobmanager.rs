//! `flink-ha jobmanager`: the runtime's JobManager-like process (leader election,
//! leader entries, fake jobs that checkpoint, recovery on takeover) against the cluster
//! of the current kubeconfig. For failover tests and the demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use flink_ha_runtime::history::History;
use flink_ha_runtime::jobmanager::{self, JobManagerOptions};
use flink_ha_runtime::{ConfigError, HaSettings};

#[derive(Args)]
pub struct JobManagerArgs {
    /// The Flink configuration (config.yaml or flink-conf.yaml). It is linted first; the
    /// process does not start on error findings.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The address published in the leader entries.
    #[arg(long, default_value = "pekko.tcp://flink@127.0.0.1:6123/user/rpc/dispatcher_1")]
    address: String,
    /// Fake jobs to submit when the cluster has none.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// How often each job completes a checkpoint (Flink's duration syntax: `1 s`, `500ms`).
    #[arg(long, default_value = "1 s", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// End each job once it completed checkpoint N (its result recorded, its HA data
    /// cleaned up) and submit a new one in its place. Without it, jobs run until the
    /// process stops.
    #[arg(long, value_name = "N")]
    finish_after: Option<u64>,
    /// Append what this process does (leadership, recoveries, checkpoints, job ends)
    /// to FILE as JSON lines, for the nemesis test's checker.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    flink_ha_policy::duration::parse(text)
}

pub fn run(args: &JobManagerArgs) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(&args.config).with_context(|| format!("cannot read {}", args.config.display()))?;
    let name = args.config.display().to_string();
    let settings = match HaSettings::from_flink_config(&name, &text) {
        Ok(settings) => settings,
        Err(ConfigError::Rejected { report, .. }) => {
            eprint!("{report}");
            eprintln!("flink-ha: the JobManager does not start with a configuration that has errors");
            return Ok(ExitCode::from(1));
        }
        Err(error) => anyhow::bail!(error),
    };
    for finding in &settings.report.findings {
        tracing::warn!(rule = finding.rule.as_str(), "{}", finding.message);
    }
    let history = match &args.history {
        Some(path) => {
            History::open(path).with_context(|| format!("cannot open the history file {}", path.display()))?
        }
        None => History::disabled(),
    };
    let options = JobManagerOptions {
        address: args.address.clone(),
        jobs: args.jobs,
        checkpoint_interval: args.checkpoint_interval,
        finish_after: args.finish_after,
        history,
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
