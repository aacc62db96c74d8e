//! `flink-ha review`: an AdmissionReview from a file or stdin, through the same policy
//! the webhook runs, to the response it would send (like `kwctl run`).

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use flink_ha_policy::{ReviewContext, ReviewError, ReviewSettings, review_in_context};

#[derive(Args)]
pub struct ReviewArgs {
    /// The AdmissionReview JSON, or `-` for standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    file: String,

    /// Review as of this time (RFC 3339, e.g. 2026-11-24T10:00:00Z) instead of now;
    /// decides whether a leader record is live (HA205).
    #[arg(long, value_name = "TIME")]
    now: Option<jiff::Timestamp>,

    #[command(flatten)]
    disabled: crate::rule_arg::DisabledRules,

    /// Admit, and send what would deny as warnings (the webhook's --warn-only).
    #[arg(long)]
    warn_only: bool,

    /// The webhook's settings file: its rules set to `off` and its exemptions apply as
    /// in the webhook.
    #[arg(long, value_name = "FILE")]
    settings: Option<std::path::PathBuf>,

    /// Labels of the request's namespace (`key=value`, repeatable), for exemptions with
    /// a namespaceSelector; without them those exemptions do not apply, as in a webhook
    /// that cannot read the namespace.
    #[arg(long = "namespace-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    namespace_labels: Vec<(String, String)>,

    /// What the webhook would look up beside the request: the cluster ConfigMap(s) as
    /// YAML or JSON (`kubectl get configmap <cluster-id>-cluster-config-map -o yaml`; a
    /// List or several documents too). HA205 judges a job ConfigMap by its cluster's
    /// lease; a review that needs it and has no --context says which ConfigMap to give.
    /// An empty file: the cluster ConfigMap does not exist.
    #[arg(long, value_name = "FILE")]
    context: Option<std::path::PathBuf>,
}

/// The ConfigMaps in a `--context` file, each as JSON: one object, a `List`, or several
/// YAML documents.
fn read_context(path: &std::path::Path) -> Result<ReviewContext> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut found = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_json::Value::deserialize(document)
            .with_context(|| format!("{} is not YAML or JSON", path.display()))?;
        match value["kind"].as_str() {
            _ if value.is_null() => {}
            Some("List" | "ConfigMapList") => {
                for item in value["items"].as_array().into_iter().flatten() {
                    found.push(item.to_string());
                }
            }
            Some("ConfigMap") => found.push(value.to_string()),
            other => bail!(
                "{}: expected ConfigMaps (one, a List, or several documents), found kind {}",
                path.display(),
                other.unwrap_or("(none)")
            ),
        }
    }
    Ok(ReviewContext::Found(found))
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

pub fn run(args: &ReviewArgs) -> Result<ExitCode> {
    let mut body = String::new();
    if args.file == "-" {
        std::io::stdin()
            .read_to_string(&mut body)
            .context("cannot read standard input")?;
    } else {
        body = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file))?;
    }
    let now = args.now.unwrap_or_else(jiff::Timestamp::now).as_millisecond();
    let mut settings = ReviewSettings {
        disabled_rules: args.disabled.ids(),
        warn_only: args.warn_only,
        exemptions: Vec::new(),
        namespace_labels: (!args.namespace_labels.is_empty()).then(|| args.namespace_labels.iter().cloned().collect()),
    };
    if let Some(path) = &args.settings {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = flink_ha_policy::settings::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
        settings
            .disabled_rules
            .extend(file.rules_off().map(|rule| rule.as_str().to_string()));
        settings.exemptions = file.exemptions;
    }
    let context = args.context.as_deref().map(read_context).transpose()?;
    let reviewed = match review_in_context(&body, now, &settings, context.as_ref()) {
        Ok(reviewed) => reviewed,
        Err(ReviewError::ContextNeeded(refs)) => {
            let names: Vec<String> = refs.iter().map(|r| format!("{}/{}", r.namespace, r.name)).collect();
            let fetch: Vec<String> = refs
                .iter()
                .map(|r| format!("kubectl get configmap {} -n {} -o yaml", r.name, r.namespace))
                .collect();
            bail!(
                "cannot review {}: the decision depends on the lease in ConfigMap {}; the webhook reads it from the API server, here pass it with --context FILE (`{} > FILE`; an empty file if it does not exist)",
                args.file,
                names.join(" and "),
                fetch.join("; ")
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot review {}", args.file)),
    };
    println!("{}", reviewed.response);
    Ok(if reviewed.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
