//! HA4xx: rules across the documents of one lint run (a multi-document file or several
//! files given together), from facts each document leaves behind.

use std::collections::BTreeMap;

use crate::finding::Finding;
use crate::ha_config::HaKind;
use crate::options::display_value;
use crate::rules::RuleId;
use crate::yaml::Pos;

/// One Flink configuration seen in the bundle.
#[derive(Clone, Debug)]
pub struct ConfigFact {
    /// The cluster id, if known: a FlinkDeployment's name, else `kubernetes.cluster-id`,
    /// else the id in the ConfigMap's name.
    pub cluster_id: Option<String>,
    /// Which HA services the configuration turns on.
    pub kind: HaKind,
    /// The `high-availability.storageDir` value and where it is set, if set.
    pub storage_dir: Option<(String, Option<Pos>)>,
    /// From a `flink-config-<id>` ConfigMap (what a JobManager Deployment mounts).
    pub from_configmap: bool,
}

/// One Deployment seen in the bundle.
#[derive(Clone, Debug)]
pub struct DeploymentFact {
    /// The Deployment's `metadata.name`.
    pub name: String,
    /// The `app` label, else the name (native Flink names the Deployment after the id).
    pub cluster_id: String,
    /// `spec.replicas` (1 when absent or not a number).
    pub replicas: i64,
    /// Where `spec.replicas` is, else where the Deployment starts.
    pub pos: Option<Pos>,
}

/// The pointer entries of one HA ConfigMap, by whose format they are in.
#[derive(Clone, Debug)]
pub struct PointerFormatFact {
    /// The cluster id the ConfigMap belongs to (from its name).
    pub cluster_id: String,
    /// The ConfigMap's name.
    pub config_map: String,
    /// A key of Flink's (`executionPlan-…`, `checkpointID-…`), if any.
    pub flink_key: Option<String>,
    /// A key of `flink-ha jobmanager`'s (`flink-ha.…`), if any, and where.
    pub runtime_key: Option<(String, Option<Pos>)>,
}

/// What one document leaves behind for the bundle rules.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The Flink configurations in the document.
    pub configs: Vec<ConfigFact>,
    /// The Deployments in the document.
    pub deployments: Vec<DeploymentFact>,
    /// The HA ConfigMaps in the document that hold pointer entries.
    pub pointer_formats: Vec<PointerFormatFact>,
}

/// Runs the bundle rules; `facts[i]` belong to input `i`, and so do the findings
/// returned for it.
pub fn check(facts: &[Facts], names: &[&str]) -> Vec<Vec<Finding>> {
    let mut out: Vec<Vec<Finding>> = vec![Vec::new(); facts.len()];

    for (i, f) in facts.iter().enumerate() {
        for d in f.deployments.iter().filter(|d| d.replicas > 1) {
            let ha_off = facts.iter().flat_map(|f| &f.configs).find(|c| {
                c.from_configmap && c.cluster_id.as_deref() == Some(d.cluster_id.as_str()) && !c.kind.is_on()
            });
            if ha_off.is_some() {
                out[i].push(
                    Finding::new(
                        RuleId::HA401,
                        format!(
                            "Deployment `{}` runs {} JobManagers but `flink-config-{}` has HA off: no leader election, the replicas act as independent leaders",
                            d.name, d.replicas, d.cluster_id
                        ),
                        format!("turn on HA in `flink-config-{}` or scale the Deployment to 1", d.cluster_id),
                    )
                    .path("spec.replicas")
                    .at(d.pos),
                );
            }
        }
    }

    // HA208 across ConfigMaps: the runtime's entries in one, Flink's in another of the same
    // cluster id (within one ConfigMap, the object rule reports it).
    for (i, f) in facts.iter().enumerate() {
        for mine in f.pointer_formats.iter().filter(|p| p.flink_key.is_none()) {
            let Some((runtime_key, pos)) = &mine.runtime_key else {
                continue;
            };
            let flinks = facts
                .iter()
                .flat_map(|f| &f.pointer_formats)
                .find(|other| other.cluster_id == mine.cluster_id && other.flink_key.is_some());
            if let Some(other) = flinks {
                out[i].push(
                    Finding::new(
                        RuleId::HA208,
                        format!(
                            "`{}` holds `flink-ha jobmanager`'s `{runtime_key}` and `{}` holds Flink's `{}`: a Flink JobManager and the runtime both ran jobs on cluster id `{}`",
                            mine.config_map,
                            other.config_map,
                            other.flink_key.as_deref().unwrap_or_default(),
                            mine.cluster_id
                        ),
                        "give the Flink cluster and the runtime each its own cluster id",
                    )
                    .path(format!("data.{runtime_key}"))
                    .at(*pos),
                );
            }
        }
    }

    // Cluster id -> (first storageDir seen, where).
    let mut first: BTreeMap<&str, (String, usize, Option<Pos>)> = BTreeMap::new();
    for (i, f) in facts.iter().enumerate() {
        for c in &f.configs {
            let (Some(id), Some((dir, pos))) = (&c.cluster_id, &c.storage_dir) else {
                continue;
            };
            let norm = dir.trim().trim_end_matches('/').to_string();
            match first.get(id.as_str()) {
                None => {
                    first.insert(id, (norm, i, *pos));
                }
                Some((seen, at, seen_pos)) if *seen != norm => {
                    let where_ = match seen_pos {
                        Some(p) if *at == i => format!("line {}", p.line),
                        Some(p) => format!("{}:{}", names.get(*at).copied().unwrap_or("?"), p.line),
                        None => names.get(*at).copied().unwrap_or("?").to_string(),
                    };
                    out[i].push(
                        Finding::new(
                            RuleId::HA402,
                            format!(
                                "cluster id `{id}` has storageDir `{}` here but `{}` at {where_}",
                                display_value("high-availability.storageDir", &norm),
                                display_value("high-availability.storageDir", seen)
                            ),
                            "use one storageDir per cluster id, or give the clusters different ids",
                        )
                        .key("high-availability.storageDir")
                        .at(*pos),
                    );
                }
                Some(_) => {}
            }
        }
    }
    out
}
