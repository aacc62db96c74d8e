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

#[cfg(test)]
mod tests {
    //! The bundle rules on facts built by hand; `tests/fixtures/ha4*` run them from files.

    use super::*;

    fn config(cluster_id: &str, kind: HaKind, storage_dir: Option<&str>) -> ConfigFact {
        ConfigFact {
            cluster_id: Some(cluster_id.to_owned()),
            kind,
            storage_dir: storage_dir.map(|dir| (dir.to_owned(), Some(Pos::new(3, 31)))),
            from_configmap: true,
        }
    }

    fn deployment(cluster_id: &str, replicas: i64) -> DeploymentFact {
        DeploymentFact {
            name: format!("{cluster_id}-jobmanager"),
            cluster_id: cluster_id.to_owned(),
            replicas,
            pos: Some(Pos::new(7, 13)),
        }
    }

    fn rules(findings: &[Vec<Finding>]) -> Vec<Vec<RuleId>> {
        findings.iter().map(|f| f.iter().map(|f| f.rule).collect()).collect()
    }

    #[test]
    fn standby_jobmanagers_beside_a_config_without_ha_are_ha401_on_the_deployment() {
        let facts = [
            Facts {
                configs: vec![config("orders", HaKind::None, None)],
                ..Facts::default()
            },
            Facts {
                deployments: vec![deployment("orders", 2)],
                ..Facts::default()
            },
        ];
        assert_eq!(
            rules(&check(&facts, &["cm.yaml", "deploy.yaml"])),
            [vec![], vec![RuleId::HA401]]
        );

        let one_replica = [
            facts[0].clone(),
            Facts {
                deployments: vec![deployment("orders", 1)],
                ..Facts::default()
            },
        ];
        assert_eq!(rules(&check(&one_replica, &["a", "b"])), [vec![], vec![]]);
        let other_cluster = [
            facts[0].clone(),
            Facts {
                deployments: vec![deployment("payments", 2)],
                ..Facts::default()
            },
        ];
        assert_eq!(rules(&check(&other_cluster, &["a", "b"])), [vec![], vec![]]);
    }

    #[test]
    fn two_storage_dirs_for_one_cluster_id_are_ha402_naming_the_first() {
        let facts = [
            Facts {
                configs: vec![config("orders", HaKind::Kubernetes, Some("s3://a/ha/"))],
                ..Facts::default()
            },
            Facts {
                configs: vec![config("orders", HaKind::Kubernetes, Some("s3://b/ha"))],
                ..Facts::default()
            },
        ];
        let findings = check(&facts, &["one.yaml", "two.yaml"]);
        assert_eq!(rules(&findings), [vec![], vec![RuleId::HA402]]);
        assert!(
            findings[1][0].message.contains("at one.yaml:3"),
            "{}",
            findings[1][0].message
        );

        // A trailing slash is the same directory.
        let same = [
            facts[0].clone(),
            Facts {
                configs: vec![config("orders", HaKind::Kubernetes, Some("s3://a/ha"))],
                ..Facts::default()
            },
        ];
        assert_eq!(rules(&check(&same, &["a", "b"])), [vec![], vec![]]);
    }

    #[test]
    fn the_runtimes_entries_beside_flinks_for_one_cluster_id_are_ha208() {
        let pointers = |config_map: &str, flink: bool| PointerFormatFact {
            cluster_id: "orders".to_owned(),
            config_map: config_map.to_owned(),
            flink_key: flink.then(|| "checkpointID-0000000000000000001".to_owned()),
            runtime_key: (!flink).then(|| ("flink-ha.checkpointID-0000000000000000001".to_owned(), None)),
        };
        let facts = [
            Facts {
                pointer_formats: vec![pointers("orders-a-config-map", false)],
                ..Facts::default()
            },
            Facts {
                pointer_formats: vec![pointers("orders-b-config-map", true)],
                ..Facts::default()
            },
        ];
        assert_eq!(rules(&check(&facts, &["a", "b"])), [vec![RuleId::HA208], vec![]]);
    }
}
