//! HA1xx: the rules on a Flink configuration, wherever it came from (a file, a
//! `flink-config-<id>` ConfigMap, a FlinkDeployment's `flinkConfiguration`).

use std::time::Duration;

use crate::config::{ConfigFile, Entry, FlinkConfig, read_config_text};
use crate::finding::Finding;
use crate::ha_layout::{MAX_CLUSTER_ID_LENGTH, cluster_id_problem, is_valid_cluster_id};
use crate::options::{self, OptionSpec, display_value};
use crate::rules::RuleId;
use crate::storage_uri::{self, AZURE_SCHEMES, BUCKET_SCHEMES};
use crate::yaml::Pos;
use crate::{duration, typecheck};

/// Where a configuration was found; decides which rules apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A `config.yaml` / `flink-conf.yaml` on its own.
    File,
    /// The config inside `flink-config-<cluster_id>`.
    ConfigMap {
        /// The cluster id in the ConfigMap's name.
        cluster_id: String,
    },
    /// `spec.flinkConfiguration` of a FlinkDeployment: the operator derives the cluster ids
    /// from the resource name.
    FlinkDeployment {
        /// The FlinkDeployment's `metadata.name`.
        name: String,
    },
    /// `spec.flinkConfiguration` of a FlinkSessionJob: job-level options only.
    FlinkSessionJob,
}

/// Which HA services a configuration turns on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaKind {
    /// HA is off (`NONE`, `standalone` or no `high-availability.type`).
    None,
    /// ZooKeeper HA.
    ZooKeeper,
    /// Kubernetes HA (`kubernetes` or the factory class).
    Kubernetes,
    /// A factory class of a custom HA service.
    Custom,
    /// A value Flink cannot use (HA109).
    Invalid,
}

impl HaKind {
    /// Whether any HA services are on (ZooKeeper, Kubernetes or a custom factory).
    pub fn is_on(&self) -> bool {
        matches!(self, HaKind::ZooKeeper | HaKind::Kubernetes | HaKind::Custom)
    }
}

pub use crate::options::KUBERNETES_FACTORY;

/// What the cross-document rules need to know about one configuration.
#[derive(Clone, Debug)]
pub struct HaFacts {
    /// Which HA services the configuration turns on.
    pub kind: HaKind,
    /// The cluster id, if known: a FlinkDeployment's name, else `kubernetes.cluster-id`,
    /// else the id in the ConfigMap's name.
    pub cluster_id: Option<String>,
    /// The `high-availability.storageDir` value and where the value is, if set.
    pub storage_dir: Option<(String, Option<Pos>)>,
}

/// What a `high-availability.type` value turns on (names are case-insensitive).
pub fn classify(value: &str) -> HaKind {
    let v = value.trim();
    match v.to_ascii_lowercase().as_str() {
        "none" | "standalone" => HaKind::None,
        "zookeeper" => HaKind::ZooKeeper,
        "kubernetes" => HaKind::Kubernetes,
        _ if v == KUBERNETES_FACTORY => HaKind::Kubernetes,
        _ if is_java_class(v) => HaKind::Custom,
        _ => HaKind::Invalid,
    }
}

/// A plausible fully qualified Java class name: dotted identifiers, the last one
/// capitalised (`com.example.MyHaServicesFactory`).
fn is_java_class(v: &str) -> bool {
    let segments: Vec<&str> = v.split('.').collect();
    segments.len() >= 2
        && segments.iter().all(|s| {
            let mut chars = s.chars();
            chars.next().is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
        && segments
            .last()
            .is_some_and(|s| s.starts_with(|c: char| c.is_uppercase()))
}

/// Suggests a valid cluster id for an invalid one.
pub fn suggest_cluster_id(id: &str, max: usize) -> String {
    let mut s: String = id
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.starts_with(|c: char| !c.is_ascii_lowercase()) && !s.is_empty() {
        s.remove(0);
    }
    s.truncate(max);
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "my-flink-cluster".to_string()
    } else {
        s
    }
}

/// Where a key is written (findings about an option that is missing point at the line
/// that turned HA on).
fn key_pos(entry: Option<&Entry>) -> Option<Pos> {
    entry.and_then(|e| e.key_pos)
}

/// Where a value is written, else its key.
fn value_pos(entry: &Entry) -> Option<Pos> {
    entry.value_pos.or(entry.key_pos)
}

/// A finding about the value of `entry`: named by its key, placed at the value.
fn on_value(entry: &Entry, rule: RuleId, message: impl Into<String>, hint: impl Into<String>) -> Finding {
    Finding::new(rule, message, hint).key(&entry.key).at(value_pos(entry))
}

/// What the HA1xx rules of one configuration share.
struct Context<'a> {
    config: &'a FlinkConfig,
    kind: HaKind,
    /// Where `high-availability.type` is written.
    ha_pos: Option<Pos>,
    /// The Flink Kubernetes Operator sets the cluster ids from the resource itself.
    is_operator: bool,
    k8s_id: Option<&'a Entry>,
}

impl Context<'_> {
    fn is_kubernetes(&self) -> bool {
        self.kind == HaKind::Kubernetes
    }
}

/// Runs every HA1xx rule on `config` and returns what the bundle rules need.
pub fn check(config: &FlinkConfig, origin: &Origin, out: &mut Vec<Finding>) -> HaFacts {
    check_deprecations(config, out);
    typecheck::check(config, out);
    let type_entry = config.effective(options::HA_TYPE);
    let cx = Context {
        config,
        kind: ha_type(type_entry, out),
        ha_pos: key_pos(type_entry),
        is_operator: matches!(origin, Origin::FlinkDeployment { .. } | Origin::FlinkSessionJob),
        k8s_id: config.effective(options::K8S_CLUSTER_ID),
    };
    kubernetes_cluster_id(&cx, out);
    let storage = storage_dir(&cx, out);
    check_durations(config, cx.is_kubernetes(), out);
    jobmanager_replicas(&cx, out);
    checkpointing_on(&cx, out);
    retained_checkpoints(&cx, out);
    ha_cluster_id(&cx, out);

    let cluster_id = match origin {
        Origin::FlinkDeployment { name } => Some(name.clone()),
        Origin::ConfigMap { cluster_id } => Some(cx.k8s_id.map_or_else(|| cluster_id.clone(), |e| e.value.clone())),
        _ => cx.k8s_id.map(|e| e.value.clone()),
    };
    HaFacts {
        kind: cx.kind,
        cluster_id,
        storage_dir: storage.map(|e| (e.value.clone(), value_pos(e))),
    }
}

/// HA109: what `high-availability.type` turns on.
fn ha_type(type_entry: Option<&Entry>, out: &mut Vec<Finding>) -> HaKind {
    let Some(e) = type_entry else {
        return HaKind::None;
    };
    let kind = classify(&e.value);
    if kind == HaKind::Invalid {
        out.push(invalid_type(e));
    }
    kind
}

/// HA102: a cluster id Kubernetes rejects; HA101: none, with Kubernetes HA on.
fn kubernetes_cluster_id(cx: &Context<'_>, out: &mut Vec<Finding>) {
    if let Some(e) = cx.k8s_id {
        if !is_valid_cluster_id(&e.value, MAX_CLUSTER_ID_LENGTH) {
            out.push(on_value(
                e,
                RuleId::HA102,
                format!(
                    "cluster id `{}` {}; Kubernetes rejects the objects named after it",
                    display_value(&e.key, &e.value),
                    cluster_id_problem(&e.value, MAX_CLUSTER_ID_LENGTH)
                ),
                format!("use e.g. `{}`", suggest_cluster_id(&e.value, MAX_CLUSTER_ID_LENGTH)),
            ));
        }
    } else if cx.is_kubernetes() && !cx.is_operator {
        out.push(
            Finding::new(
                RuleId::HA101,
                "Kubernetes HA is on but `kubernetes.cluster-id` is not set; the JobManager stops with \"Configuration option 'kubernetes.cluster-id' is not set.\"",
                format!("set `kubernetes.cluster-id` to a name such as `my-flink-cluster` (lower-case, at most {MAX_CLUSTER_ID_LENGTH} characters)"),
            )
            .key(options::K8S_CLUSTER_ID.key)
            .at(cx.ha_pos),
        );
    }
}

/// HA103: HA on without a storageDir; the storageDir's own rules when it is set.
fn storage_dir<'a>(cx: &Context<'a>, out: &mut Vec<Finding>) -> Option<&'a Entry> {
    let storage = cx.config.effective(options::STORAGE_DIR);
    match storage {
        None if cx.kind.is_on() => out.push(
            Finding::new(
                RuleId::HA103,
                "HA is on but `high-availability.storageDir` is not set: there is nowhere to keep job graphs and checkpoint metadata",
                "set `high-availability.storageDir` to durable storage, e.g. `s3://my-bucket/flink/recovery`",
            )
            .key(options::STORAGE_DIR.key)
            .at(cx.ha_pos),
        ),
        None => {}
        Some(e) => check_storage_dir(cx.config, e, out),
    }
    storage
}

/// HA113: fewer than one JobManager, or standbys without HA.
fn jobmanager_replicas(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(e) = cx.config.effective(options::JM_REPLICAS) else {
        return;
    };
    let Ok(n) = e.value.trim().parse::<i64>() else {
        return;
    };
    if n < 1 {
        out.push(on_value(
            e,
            RuleId::HA113,
            format!("`{}` is {n}; Flink refuses fewer than one JobManager", e.key),
            "set it to 1, or more with HA on",
        ));
    } else if n > 1 && !cx.kind.is_on() {
        out.push(
            on_value(
                e,
                RuleId::HA113,
                format!("{n} JobManager replicas without HA: Flink refuses with \"High availability should be enabled when starting standby JobManagers.\""),
                "turn HA on (`high-availability.type: kubernetes`) or use 1 replica",
            ),
        );
    }
}

/// HA114: Kubernetes HA with checkpointing off.
fn checkpointing_on(cx: &Context<'_>, out: &mut Vec<Finding>) {
    if cx.is_kubernetes() && cx.config.effective(options::CHECKPOINT_INTERVAL).is_none() {
        out.push(
            Finding::new(
                RuleId::HA114,
                "Kubernetes HA is on but checkpointing is off (`execution.checkpointing.interval` unset): a recovered job starts from scratch",
                "set `execution.checkpointing.interval`, e.g. `1 min`",
            )
            .key(options::CHECKPOINT_INTERVAL.key)
            .at(cx.ha_pos),
        );
    }
}

/// HA115: so many retained checkpoints that the job ConfigMap nears its limit.
fn retained_checkpoints(cx: &Context<'_>, out: &mut Vec<Finding>) {
    if let Some(e) = cx.config.effective(options::NUM_RETAINED)
        && let Ok(n) = e.value.trim().parse::<i64>()
        && n > 100
    {
        out.push(on_value(
            e,
            RuleId::HA115,
            format!("{n} retained checkpoints: each adds a pointer to the job ConfigMap, which holds at most 1 MiB"),
            "retain at most a few checkpoints (the default is 1); keep long-term state in savepoints",
        ));
    }
}

/// HA116: `high-availability.cluster-id` differs from `kubernetes.cluster-id`; HA117:
/// unset in a standalone deployment (payloads under `default/`).
fn ha_cluster_id(cx: &Context<'_>, out: &mut Vec<Finding>) {
    if !cx.is_kubernetes() || cx.is_operator {
        return;
    }
    match (cx.config.effective(options::HA_CLUSTER_ID), cx.k8s_id) {
        (Some(h), Some(k)) if h.value != k.value => out.push(
            Finding::new(
                RuleId::HA116,
                format!(
                    "`{}` is `{}` but `kubernetes.cluster-id` is `{}`: HA payloads go to `<storageDir>/{}/` while the ConfigMaps are named after `{}`",
                    h.key, h.value, k.value, h.value, k.value
                ),
                format!("set `high-availability.cluster-id: {}` or remove it (native deployments derive it)", k.value),
            )
            .key(&h.key)
            .at(value_pos(h)),
        ),
        (None, k8s_id) => out.push(
            Finding::new(
                RuleId::HA117,
                "`high-availability.cluster-id` is unset: a standalone JobManager writes its HA payloads to `<storageDir>/default/`, shared with every other standalone cluster on that storageDir",
                match k8s_id {
                    Some(k) => format!("set `high-availability.cluster-id: {}`; native deployments derive it from `kubernetes.cluster-id` themselves", k.value),
                    None => "set `high-availability.cluster-id` to the cluster id; native deployments derive it from `kubernetes.cluster-id` themselves".to_string(),
                },
            )
            .key(options::HA_CLUSTER_ID.key)
            .at(cx.ha_pos),
        ),
        _ => {}
    }
}

fn invalid_type(e: &Entry) -> Finding {
    let v = e.value.trim();
    let unquoted = v.trim_matches(|c| c == '"' || c == '\'');
    let hint = if unquoted != v && classify(unquoted) != HaKind::Invalid {
        format!("remove the quotes: `{}: {unquoted}`", e.key)
    } else {
        let lower = unquoted.to_ascii_lowercase();
        let best = ["kubernetes", "zookeeper", "none"]
            .iter()
            .map(|c| (strsim::damerau_levenshtein(&lower, c), *c))
            .min();
        match best {
            Some((d, c)) if d <= 3 => format!("did you mean `{c}`? (`{}: {c}`)", e.key),
            _ => "use one of `kubernetes`, `zookeeper`, `none`, or the fully qualified class name of an HA services factory".to_string(),
        }
    };
    on_value(
        e,
        RuleId::HA109,
        format!(
            "`{}` is not an HA type: Flink would load `{}` as a factory class and fail when the JobManager starts",
            display_value(&e.key, &e.value),
            display_value(&e.key, &e.value)
        ),
        hint,
    )
}

fn check_deprecations(config: &FlinkConfig, out: &mut Vec<Finding>) {
    for e in &config.entries {
        let Some(current) = options::current_for(&e.key) else {
            continue;
        };
        // Report each deprecated key once, at its entry in force.
        if config.get(&e.key).map(|x| std::ptr::eq(x, e)) != Some(true) {
            continue;
        }
        out.push(
            Finding::new(
                RuleId::HA107,
                format!("`{}` is deprecated", e.key),
                match current.since {
                    Some(v) => format!("use `{}` instead (Flink {v}+)", current.key),
                    None => format!("use `{}` instead", current.key),
                },
            )
            .key(&e.key)
            .at(e.key_pos),
        );
        if let Some(cur) = config.get(current.key)
            && cur.value != e.value
        {
            out.push(
                Finding::new(
                    RuleId::HA108,
                    format!(
                        "`{}` is `{}` but `{}` is `{}`; Flink uses `{}`",
                        e.key,
                        display_value(&e.key, &e.value),
                        cur.key,
                        display_value(&cur.key, &cur.value),
                        cur.key
                    ),
                    format!("remove `{}`", e.key),
                )
                .key(&e.key)
                .at(e.key_pos),
            );
        }
    }
}

fn check_storage_dir(config: &FlinkConfig, e: &Entry, out: &mut Vec<Finding>) {
    let value = e.value.trim();
    let pos = value_pos(e);
    let shown = display_value(&e.key, value);
    let uri = storage_uri::split(value);
    let default_scheme = config
        .effective(options::DEFAULT_SCHEME)
        .map(|d| d.value.trim().to_string());
    let scheme = match (uri.scheme, &default_scheme) {
        (Some(s), _) => s.to_ascii_lowercase(),
        (None, Some(d)) if uri.path.starts_with('/') => {
            storage_uri::split(d).scheme.unwrap_or("file").to_ascii_lowercase()
        }
        (None, _) => {
            let why = if uri.path.starts_with('/') {
                "has no scheme: it resolves to the pod's local disk, which is lost with the pod"
            } else {
                "is a relative path: it resolves against the JobManager's working directory on the pod's local disk"
            };
            out.push(
                Finding::new(
                    RuleId::HA104,
                    format!("storageDir `{shown}` {why}"),
                    "use an absolute URI with a scheme, e.g. `s3://my-bucket/flink/recovery` (or `file:///mnt/shared/...` on a shared volume)",
                )
                .key(&e.key)
                .at(pos),
            );
            return;
        }
    };
    if uri.scheme.is_some() && uri.authority.is_none() && !uri.path.starts_with('/') {
        out.push(
            Finding::new(
                RuleId::HA104,
                format!("storageDir `{shown}` cannot be used as a path: after `{scheme}:` Flink expects `//` or an absolute path"),
                format!("write it as `{scheme}://<bucket-or-host>/<path>`"),
            )
            .key(&e.key)
            .at(pos),
        );
        return;
    }
    let authority = uri.authority.unwrap_or("");
    if BUCKET_SCHEMES.contains(&scheme.as_str()) && authority.is_empty() && uri.scheme.is_some() {
        out.push(
            Finding::new(
                RuleId::HA105,
                format!("storageDir `{shown}` names no bucket: the {scheme} file system cannot be created and HA fails at start"),
                format!("put the bucket after `{scheme}://`, e.g. `{scheme}://my-bucket{}`", if uri.path.is_empty() { "/flink/recovery" } else { uri.path }),
            )
            .key(&e.key)
            .at(pos),
        );
    } else if AZURE_SCHEMES.contains(&scheme.as_str())
        && uri.scheme.is_some()
        && authority
            .split_once('@')
            .is_none_or(|(container, account)| container.is_empty() || account.is_empty())
    {
        out.push(
            Finding::new(
                RuleId::HA105,
                format!(
                    "storageDir `{shown}` names no container: Azure URIs need `container@account` after `{scheme}://`"
                ),
                format!("e.g. `{scheme}://flink@myaccount.dfs.core.windows.net/recovery`"),
            )
            .key(&e.key)
            .at(pos),
        );
    } else if scheme == "file" {
        out.push(
            Finding::new(
                RuleId::HA106,
                format!("storageDir `{shown}` is on the local file system: only safe on a volume every JobManager mounts and that outlives the pods"),
                "use an object store (s3://, gs://, abfss://) or mount a ReadWriteMany PersistentVolume at this path in every JobManager",
            )
            .key(&e.key)
            .at(pos),
        );
    }
}

const ELECTION: [&OptionSpec; 3] = [options::LEASE_DURATION, options::RENEW_DEADLINE, options::RETRY_PERIOD];

fn check_durations(config: &FlinkConfig, is_k8s: bool, out: &mut Vec<Finding>) {
    // `None`: set but invalid (already reported), so timing rules are skipped.
    let mut values: [Option<Duration>; 3] = [None; 3];
    for (i, option) in ELECTION.iter().enumerate() {
        values[i] = match config.effective(option) {
            Some(e) => check_duration(e, out),
            None => option.default.and_then(|d| duration::parse(d).ok()),
        };
    }
    if let Some(e) = config.effective(options::CHECKPOINT_INTERVAL) {
        check_duration(e, out);
    }
    let explicit: Vec<&Entry> = ELECTION.iter().filter_map(|o| config.effective(o)).collect();
    let [Some(lease), Some(renew), Some(retry)] = values else {
        return;
    };
    if explicit.is_empty() && !is_k8s {
        return;
    }
    let pos_of = |option: &OptionSpec| {
        config
            .effective(option)
            .or_else(|| explicit.first().copied())
            .and_then(|e| e.key_pos)
    };
    // A finding about `option`: named by its key, placed where it is set.
    let on_option = |option: &OptionSpec, rule: RuleId, message: String, hint: &str| {
        Finding::new(rule, message, hint).key(option.key).at(pos_of(option))
    };
    let fmt = |d: Duration| humanize(d);
    let mut impossible = false;
    if renew > lease {
        impossible = true;
        out.push(
            on_option(
                options::RENEW_DEADLINE,
                RuleId::HA111,
                format!(
                    "renew-deadline ({}) is longer than lease-duration ({}): the lease expires while the leader still believes it can renew",
                    fmt(renew),
                    fmt(lease)
                ),
                "keep renew-deadline <= lease-duration (defaults: 15 s and 15 s)",
            ),
        );
    }
    if retry >= renew {
        impossible = true;
        out.push(
            on_option(
                options::RETRY_PERIOD,
                RuleId::HA111,
                format!(
                    "retry-period ({}) is not shorter than renew-deadline ({}): the leader gets no second renewal attempt before it must step down",
                    fmt(retry),
                    fmt(renew)
                ),
                "keep retry-period well below renew-deadline (defaults: 5 s and 15 s)",
            ),
        );
    }
    if impossible || explicit.is_empty() {
        return;
    }
    if lease - renew < retry {
        out.push(
            on_option(
                options::LEASE_DURATION,
                RuleId::HA112,
                format!(
                    "lease-duration ({}) - renew-deadline ({}) is less than retry-period ({}): a leader that steps down late can overlap with the next one",
                    fmt(lease),
                    fmt(renew),
                    fmt(retry)
                ),
                "make lease-duration exceed renew-deadline by at least one retry-period, e.g. 20 s / 15 s / 5 s",
            ),
        );
    }
    if renew < retry * 2 {
        out.push(on_option(
            options::RENEW_DEADLINE,
            RuleId::HA112,
            format!(
                "renew-deadline ({}) is less than twice retry-period ({}): one failed renewal costs leadership",
                fmt(renew),
                fmt(retry)
            ),
            "keep renew-deadline at least 2 x retry-period (fabric8 requires 2.2 x)",
        ));
    }
}

/// Reports an invalid or zero duration; returns it when usable.
fn check_duration(e: &Entry, out: &mut Vec<Finding>) -> Option<Duration> {
    match duration::parse(&e.value) {
        Ok(d) if d.is_zero() => {
            out.push(on_value(
                e,
                RuleId::HA110,
                format!("`{}` is zero", e.key),
                "use a positive duration such as `15 s`",
            ));
            None
        }
        Ok(d) => Some(d),
        Err(why) => {
            out.push(on_value(
                e,
                RuleId::HA110,
                format!(
                    "`{}` value `{}` {why}; Flink cannot read it as a duration",
                    e.key,
                    display_value(&e.key, &e.value)
                ),
                "write a whole number and a unit, e.g. `15 s`, `500 ms`, `1 min` (no unit means milliseconds)",
            ));
            None
        }
    }
}

fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}
/// Lints a Flink configuration text (a file or one embedded in a ConfigMap).
pub fn lint_config_text(text: &str, file: ConfigFile, origin: &Origin) -> (Vec<Finding>, Option<HaFacts>) {
    let (config, mut findings) = read_config_text(text, file);
    let facts = config.map(|config| check(&config, origin, &mut findings));
    (findings, facts)
}

#[cfg(test)]
mod tests {
    //! One case per rule function, beside it; the fixture corpus (`tests/fixtures/`)
    //! checks whole reports byte for byte.

    use super::*;

    /// A Kubernetes-HA config.yaml that every HA1xx rule accepts.
    const GOOD: &str = "high-availability.type: kubernetes
high-availability.storageDir: s3://bucket/flink/recovery
high-availability.cluster-id: orders
kubernetes.cluster-id: orders
execution.checkpointing.interval: 1 min
";

    /// The rule ids `text` (a config.yaml) gives, read as from `origin`.
    fn rules_of(text: &str, origin: &Origin) -> Vec<RuleId> {
        let (findings, _) = lint_config_text(text, ConfigFile::ConfigYaml, origin);
        findings.iter().map(|f| f.rule).collect()
    }

    /// [`GOOD`] with `key` set to `value`, or removed with `None`.
    fn good_with(key: &str, value: Option<&str>) -> String {
        let mut lines: Vec<String> = GOOD
            .lines()
            .filter(|line| !line.starts_with(&format!("{key}:")))
            .map(str::to_owned)
            .collect();
        if let Some(value) = value {
            lines.push(format!("{key}: {value}"));
        }
        lines.join("\n") + "\n"
    }

    #[test]
    fn a_good_config_has_no_ha_findings() {
        assert_eq!(rules_of(GOOD, &Origin::File), []);
    }

    #[test]
    fn ha_type_typo_is_ha109_and_turns_nothing_on() {
        let text = good_with("high-availability.type", Some("kubernets"));
        let rules = rules_of(&text, &Origin::File);
        assert!(rules.contains(&RuleId::HA109), "{rules:?}");
        assert!(
            !rules.contains(&RuleId::HA114),
            "checkpointing is Kubernetes HA's rule: {rules:?}"
        );
        assert_eq!(classify("kubernetes"), HaKind::Kubernetes);
        assert_eq!(classify("KUBERNETES"), HaKind::Kubernetes);
        assert_eq!(classify("none"), HaKind::None);
    }

    #[test]
    fn cluster_id_missing_is_ha101_unless_the_operator_names_it() {
        let text = good_with("kubernetes.cluster-id", None);
        assert!(rules_of(&text, &Origin::File).contains(&RuleId::HA101));
        let operator = Origin::FlinkDeployment { name: "orders".into() };
        assert!(!rules_of(&text, &operator).contains(&RuleId::HA101));
    }

    #[test]
    fn cluster_id_kubernetes_rejects_is_ha102_with_a_valid_suggestion() {
        let text = good_with("kubernetes.cluster-id", Some("Orders_EU"));
        let (findings, _) = lint_config_text(&text, ConfigFile::ConfigYaml, &Origin::File);
        let ha102 = findings.iter().find(|f| f.rule == RuleId::HA102).expect("HA102");
        assert!(ha102.hint.contains("`orders-eu`"), "{}", ha102.hint);
        let suggested = suggest_cluster_id("Orders_EU", MAX_CLUSTER_ID_LENGTH);
        assert!(is_valid_cluster_id(&suggested, MAX_CLUSTER_ID_LENGTH), "{suggested}");
    }

    #[test]
    fn storage_dir_missing_is_ha103_and_without_a_bucket_ha105() {
        let missing = good_with("high-availability.storageDir", None);
        assert!(rules_of(&missing, &Origin::File).contains(&RuleId::HA103));
        let no_bucket = good_with("high-availability.storageDir", Some("s3:///flink/recovery"));
        assert!(rules_of(&no_bucket, &Origin::File).contains(&RuleId::HA105));
        let local = good_with("high-availability.storageDir", Some("file:///tmp/recovery"));
        assert!(rules_of(&local, &Origin::File).contains(&RuleId::HA106));
    }

    #[test]
    fn jobmanager_replicas_need_ha_and_at_least_one_is_ha113() {
        let none = good_with("kubernetes.jobmanager.replicas", Some("0"));
        assert!(rules_of(&none, &Origin::File).contains(&RuleId::HA113));
        let standby_without_ha = "kubernetes.jobmanager.replicas: 2\n";
        assert!(rules_of(standby_without_ha, &Origin::File).contains(&RuleId::HA113));
        let standby_with_ha = good_with("kubernetes.jobmanager.replicas", Some("2"));
        assert!(!rules_of(&standby_with_ha, &Origin::File).contains(&RuleId::HA113));
    }

    #[test]
    fn no_checkpointing_under_kubernetes_ha_is_ha114() {
        let text = good_with("execution.checkpointing.interval", None);
        assert!(rules_of(&text, &Origin::File).contains(&RuleId::HA114));
    }

    #[test]
    fn more_than_a_hundred_retained_checkpoints_is_ha115() {
        let many = good_with("execution.checkpointing.num-retained", Some("101"));
        assert!(rules_of(&many, &Origin::File).contains(&RuleId::HA115));
        let few = good_with("execution.checkpointing.num-retained", Some("100"));
        assert!(!rules_of(&few, &Origin::File).contains(&RuleId::HA115));
    }

    #[test]
    fn the_two_cluster_ids_disagree_is_ha116_and_the_ha_one_unset_ha117() {
        let apart = good_with("high-availability.cluster-id", Some("payments"));
        assert!(rules_of(&apart, &Origin::File).contains(&RuleId::HA116));
        let unset = good_with("high-availability.cluster-id", None);
        assert!(rules_of(&unset, &Origin::File).contains(&RuleId::HA117));
        let operator = Origin::FlinkDeployment { name: "orders".into() };
        assert!(!rules_of(&unset, &operator).contains(&RuleId::HA117));
    }

    #[test]
    fn election_timings_that_cannot_hold_are_ha111_and_tight_ones_ha112() {
        let renew_past_lease = good_with(
            "high-availability.kubernetes.leader-election.renew-deadline",
            Some("20 s"),
        );
        assert!(rules_of(&renew_past_lease, &Origin::File).contains(&RuleId::HA111));
        let tight = good_with("high-availability.kubernetes.leader-election.retry-period", Some("6 s"));
        assert!(rules_of(&tight, &Origin::File).contains(&RuleId::HA112));
    }

    #[test]
    fn a_malformed_duration_is_ha110() {
        let text = good_with(
            "high-availability.kubernetes.leader-election.lease-duration",
            Some("15 parsecs"),
        );
        assert!(rules_of(&text, &Origin::File).contains(&RuleId::HA110));
    }

    #[test]
    fn the_facts_take_the_cluster_id_from_where_flink_does() {
        let (_, facts) = lint_config_text(GOOD, ConfigFile::ConfigYaml, &Origin::File);
        let facts = facts.expect("a config");
        assert_eq!(facts.kind, HaKind::Kubernetes);
        assert_eq!(facts.cluster_id.as_deref(), Some("orders"));
        let operator = Origin::FlinkDeployment { name: "shop".into() };
        let (_, facts) = lint_config_text(GOOD, ConfigFile::ConfigYaml, &operator);
        assert_eq!(facts.expect("a config").cluster_id.as_deref(), Some("shop"));
    }
}
