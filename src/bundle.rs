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
    pub cluster_id: Option<String>,
    pub kind: HaKind,
    pub storage_dir: Option<(String, Option<Pos>)>,
    /// From a `flink-config-<id>` ConfigMap (what a JobManager Deployment mounts).
    pub from_configmap: bool,
}

/// One Deployment seen in the bundle.
#[derive(Clone, Debug)]
pub struct DeploymentFact {
    pub name: String,
    /// The `app` label, else the name (native Flink names the Deployment after the id).
    pub cluster_id: String,
    pub replicas: i64,
    pub pos: Option<Pos>,
}

#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub configs: Vec<ConfigFact>,
    pub deployments: Vec<DeploymentFact>,
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
