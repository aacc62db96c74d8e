//! `flink-ha audit`: what admission cannot see — objects that existed before the webhook.
//! Lints every `flink-config-*` ConfigMap, FlinkDeployment, FlinkSessionJob, JobManager
//! Deployment and HA ConfigMap in scope as one bundle, through the same core as `lint`,
//! and adds the HA state rules (HA210–HA212) of every cluster id found. Findings are
//! placed on the live objects (`namespace/kind/name`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use flink_ha_policy::ha_layout::HaConfigMapName;
use flink_ha_policy::ha_state::{self, ObjectFinding};
use flink_ha_policy::{InputFormat, LintInput, LintRun, Report};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};

use crate::inspect::OutputFormat;
use crate::live::{self, Scope};

#[derive(Args)]
pub struct AuditArgs {
    /// Namespace to audit (default: the kubeconfig's).
    #[arg(short = 'n', long, value_name = "NAMESPACE", conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,

    /// Audit every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Output format (the same contract as `flink-ha lint`).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

pub fn run(args: &AuditArgs) -> Result<ExitCode> {
    live::block_on(audit(args))
}

/// One object to lint: its `namespace/kind/name` and its manifest.
struct Rendered {
    path: String,
    manifest: String,
}

fn render<K: serde::Serialize>(
    namespace: Option<&str>,
    kind: &str,
    name: Option<&str>,
    object: &K,
) -> Result<Rendered> {
    let path = format!("{}/{kind}/{}", namespace.unwrap_or(""), name.unwrap_or(""));
    let manifest = serde_yaml::to_string(object).with_context(|| format!("rendering {path}"))?;
    Ok(Rendered { path, manifest })
}

async fn audit(args: &AuditArgs) -> Result<ExitCode> {
    let client = live::client().await?;
    let scope = Scope::new(args.namespace.as_deref(), args.all_namespaces, &client);
    let mut objects = Vec::new();

    let configmaps = live::list_configmaps(&client, &scope).await?;
    for seen in &configmaps {
        let name = &seen.record.name;
        if name.starts_with("flink-config-") || HaConfigMapName::parse(name).is_some() {
            objects.push(render(
                Some(&seen.record.namespace),
                "ConfigMap",
                Some(name),
                &seen.object,
            )?);
        }
    }
    let deployments: Api<Deployment> = scope.api(&client);
    for d in deployments
        .list(&ListParams::default().labels("component=jobmanager"))
        .await
        .with_context(|| format!("listing Deployments in {}", scope.describe()))?
    {
        objects.push(render(
            d.metadata.namespace.as_deref(),
            "Deployment",
            d.metadata.name.as_deref(),
            &d,
        )?);
    }
    for kind in ["FlinkDeployment", "FlinkSessionJob"] {
        match scope.operator_api(&client, kind).list(&ListParams::default()).await {
            Ok(list) => {
                for o in list {
                    objects.push(render(
                        o.metadata.namespace.as_deref(),
                        kind,
                        o.metadata.name.as_deref(),
                        &o,
                    )?);
                }
            }
            // The operator's CRDs are not installed: nothing of that kind.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("listing {kind}s")),
        }
    }

    // One bundle, so the cross-object rules (HA4xx) see everything.
    let inputs: Vec<LintInput<'_>> = objects
        .iter()
        .map(|o| LintInput {
            name: &o.path,
            bytes: o.manifest.as_bytes(),
        })
        .collect();
    let mut reports = flink_ha_policy::lint_inputs(&inputs, InputFormat::Kubernetes);
    for report in &mut reports {
        // Positions point into a rendering nobody sees; the object path and key say where.
        for finding in &mut report.findings {
            finding.line = None;
            finding.column = None;
        }
    }
    let mut files: Vec<(String, Report)> = objects.iter().map(|o| o.path.clone()).zip(reports).collect();

    let now = live::server_time(&client).await?;
    let records: Vec<_> = configmaps.iter().map(|c| c.record.clone()).collect();
    let mut clusters = ha_state::read_clusters(&records, now, None);
    live::apply_workloads(&mut clusters, &live::workloads(&client, &scope).await?);
    for ObjectFinding { object, finding } in ha_state::state_findings(&clusters) {
        match files.iter_mut().find(|(path, _)| *path == object) {
            Some((_, report)) => report.findings.push(finding),
            None => files.push((
                object,
                Report {
                    findings: vec![finding],
                },
            )),
        }
    }
    let audited = files.len();
    files.retain(|(_, report)| !report.findings.is_empty());
    let run = LintRun::new(files);
    match args.format {
        OutputFormat::Text => {
            print!("{}", run.to_text());
            eprintln!("flink-ha: audited {audited} object(s) in {}", scope.describe());
        }
        OutputFormat::Json => println!("{}", run.to_json_pretty()),
        OutputFormat::Sarif => println!("{}", run.to_sarif()),
    }
    Ok(if run.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
