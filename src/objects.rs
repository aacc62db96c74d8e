//! Kubernetes objects: which documents matter (ConfigMaps, FlinkDeployments,
//! FlinkSessionJobs, Deployments), the HA2xx ConfigMap rules, the HA3xx operator rules,
//! and the Flink configuration embedded in `flink-config-<id>` ConfigMaps.

use crate::bundle::{ConfigFact, DeploymentFact, Facts, PointerFormatFact};
use crate::config::{self, ConfigFile, FlinkConfig};
use crate::finding::{Finding, Severity};
use crate::ha_config::{self, HaKind, Origin};
use crate::ha_layout::{
    self, CHECKPOINT_ID_DIGITS, CHECKPOINT_KEY_PREFIX, CONFIGMAP_LIMIT, COUNTER_KEY, HaConfigMapName,
    JAVA_SERIALIZED_BASE64_PREFIX, LABEL_APP, LABEL_CONFIGMAP_TYPE, LABEL_CONFIGMAP_TYPE_VALUE, LABEL_TYPE,
    LABEL_TYPE_VALUE, LEADER_ENTRY_PREFIX, MAX_CLUSTER_ID_LENGTH, REST_SERVER, RUNTIME_KEY_PREFIX,
};
use crate::leader_record::{self, LeaderRecord};
use crate::options::{self, display_value};
use crate::rules::RuleId;
use crate::yaml::{Node, Pos, Style, Value};

/// What linting one document gives: its findings, and the facts it leaves for the
/// bundle rules.
#[derive(Default)]
pub struct DocumentOutcome {
    /// What the rules found in the document.
    pub findings: Vec<Finding>,
    /// What the document leaves behind for the bundle rules.
    pub facts: Facts,
}

/// Lints one Kubernetes object (a document with `apiVersion` and `kind`).
pub fn lint_object(root: &Node, out: &mut DocumentOutcome) {
    let kind = root.str_at(&["kind"]).unwrap_or("");
    let api = root.str_at(&["apiVersion"]).unwrap_or("");
    let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    match (group, kind) {
        ("", "ConfigMap") => configmap(root, out),
        ("flink.apache.org", "FlinkDeployment") => flink_deployment(root, out),
        ("flink.apache.org", "FlinkSessionJob") => flink_session_job(root, out),
        ("apps", "Deployment") => deployment(root, out),
        ("", "List") => {
            for item in root.get("items").and_then(Node::as_seq).unwrap_or(&[]) {
                if item.as_map().is_some() {
                    lint_object(item, out);
                }
            }
        }
        ("admission.k8s.io", "AdmissionReview") => {
            if let Some(object) = root.path(&["request", "object"]).filter(|o| o.as_map().is_some()) {
                lint_object(object, out);
            }
        }
        _ => {
            let name = root.str_at(&["metadata", "name"]).unwrap_or("");
            let what = if kind.is_empty() {
                "a document without `kind`".to_string()
            } else {
                format!("`{kind}` `{name}`")
            };
            out.findings.push(
                Finding::new(
                    RuleId::HA005,
                    format!("{what} is not something the linter checks; skipped"),
                    "the linter reads Flink configs, ConfigMaps, FlinkDeployments, FlinkSessionJobs and Deployments",
                )
                .path("kind")
                .at(root.entry("kind").map_or(root.pos, |(k, _)| k.pos)),
            );
        }
    }
}

/// Where `metadata:` is written, for findings about a field that is missing from it.
fn metadata_pos(root: &Node) -> Option<Pos> {
    root.entry("metadata").map_or(root.pos, |(k, _)| k.pos)
}

fn owner_refs(root: &Node) -> Option<(&Node, usize)> {
    let (key, value) = root.get("metadata")?.entry("ownerReferences")?;
    let n = value.as_seq().map_or(0, <[Node]>::len);
    (n > 0).then_some((key, n))
}

fn labels(root: &Node) -> Option<&Node> {
    root.path(&["metadata", "labels"]).filter(|n| n.as_map().is_some())
}

fn label<'a>(root: &'a Node, name: &str) -> Option<&'a str> {
    labels(root)?.str_at(&[name])
}

/// Cluster id from the name of an HA ConfigMap, when the name has an HA pattern.
fn ha_name_cluster_id(name: &str) -> Option<&str> {
    HaConfigMapName::parse(name).map(|name| name.cluster_id())
}

/// Whether a ConfigMap is one of Flink's HA ConfigMaps (spec/rules.md, HA2xx).
pub fn is_ha_configmap(root: &Node) -> bool {
    let name = root.str_at(&["metadata", "name"]).unwrap_or("");
    root.path(&["metadata", "annotations", leader_record::ANNOTATION])
        .is_some()
        || (label(root, LABEL_TYPE) == Some(LABEL_TYPE_VALUE)
            && label(root, LABEL_CONFIGMAP_TYPE) == Some(LABEL_CONFIGMAP_TYPE_VALUE))
        || ha_name_cluster_id(name).is_some()
}

fn configmap(root: &Node, out: &mut DocumentOutcome) {
    let name = root.str_at(&["metadata", "name"]).unwrap_or("");
    let ha = is_ha_configmap(root);
    let flink_config = name.strip_prefix("flink-config-").filter(|id| !id.is_empty());
    if !ha && flink_config.is_none() {
        return;
    }
    if ha {
        ha_configmap(root, name, out);
    }
    if let Some(id) = flink_config {
        if owner_refs(root).is_none() {
            out.findings.push(
                Finding::new(
                    RuleId::HA203,
                    format!("`{name}` has no owner reference: nothing removes it when the cluster is deleted"),
                    format!("let the JobManager Deployment `{id}` own it (ownerReferences with controller: true)"),
                )
                .path("metadata.ownerReferences")
                .at(metadata_pos(root)),
            );
        }
        embedded_configs(root, id, out);
    }
    configmap_size(root, name, out);
}

/// The HA2xx rules of one of Flink's HA ConfigMaps.
fn ha_configmap(root: &Node, name: &str, out: &mut DocumentOutcome) {
    owner_references(root, name, out);
    ha_labels(root, name, out);
    leader_annotation(root, out);
    ha_entries(root, out);
    pointer_formats(root, name, out);
}

/// HA201: an owner reference has the garbage collector delete the HA data with its owner.
fn owner_references(root: &Node, name: &str, out: &mut DocumentOutcome) {
    let Some((key, n)) = owner_refs(root) else {
        return;
    };
    out.findings.push(
        Finding::new(
            RuleId::HA201,
            format!(
                "HA ConfigMap `{name}` has {n} owner reference{}: the garbage collector deletes it with its owner and every job's HA metadata is lost",
                if n == 1 { "" } else { "s" }
            ),
            "remove metadata.ownerReferences; HA ConfigMaps must outlive the JobManager Deployment",
        )
        .path("metadata.ownerReferences")
        .at(key.pos),
    );
}

/// HA202: the labels Flink selects its HA ConfigMaps by are missing or name another cluster.
fn ha_labels(root: &Node, name: &str, out: &mut DocumentOutcome) {
    let id = ha_name_cluster_id(name);
    let mut problems = Vec::new();
    match (label(root, LABEL_APP), id) {
        (None, _) => problems.push(format!("label `{LABEL_APP}` is missing")),
        (Some(app), Some(id)) if app != id => problems.push(format!(
            "label `{LABEL_APP}={app}` does not match cluster id `{id}` in the name"
        )),
        _ => {}
    }
    if label(root, LABEL_TYPE).is_none() {
        problems.push(format!("label `{LABEL_TYPE}` is missing"));
    }
    if problems.is_empty() {
        return;
    }
    let expected = format!(
        "`{LABEL_APP}={}` and `{LABEL_TYPE}={LABEL_TYPE_VALUE}`",
        id.unwrap_or("<cluster-id>")
    );
    let at = root
        .path(&["metadata"])
        .and_then(|m| m.entry("labels"))
        .map_or_else(|| metadata_pos(root), |(k, _)| k.pos);
    out.findings.push(
        Finding::new(
            RuleId::HA202,
            format!(
                "HA ConfigMap `{name}`: {}; cleanup by label and watches miss it",
                problems.join(", ")
            ),
            format!("label it {expected}"),
        )
        .path("metadata.labels")
        .at(at),
    );
}

/// HA206: a leader annotation that is not a leader record.
fn leader_annotation(root: &Node, out: &mut DocumentOutcome) {
    let Some((key, value)) = root
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.entry(leader_record::ANNOTATION))
    else {
        return;
    };
    if let Err(why) = LeaderRecord::parse(value.as_str().unwrap_or("")) {
        out.findings.push(
            Finding::new(
                RuleId::HA206,
                format!("the leader annotation {why}"),
                "let Flink write the record, or remove the annotation so a leader can be elected afresh",
            )
            .path(format!("metadata.annotations.{}", leader_record::ANNOTATION))
            .at(key.pos),
        );
    }
}

/// HA206: data entries not in the format Flink writes (checkpoint keys, the counter,
/// leader entries).
fn ha_entries(root: &Node, out: &mut DocumentOutcome) {
    let Some(data) = root.get("data").and_then(Node::as_map) else {
        return;
    };
    for (k, v) in data {
        let Some(key) = k.as_str() else { continue };
        if let Some(message) = entry_problem(key, v.as_str().unwrap_or("")) {
            out.findings.push(
                Finding::new(
                    RuleId::HA206,
                    message,
                    "HA data is written by the JobManager; restore it from a backup or remove the entry",
                )
                .path(format!("data.{key}"))
                .at(k.pos),
            );
        }
    }
}

/// HA207: a value under one of Flink's pointer keys that Flink cannot decode; HA208:
/// Flink's entries and the runtime's in one ConfigMap.
fn pointer_formats(root: &Node, name: &str, out: &mut DocumentOutcome) {
    let Some(data) = root.get("data").and_then(Node::as_map) else {
        return;
    };
    let mut flink_key = None;
    let mut runtime_key = None;
    for (k, v) in data {
        let Some(key) = k.as_str() else { continue };
        if key.starts_with(RUNTIME_KEY_PREFIX) {
            runtime_key = runtime_key.or(Some((key, k.pos)));
            continue;
        }
        if !ha_layout::is_flink_pointer_key(key) {
            continue;
        }
        flink_key = flink_key.or(Some((key, k.pos)));
        let value = v.as_str().unwrap_or("");
        if !value.starts_with(JAVA_SERIALIZED_BASE64_PREFIX) {
            let what = if value.trim_start().starts_with('{') {
                "a JSON value (the pointer format of `flink-ha jobmanager` before 0.2)"
            } else {
                "not Base64 of a Java serialization stream"
            };
            out.findings.push(
                Finding::new(
                    RuleId::HA207,
                    format!(
                        "`{key}` is {what}: every Flink JobManager that takes the lock fails to start on it (a crash loop)"
                    ),
                    "remove the entry (a job whose plan or checkpoint is lost must be restored from a savepoint or a retained checkpoint), or let the JobManager that wrote it finish the job first",
                )
                .path(format!("data.{key}"))
                .at(k.pos),
            );
        }
    }
    if let Some(cluster_id) = HaConfigMapName::parse(name).map(|n| n.cluster_id())
        && (flink_key.is_some() || runtime_key.is_some())
    {
        out.facts.pointer_formats.push(PointerFormatFact {
            cluster_id: cluster_id.to_string(),
            config_map: name.to_string(),
            flink_key: flink_key.map(|(k, _)| k.to_string()),
            runtime_key: runtime_key.map(|(k, at)| (k.to_string(), at)),
        });
    }
    if let (Some((flink, _)), Some((runtime, at))) = (flink_key, runtime_key) {
        out.findings.push(
            Finding::new(
                RuleId::HA208,
                format!(
                    "Flink's `{flink}` and `flink-ha jobmanager`'s `{runtime}` in one ConfigMap: a Flink JobManager and the runtime both ran jobs on this cluster id"
                ),
                "give the Flink cluster and the runtime each its own cluster id",
            )
            .path(format!("data.{runtime}"))
            .at(at),
        );
    }
}

/// What is wrong with one HA data entry, if anything.
fn entry_problem(key: &str, value: &str) -> Option<String> {
    // The runtime's keys follow Flink's formats after their prefix.
    let in_flink_form = key.strip_prefix(RUNTIME_KEY_PREFIX).unwrap_or(key);
    if let Some(id) = in_flink_form.strip_prefix(CHECKPOINT_KEY_PREFIX) {
        (id.len() != CHECKPOINT_ID_DIGITS || !id.bytes().all(|b| b.is_ascii_digit())).then(|| {
            format!("checkpoint key `{key}` is not `{CHECKPOINT_KEY_PREFIX}` and {CHECKPOINT_ID_DIGITS} digits; recovery sorts keys as text and may pick the wrong checkpoint")
        })
    } else if in_flink_form == COUNTER_KEY {
        (value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit())).then(|| {
            format!(
                "`counter` is `{}`, not a decimal checkpoint id",
                display_value(key, value)
            )
        })
    } else if let Some(component) = in_flink_form.strip_prefix(LEADER_ENTRY_PREFIX) {
        match value.split_once(',') {
            Some((session, address))
                if component == REST_SERVER
                    && is_uuid(session)
                    && !(address.starts_with("http://") || address.starts_with("https://")) =>
            {
                Some(format!(
                    "leader entry for `{component}` has the address `{address}`, not an http(s) URL: Flink's REST clients find the leading REST endpoint there"
                ))
            }
            Some((session, address)) if is_uuid(session) && !address.is_empty() => None,
            _ => Some(format!(
                "leader entry for `{component}` is `{}`, not `<session-uuid>,<address>`",
                display_value(key, value)
            )),
        }
    } else {
        None
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn configmap_size(root: &Node, name: &str, out: &mut DocumentOutcome) {
    let mut total = 0usize;
    let mut at = None;
    for (field, binary) in [("data", false), ("binaryData", true)] {
        if let Some((k, map)) = root.entry(field) {
            at = at.or(k.pos);
            for (key, value) in map.as_map().unwrap_or(&[]) {
                total +=
                    ha_layout::configmap_entry_bytes(key.as_str().unwrap_or(""), value.as_str().unwrap_or(""), binary);
            }
        }
    }
    let (severity, verdict) = if total > CONFIGMAP_LIMIT {
        (Severity::Error, "over the 1 MiB limit: the API server rejects it")
    } else if total * 10 > CONFIGMAP_LIMIT * 8 {
        (
            Severity::Warning,
            "over 80 % of the 1 MiB limit: a few more entries and writes fail",
        )
    } else {
        return;
    };
    out.findings.push(
        Finding::new(
            RuleId::HA204,
            format!("ConfigMap `{name}` holds {total} bytes of data, {verdict}"),
            "retain fewer checkpoints (`execution.checkpointing.num-retained`) or split the configuration",
        )
        .severity(severity)
        .path("data")
        .at(at),
    );
}

/// Lints the `config.yaml` / `flink-conf.yaml` inside a `flink-config-<id>` ConfigMap
/// with positions mapped back into the manifest.
fn embedded_configs(root: &Node, cluster_id: &str, out: &mut DocumentOutcome) {
    let Some(data) = root.get("data").and_then(Node::as_map) else {
        return;
    };
    for (k, v) in data {
        let file = match k.as_str() {
            Some("config.yaml") => ConfigFile::ConfigYaml,
            Some("flink-conf.yaml") => ConfigFile::FlinkConf,
            _ => continue,
        };
        let Some(text) = v.as_str() else { continue };
        let origin = Origin::ConfigMap {
            cluster_id: cluster_id.to_string(),
        };
        let (mut findings, facts) = ha_config::lint_config_text(text, file, &origin);
        let placement = Placement::of(v);
        for f in &mut findings {
            placement.apply(f);
        }
        out.findings.extend(findings);
        if let Some(facts) = facts {
            out.facts.configs.push(ConfigFact {
                cluster_id: facts.cluster_id.or_else(|| Some(cluster_id.to_string())),
                kind: facts.kind,
                storage_dir: facts.storage_dir.map(|(s, p)| (s, p.and_then(|p| placement.map(p)))),
                from_configmap: true,
            });
        }
    }
}

/// How positions inside an embedded text map to the manifest.
enum Placement {
    /// A literal block (`|`): line `n` of the text is line `first_line + n - 1` of the
    /// manifest, shifted right by the block's indentation.
    Block { first_line: u32, indent: u32 },
    /// Anything else (quoted, folded, JSON): every finding points at the value itself.
    Fixed(Option<Pos>),
}

impl Placement {
    fn of(value: &Node) -> Placement {
        let Some(pos) = value.pos else {
            return Placement::Fixed(None);
        };
        let Value::Scalar {
            text,
            style: Style::Literal,
        } = &value.value
        else {
            return Placement::Fixed(Some(pos));
        };
        // The parser places a literal block at its first non-blank content character;
        // leading empty lines and that line's own extra indentation are in the text.
        let blank = text.len() - text.trim_start_matches('\n').len();
        let first = text[blank..].lines().next().unwrap_or("");
        let extra = first.len() - first.trim_start_matches(' ').len();
        Placement::Block {
            first_line: pos.line.saturating_sub(blank as u32),
            indent: (pos.column - 1).saturating_sub(extra as u32),
        }
    }

    fn map(&self, p: Pos) -> Option<Pos> {
        match self {
            Placement::Block { first_line, indent } => Some(Pos {
                line: first_line + p.line - 1,
                column: p.column + indent,
            }),
            Placement::Fixed(pos) => *pos,
        }
    }

    fn apply(&self, f: &mut Finding) {
        let mapped = match f.pos() {
            Some(p) => self.map(p),
            None => match self {
                Placement::Fixed(pos) => *pos,
                Placement::Block { .. } => None,
            },
        };
        f.line = mapped.map(|p| p.line);
        f.column = mapped.map(|p| p.column);
    }
}

/// `spec.flinkConfiguration`, flat (`key: "value"`) or nested YAML.
fn flink_configuration(root: &Node, out: &mut DocumentOutcome) -> FlinkConfig {
    let Some(node) = root.path(&["spec", "flinkConfiguration"]) else {
        return FlinkConfig::default();
    };
    if node.is_null() {
        return FlinkConfig::default();
    }
    if node.as_map().is_none() {
        out.findings.push(
            Finding::new(
                RuleId::HA001,
                "`spec.flinkConfiguration` must be a map of options",
                "write options as `key: value` entries under flinkConfiguration",
            )
            .path("spec.flinkConfiguration")
            .at(node.pos),
        );
        return FlinkConfig::default();
    }
    let (config, findings) = config::parse_standard(node);
    out.findings.extend(findings);
    for key in [options::K8S_CLUSTER_ID.key, options::K8S_NAMESPACE.key]
        .into_iter()
        .chain(std::iter::once(options::HA_CLUSTER_ID.key))
        .chain(options::HA_CLUSTER_ID.deprecated.iter().copied())
    {
        if let Some(e) = config.get(key) {
            out.findings.push(
                Finding::new(
                    RuleId::HA301,
                    format!("`{key}` is set by the operator from the resource; setting it in flinkConfiguration conflicts with it"),
                    format!("remove `{key}`; the cluster id is `metadata.name` and the namespace is the resource's"),
                )
                .key(key)
                .at(e.key_pos),
            );
        }
    }
    config
}

fn flink_deployment(root: &Node, out: &mut DocumentOutcome) {
    let name = root.str_at(&["metadata", "name"]).unwrap_or("");
    if !name.is_empty() && !ha_layout::is_valid_cluster_id(name, MAX_CLUSTER_ID_LENGTH) {
        out.findings.push(
            Finding::new(
                RuleId::HA304,
                format!(
                    "FlinkDeployment name `{name}` {}; it becomes the cluster id and part of object names",
                    ha_layout::cluster_id_problem(name, MAX_CLUSTER_ID_LENGTH)
                ),
                format!(
                    "rename it, e.g. `{}`",
                    ha_config::suggest_cluster_id(name, MAX_CLUSTER_ID_LENGTH)
                ),
            )
            .path("metadata.name")
            .at(root.path(&["metadata", "name"]).and_then(|n| n.pos)),
        );
    }
    let config = flink_configuration(root, out);
    let origin = Origin::FlinkDeployment { name: name.to_string() };
    let facts = ha_config::check(&config, &origin, &mut out.findings);
    let ha_on = facts.kind.is_on();

    let mode_node = root.path(&["spec", "job", "upgradeMode"]);
    let mode = mode_node.and_then(Node::as_str).unwrap_or("");
    let mode_pos = mode_node.and_then(|n| n.pos);
    if mode == "last-state" && !ha_on && facts.kind != HaKind::Invalid {
        out.findings.push(
            Finding::new(
                RuleId::HA302,
                "`upgradeMode: last-state` restores jobs from HA metadata, but HA is off",
                "set `high-availability.type: kubernetes` and `high-availability.storageDir` in flinkConfiguration",
            )
            .path("spec.job.upgradeMode")
            .at(mode_pos),
        );
    }
    if matches!(mode, "last-state" | "savepoint") && config.effective(options::CHECKPOINT_DIR).is_none() {
        out.findings.push(
            Finding::new(
                RuleId::HA305,
                format!("`upgradeMode: {mode}` needs a checkpoint directory, and `execution.checkpointing.dir` is not set"),
                "set `execution.checkpointing.dir` (or `state.checkpoints.dir` before Flink 1.20) in flinkConfiguration",
            )
            .path("spec.job.upgradeMode")
            .at(mode_pos),
        );
    }

    if let Some(node) = root.path(&["spec", "jobManager", "replicas"]) {
        let text = node.as_str().unwrap_or("");
        let problem = match text.trim().parse::<i64>() {
            Ok(n) if n < 1 => Some(format!(
                "`spec.jobManager.replicas` is {n}; at least one JobManager is needed"
            )),
            Ok(n) if n > 1 && !ha_on => Some(format!(
                "{n} JobManager replicas without HA: standby JobManagers need leader election"
            )),
            Ok(_) => None,
            Err(_) => Some(format!("`spec.jobManager.replicas` is `{text}`, not a number")),
        };
        if let Some(message) = problem {
            out.findings.push(
                Finding::new(
                    RuleId::HA303,
                    message,
                    "use 1 replica, or turn on Kubernetes HA for standbys",
                )
                .path("spec.jobManager.replicas")
                .at(node.pos),
            );
        }
    }

    out.facts.configs.push(ConfigFact {
        cluster_id: (!name.is_empty()).then(|| name.to_string()),
        kind: facts.kind,
        storage_dir: facts.storage_dir,
        from_configmap: false,
    });
}

fn flink_session_job(root: &Node, out: &mut DocumentOutcome) {
    let config = flink_configuration(root, out);
    ha_config::check(&config, &Origin::FlinkSessionJob, &mut out.findings);
}

fn deployment(root: &Node, out: &mut DocumentOutcome) {
    let name = root.str_at(&["metadata", "name"]).unwrap_or("");
    let cluster_id = label(root, LABEL_APP).unwrap_or(name);
    let replicas_node = root.path(&["spec", "replicas"]);
    let replicas = replicas_node
        .and_then(Node::as_str)
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(1);
    out.facts.deployments.push(DeploymentFact {
        name: name.to_string(),
        cluster_id: cluster_id.to_string(),
        replicas,
        pos: replicas_node.and_then(|n| n.pos).or(root.pos),
    });
}

/// Whether a document is a Kubernetes object rather than a Flink config.
pub fn looks_like_object(root: &Node) -> bool {
    root.get("kind").is_some() && root.get("apiVersion").is_some()
}

#[cfg(test)]
mod tests {
    use super::entry_problem;

    #[test]
    fn ha_entries_in_flinks_format_pass_and_others_are_named() {
        let session = "5b3cc8f2-1a84-4c1e-9c21-8f0d2a9f4b11";
        for (key, value) in [
            ("checkpointID-0000000000000000042", "rO0ABXNy"),
            ("counter", "43"),
            (
                "org.apache.flink.k8s.leader.restserver",
                &*format!("{session},http://10.0.0.9:8081"),
            ),
            ("executionPlan-a1b2c3d4e5f60718293a4b5c6d7e8f90", "rO0ABXNy"),
        ] {
            assert_eq!(entry_problem(key, value), None, "{key}");
        }
        let problem = |key: &str, value: &str| entry_problem(key, value).unwrap_or_default();
        assert!(problem("checkpointID-42", "x").contains("19 digits"));
        assert!(problem("counter", "4x").contains("not a decimal"));
        assert!(problem("counter", "").contains("not a decimal"));
        assert!(problem("org.apache.flink.k8s.leader.dispatcher", "no-session").contains("<session-uuid>,<address>"));
        assert!(problem("org.apache.flink.k8s.leader.dispatcher", &format!("{session},")).contains("`dispatcher`"));
        // Flink's REST clients read an http(s) URL from the restserver entry.
        let pekko = format!("{session},pekko.tcp://flink@10.0.0.9:6123/user/rpc/dispatcher_1");
        assert!(problem("org.apache.flink.k8s.leader.restserver", &pekko).contains("not an http(s) URL"));
        // The runtime's own keys are held to the same formats.
        assert_eq!(entry_problem("flink-ha.checkpointID-0000000000000000042", "{}"), None);
        assert!(problem("flink-ha.checkpointID-42", "{}").contains("19 digits"));
        assert!(problem("flink-ha.counter", "x").contains("not a decimal"));
    }

    #[test]
    fn values_flink_cannot_decode_and_mixed_formats_are_named() {
        use crate::finding::Finding;
        use crate::yaml::Node;
        let lint = |data: serde_json::Value| -> Vec<Finding> {
            let cm = serde_json::json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "orders-cluster-config-map",
                    "labels": {"app": "orders", "type": "flink-native-kubernetes"}
                },
                "data": data
            });
            let mut out = super::DocumentOutcome::default();
            super::lint_object(&Node::from_json(&cm), &mut out);
            out.findings
        };
        let rules = |findings: &[Finding]| findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>();
        let data = |entries: &[(&str, &str)]| {
            serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                    .collect(),
            )
        };
        let plan = "executionPlan-a1b2c3d4e5f60718293a4b5c6d7e8f90";
        assert_eq!(rules(&lint(data(&[(plan, "rO0ABXNyAGNvcmc")]))), Vec::<&str>::new());
        let json = lint(data(&[(
            plan,
            r#"{"path":"s3://b/ha/orders/submittedExecutionPlan0"}"#,
        )]));
        assert_eq!(rules(&json), ["HA207"]);
        assert!(json[0].message.contains("a JSON value"), "{}", json[0].message);
        let own = format!("flink-ha.{plan}");
        let mixed = lint(data(&[(plan, "rO0ABXNy"), (&own, r#"{"path":"s3://b/p"}"#)]));
        assert_eq!(rules(&mixed), ["HA208"]);
    }
}
