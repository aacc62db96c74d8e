//! `flink-ha`: lint Flink HA configuration, review AdmissionReviews offline, print the
//! rule catalogue and the option schema, read and clean up live clusters' HA state
//! (`inspect`, `gc`, `audit`), run the admission webhook and the HA runtime's JobManager
//! process.
//!
//! Exit codes: 0 no error findings (or allowed), 1 error findings (or denied, or a gc
//! deletion refused or failed), 2 usage or I/O problem, with a one-line reason on stderr.

// Bad input is an error value, never a panic: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod audit;
mod backup;
#[cfg(feature = "demo")]
mod demo;
mod examples;
mod gc;
mod inspect;
mod jobmanager;
mod lint;
mod live;
mod review;
mod rule_arg;
mod settings;
mod signal;
mod storage_access;
mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "flink-ha",
    version,
    about = "Kubernetes high availability for Apache Flink: lint configs, review admissions, inspect and clean up live HA state.",
    long_about = None,
    after_help = "Exit codes: 0 no errors, 1 error findings (or a denied review, or a gc deletion refused or failed), 2 usage or I/O problem."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lint Flink configs and Kubernetes manifests (config.yaml, flink-conf.yaml,
    /// flink-config ConfigMaps, HA ConfigMaps, FlinkDeployments, Deployments).
    Lint(lint::LintArgs),
    /// Print the rule catalogue.
    Rules {
        #[arg(long, value_enum, default_value_t = RulesFormat::Text)]
        format: RulesFormat,
    },
    /// Print the JSON Schema of the HA options (for yaml-language-server and editors).
    Schema {
        /// The schema of the settings file instead (.flink-ha.yaml, webhook --settings).
        #[arg(long)]
        settings: bool,
    },
    /// Read an AdmissionReview and print the response the webhook would send.
    Review(review::ReviewArgs),
    /// Show a cluster's HA state, live or from a `kubectl get cm -o yaml` dump: its HA
    /// ConfigMaps and their size, the leader and its lease, each job's plan, checkpoints
    /// and counter, and (with --config or --storage) whether each payload exists and the
    /// checkpoint path to restore from by hand.
    Inspect(inspect::InspectArgs),
    /// Find the HA state of clusters that are gone (ConfigMaps, payloads, blobs,
    /// job-result-store entries) and, with --yes, delete it. A dry run by default.
    Gc(gc::GcArgs),
    /// Save the HA ConfigMaps of a cluster (or all in scope) and the list of payloads they
    /// name, with sizes and checksums, to one file; or, with --restore FILE, re-create the
    /// ones that were deleted (never over existing ones, only while their payloads exist).
    Backup(backup::BackupArgs),
    /// Lint what is already in the cluster (flink-config ConfigMaps, HA ConfigMaps,
    /// FlinkDeployments, FlinkSessionJobs, JobManager Deployments), as `lint` would.
    Audit(audit::AuditArgs),
    /// Run a JobManager-like process on the HA runtime: contend for leadership, publish
    /// its address, run fake jobs that checkpoint, recover them on takeover. Logs go to
    /// stderr (RUST_LOG to filter).
    Jobmanager(jobmanager::JobManagerArgs),
    /// Run the admission webhook: an HTTPS server that reviews AdmissionReviews with
    /// the policy component in wasmtime (/validate, /healthz, /readyz, /metrics).
    Webhook(Box<webhook::WebhookArgs>),
    /// Show HA at work on this machine: a local control plane, two JobManagers, a leader
    /// killed, the Deployment deleted, every job recovered at its latest checkpoint.
    /// Needs the control plane's binaries (scripts/provision-kube-test-assets).
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum RulesFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its own story on stdout; kube-client's error line for each
    // not-yet-ready probe of the starting API server would only bury it.
    let default_filter = match cli.command {
        #[cfg(feature = "demo")]
        Command::Demo(_) => "warn,kube_client::client::builder=off",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: a pod's log or a file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Lint(args) => lint::run(&args),
        Command::Rules { format } => {
            print_rules(format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { settings } => {
            let schema = if settings {
                flink_ha_policy::settings::schema()
            } else {
                flink_ha_policy::schema::schema()
            };
            println!("{}", serde_json::to_string_pretty(&schema).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Command::Review(args) => review::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Gc(args) => gc::run(&args),
        Command::Backup(args) => backup::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Jobmanager(args) => jobmanager::run(&args),
        Command::Webhook(args) => webhook::run(&args),
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the reason with its causes.
            eprintln!("flink-ha: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A duration argument in Flink's syntax (`90 d`, `1 h`, `30 s`).
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    flink_ha_policy::duration::parse(s).map_err(|e| e.to_string())
}

fn print_rules(format: RulesFormat) {
    let catalogue = flink_ha_policy::rules::catalogue();
    match format {
        RulesFormat::Json => println!("{}", flink_ha_policy::rules::catalogue_json()),
        RulesFormat::Text => {
            for r in &catalogue {
                println!("{}  {:<7}  {}", r.id, r.severity.as_str(), r.title);
                println!("       {}", r.explanation);
            }
        }
    }
}
