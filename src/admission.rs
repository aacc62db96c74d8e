//! `review`: an AdmissionReview in, the AdmissionReview response the webhook sends out.
//!
//! CREATE and UPDATE are reviewed on `object` with the same rules as `lint`; DELETE on
//! `oldObject`. Error findings deny with one `[HAxxx] message` line each; warnings go
//! back as admission warnings.
//!
//! HA205 keeps a running cluster's HA state: no DELETE of an HA ConfigMap that holds
//! plans, checkpoint pointers, a counter or leader entries, and no UPDATE that takes
//! them away otherwise than Flink does, while the cluster's lease is live. A lock alone,
//! as Flink's own graceful shutdown leaves it, may go. The cluster ConfigMap carries its
//! own lease; a job ConfigMap (`<cluster-id>-<job-id>-config-map`) has none, and is
//! judged by its cluster's: the review then needs the cluster ConfigMap beside the
//! request. The core does no I/O, so it asks for it ([`ReviewError::ContextNeeded`]),
//! and the host looks it up and reviews again with it ([`review_in_context`]).

use jiff::Timestamp;
use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::exemptions::{self, Exempted, Exemption, RequestFacts};
use crate::finding::{Finding, Severity};
use crate::flink_state::HaPointer;
use crate::ha_layout::{self as flink, HaConfigMapName};
use crate::leader_record::{self, LeaderRecord};
use crate::objects::{self, DocumentOutcome};
use crate::rules::RuleId;
use crate::yaml::Node;

/// Longest warning sent back; the API server may cut longer ones.
pub const MAX_WARNING_CHARS: usize = 120;

/// Largest AdmissionReview read (the API server sends at most ~3 MiB objects).
pub const MAX_REVIEW_BYTES: usize = 4 * 1024 * 1024;

/// What the webhook operator can tune.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReviewSettings {
    /// Rules that never deny or warn (for example `HA205` during a planned teardown).
    pub disabled_rules: Vec<String>,
    /// Admit everything and send what would have denied as warnings, marked
    /// `(not enforced)`: a dry run of the policy on a live cluster before enforcing it.
    pub warn_only: bool,
    /// Rules waived for some requests (see [`crate::exemptions`]).
    pub exemptions: Vec<Exemption>,
    /// The labels of the request's namespace, when an exemption selects namespaces by
    /// label and the host looked them up (the AdmissionReview does not carry them).
    pub namespace_labels: Option<BTreeMap<String, String>>,
}

impl ReviewSettings {
    fn enabled(&self, rule: RuleId) -> bool {
        !self
            .disabled_rules
            .iter()
            .any(|r| r.eq_ignore_ascii_case(rule.as_str()))
    }
}

/// A body that is not a usable AdmissionReview (the webhook answers HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    /// The body is larger than [`MAX_REVIEW_BYTES`]; the value is its size in bytes.
    #[error("the body is {0} bytes; at most {MAX_REVIEW_BYTES} are read")]
    TooLarge(usize),
    /// The body is not JSON of an AdmissionReview, or its `kind` is not `AdmissionReview`.
    #[error("the body is not an AdmissionReview: {0}")]
    NotAdmissionReview(String),
    /// The AdmissionReview has no `request` to review.
    #[error("the AdmissionReview has no `request`")]
    NoRequest,
    /// The `apiVersion` is not `admission.k8s.io/v1`; the value is the one sent.
    #[error("unsupported AdmissionReview apiVersion `{0}` (expected admission.k8s.io/v1)")]
    UnsupportedVersion(String),
    /// The decision depends on these ConfigMaps (a job ConfigMap's cluster ConfigMap,
    /// which holds the lease), and no context was given: look them up and review again
    /// with [`review_in_context`]. Not a bad request: a host that can look them up does.
    #[error("the decision depends on {}, which the review was not given: look it up and review again with it as context", refs_text(.0))]
    ContextNeeded(Vec<ObjectRef>),
    /// The decision depends on ConfigMaps the host could not look up ([`ReviewContext::Unknown`]);
    /// the value says why. The webhook answers HTTP 500, so its failurePolicy decides.
    #[error("the decision depends on the cluster's lease, which could not be read: {0}")]
    ContextUnavailable(String),
}

/// A namespaced object a review needs to see beside the request: what the host looks up.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConfigMap {}/{}", self.namespace, self.name)
    }
}

fn refs_text(refs: &[ObjectRef]) -> String {
    refs.iter().map(ObjectRef::to_string).collect::<Vec<_>>().join(" and ")
}

/// What the host looked up for a review that asked ([`ReviewError::ContextNeeded`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviewContext {
    /// The ConfigMaps found, each as its JSON (`kubectl get -o json` of one object). One
    /// that was asked for and is not among them does not exist.
    Found(Vec<String>),
    /// The lookup failed or timed out; why. A review whose decision needs it fails with
    /// [`ReviewError::ContextUnavailable`]; one that does not is decided as usual.
    Unknown(String),
}

/// The decision and what it was about, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reviewed {
    /// The request's `uid`, echoed in the response.
    pub uid: String,
    /// The `kind` of the reviewed object (for example `ConfigMap`).
    pub kind: String,
    /// The request's namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// The name of the reviewed object.
    pub name: String,
    /// The operation, upper case: `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: String,
    /// Whether the request is admitted (always true with `warnOnly`).
    pub allowed: bool,
    /// What the rules found, after disabled rules and exemptions are taken out.
    pub findings: Vec<Finding>,
    /// What exemptions waived; not in `findings`.
    pub exempted: Vec<Exempted>,
    /// The AdmissionReview to send back, as JSON.
    pub response: String,
}

/// Reviews one AdmissionReview at time `now_unix_ms` (milliseconds since the epoch;
/// the time is an input, never read here), with nothing beside it: a review that needs
/// its cluster's lease fails with [`ReviewError::ContextNeeded`].
pub fn review(json: &str, now_unix_ms: i64, settings: &ReviewSettings) -> Result<Reviewed, ReviewError> {
    review_in_context(json, now_unix_ms, settings, None)
}

/// Reviews one AdmissionReview with what the host looked up for it: `context` answers
/// a [`ReviewError::ContextNeeded`] of an earlier call (`None`: nothing was looked up).
/// `now_unix_ms` is best the time the context was read: a lease is judged live or not
/// as of then.
pub fn review_in_context(
    json: &str,
    now_unix_ms: i64,
    settings: &ReviewSettings,
    context: Option<&ReviewContext>,
) -> Result<Reviewed, ReviewError> {
    if json.len() > MAX_REVIEW_BYTES {
        return Err(ReviewError::TooLarge(json.len()));
    }
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_str(json).map_err(|e| ReviewError::NotAdmissionReview(e.to_string()))?;
    if review.types.kind != "AdmissionReview" {
        return Err(ReviewError::NotAdmissionReview(format!(
            "kind is `{}`, not `AdmissionReview`",
            review.types.kind
        )));
    }
    if review.types.api_version != "admission.k8s.io/v1" {
        return Err(ReviewError::UnsupportedVersion(review.types.api_version.clone()));
    }
    let request: AdmissionRequest<DynamicObject> = review.try_into().map_err(|_| ReviewError::NoRequest)?;
    let now = Timestamp::from_millisecond(now_unix_ms).unwrap_or(Timestamp::UNIX_EPOCH);

    let scope = LeaseScope {
        namespace: request.namespace.as_deref().unwrap_or_default(),
        now,
        context,
    };
    let guard = settings.enabled(RuleId::HA205);
    let mut findings = match request.operation {
        Operation::Create | Operation::Update => {
            let object = request.object.as_ref().map(to_node);
            let old = request.old_object.as_ref().map(to_node);
            let mut findings = object
                .as_ref()
                .map(|o| lint_admitted(o, old.as_ref()))
                .unwrap_or_default();
            if let (true, Some(object), Some(old)) = (guard, &object, &old) {
                findings.extend(check_update(old, object, &scope)?);
            }
            findings
        }
        Operation::Delete => match (guard, request.old_object.as_ref()) {
            (true, Some(old)) => check_delete(&to_node(old), &scope)?,
            _ => Vec::new(),
        },
        Operation::Connect => Vec::new(),
    };
    findings.retain(|f| settings.enabled(f.rule));
    // An opt-out annotation counts only if it was there before this request: the old
    // object's on UPDATE and DELETE, else one write could add the violation and its
    // waiver together. A CREATE has only the new object's, which waive no error rule.
    let (annotated_object, annotations_of_new_object) = match request.operation {
        Operation::Create => (request.object.as_ref(), true),
        Operation::Update | Operation::Delete | Operation::Connect => (request.old_object.as_ref(), false),
    };
    let facts = RequestFacts {
        namespace: request.namespace.as_deref().unwrap_or_default(),
        namespace_labels: settings.namespace_labels.as_ref(),
        user: request.user_info.username.as_deref().unwrap_or_default(),
        groups: request.user_info.groups.as_deref().unwrap_or_default(),
        annotations: annotated_object.and_then(|o| o.metadata.annotations.as_ref()),
        annotations_of_new_object,
    };
    let (findings, exempted) = exemptions::apply(findings, &settings.exemptions, &facts);

    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("[{}] {}", f.rule, f.message))
        .collect();
    let mut warnings: Vec<String> = Vec::new();
    if settings.warn_only {
        warnings.extend(
            findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| shorten(&format!("(not enforced) {}", warning_line(f)))),
        );
    }
    warnings.extend(
        findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .map(warning_line),
    );
    // An exempted denial is admitted, and says so; an exempted warning is silenced.
    warnings.extend(
        exempted
            .iter()
            .filter(|e| e.severity == Severity::Error)
            .map(|e| shorten(&format!("[{}] exempted by {} ({})", e.rule, e.exemption, e.why))),
    );

    let mut response = AdmissionResponse::from(&request);
    if !errors.is_empty() && !settings.warn_only {
        response = response.deny(errors.join("\n"));
        response.result.code = 403;
        response.result.reason = "Forbidden".to_string();
    }
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    let allowed = response.allowed;
    let response =
        serde_json::to_string(&response.into_review()).map_err(|e| ReviewError::NotAdmissionReview(e.to_string()))?;
    Ok(Reviewed {
        uid: request.uid.clone(),
        kind: request.kind.kind.clone(),
        namespace: request.namespace.clone().unwrap_or_default(),
        name: request.name.clone(),
        operation: format!("{:?}", request.operation).to_uppercase(),
        allowed,
        findings,
        exempted,
        response,
    })
}

fn to_node(object: &DynamicObject) -> Node {
    Node::from_json(&serde_json::to_value(object).unwrap_or(serde_json::Value::Null))
}

fn lint_admitted(object: &Node, old: Option<&Node>) -> Vec<Finding> {
    let mut out = DocumentOutcome::default();
    objects::lint_object(object, &mut out);
    // Review one object at a time: "not linted" is noise here.
    out.findings.retain(|f| f.rule != RuleId::HA005);
    // An HA ConfigMap that already had the same owners before this update is updated
    // by its running JobManager every few seconds: denying those updates would depose
    // the leader. Warn instead; adding owners is still denied.
    if let Some(old) = old {
        let refs = |n: &Node| n.path(&["metadata", "ownerReferences"]).cloned();
        if refs(object).is_some() && refs(object) == refs(old) {
            for f in out.findings.iter_mut().filter(|f| f.rule == RuleId::HA201) {
                f.severity = Severity::Warning;
                f.message = format!("{} (left as is: it had these owners before)", f.message);
            }
        }
        // The same goes for an undecodable entry that is there unchanged: denying the
        // update (a lock renewal, say) would not remove it, and would depose the leader.
        // Writing a new one is still denied.
        let value_at = |n: &Node, key: &str| n.path(&["data", key]).and_then(Node::as_str).map(str::to_string);
        for f in out.findings.iter_mut().filter(|f| f.rule == RuleId::HA207) {
            let Some(key) = f.path.as_deref().and_then(|p| p.strip_prefix("data.")) else {
                continue;
            };
            if value_at(object, key).is_some() && value_at(object, key) == value_at(old, key) {
                f.severity = Severity::Warning;
                f.message = format!("{} (left as is: it was there before this update)", f.message);
            }
        }
    }
    out.findings
}

/// What HA205 judges a request by beside the objects: the request's namespace, the
/// time, and what the host looked up.
struct LeaseScope<'a> {
    namespace: &'a str,
    now: Timestamp,
    context: Option<&'a ReviewContext>,
}

/// A live lease over a ConfigMap: its own leader record, or, for a job ConfigMap, the
/// record of its cluster ConfigMap while that one holds more than a lock.
struct LiveLease {
    /// `None`: the ConfigMap's own record; else the cluster ConfigMap that holds it.
    cluster_config_map: Option<String>,
    holder: String,
    expiry: String,
}

impl LiveLease {
    fn of(record: &LeaderRecord, cluster_config_map: Option<String>) -> LiveLease {
        let expiry = record
            .renew_time
            .checked_add(jiff::SignedDuration::try_from(record.lease_duration).unwrap_or_default())
            .map(|t| t.to_string())
            .unwrap_or_default();
        LiveLease {
            cluster_config_map,
            holder: record.holder_identity.clone(),
            expiry,
        }
    }
}

impl std::fmt::Display for LiveLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cluster_config_map {
            None => write!(
                f,
                "it holds a live leader record (holder {}, lease until {})",
                self.holder, self.expiry
            ),
            Some(cluster) => write!(
                f,
                "its cluster is running (`{cluster}` holds a live leader record, holder {}, lease until {})",
                self.holder, self.expiry
            ),
        }
    }
}

/// The leader record in a ConfigMap's own annotation, if it has the annotation (`Some(None)`:
/// there, but not a record).
fn own_record(config_map: &Node) -> Option<Option<LeaderRecord>> {
    config_map
        .str_at(&["metadata", "annotations", leader_record::ANNOTATION])
        .map(|text| LeaderRecord::parse(text).ok())
}

/// The cluster ids a job ConfigMap names: the one in its name, and its `app` label when
/// that differs (Flink sets both from `kubernetes.cluster-id`; a ConfigMap whose two
/// disagree is judged by both).
fn job_cluster_ids<'a>(config_map: &'a Node, name: &'a str) -> Option<(&'a str, Vec<&'a str>)> {
    let Some(HaConfigMapName::Job { cluster_id, job_id }) = HaConfigMapName::parse(name) else {
        return None;
    };
    let mut ids = vec![cluster_id];
    if let Some(app) = config_map.str_at(&["metadata", "labels", flink::LABEL_APP])
        && app != cluster_id
        && flink::is_valid_cluster_id(app, flink::MAX_CLUSTER_ID_LENGTH)
    {
        ids.push(app);
    }
    Some((job_id, ids))
}

/// The live lease over a job ConfigMap: that of its cluster ConfigMap, from the context,
/// when it is live and the ConfigMap holds more than the lock (a lock alone is what
/// Flink's graceful shutdown leaves before it deletes every HA ConfigMap: nothing runs).
fn cluster_lease(cluster_ids: &[&str], scope: &LeaseScope<'_>) -> Result<Option<LiveLease>, ReviewError> {
    let wanted: Vec<String> = cluster_ids.iter().map(|id| flink::cluster_config_map(id)).collect();
    let found = match scope.context {
        None => {
            return Err(ReviewError::ContextNeeded(
                wanted
                    .into_iter()
                    .map(|name| ObjectRef {
                        namespace: scope.namespace.to_string(),
                        name,
                    })
                    .collect(),
            ));
        }
        Some(ReviewContext::Unknown(why)) => return Err(ReviewError::ContextUnavailable(why.clone())),
        Some(ReviewContext::Found(found)) => found,
    };
    for (i, text) in found.iter().enumerate() {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ReviewError::ContextUnavailable(format!("the context's object {} is not JSON: {e}", i + 1)))?;
        let cluster = Node::from_json(&value);
        let Some(name) = cluster.str_at(&["metadata", "name"]) else {
            continue;
        };
        let namespace = cluster.str_at(&["metadata", "namespace"]).unwrap_or(scope.namespace);
        if !wanted.iter().any(|w| w == name) || namespace != scope.namespace {
            continue;
        }
        if let Some(Some(record)) = own_record(&cluster)
            && record.is_live_at(scope.now)
            && !HeldState::of(&cluster).is_empty()
        {
            return Ok(Some(LiveLease::of(&record, Some(name.to_string()))));
        }
    }
    Ok(None)
}

fn is_configmap(node: &Node) -> bool {
    objects::is_ha_configmap(node) && node.str_at(&["kind"]) == Some("ConfigMap")
}

fn check_delete(old: &Node, scope: &LeaseScope<'_>) -> Result<Vec<Finding>, ReviewError> {
    if !is_configmap(old) {
        return Ok(Vec::new());
    }
    let name = old.str_at(&["metadata", "name"]).unwrap_or("");
    // A lock and nothing else loses nothing: Flink's own graceful shutdown releases the
    // lock, takes it again and deletes the emptied ConfigMap (no plans, no leader entries).
    let held = HeldState::of(old);
    if held.is_empty() {
        return Ok(Vec::new());
    }
    match own_record(old) {
        Some(None) => Ok(Vec::new()),
        Some(Some(record)) => {
            if !record.is_live_at(scope.now) {
                return Ok(Vec::new());
            }
            let lease = LiveLease::of(&record, None);
            Ok(vec![
                Finding::new(
                    RuleId::HA205,
                    format!(
                        "`{name}` holds a live leader record (holder {}, lease until {}) and {held}: deleting it crashes the running cluster and loses its HA metadata",
                        lease.holder, lease.expiry
                    ),
                    "stop the Flink cluster first (its lease then expires or is released), or turn HA205 off in the webhook settings for a planned teardown",
                )
                .path(format!("metadata.annotations.{}", leader_record::ANNOTATION)),
            ])
        }
        // No lease of its own: a job ConfigMap goes by its cluster's.
        None => {
            let Some((job_id, cluster_ids)) = job_cluster_ids(old, name) else {
                return Ok(Vec::new());
            };
            let Some(lease) = cluster_lease(&cluster_ids, scope)? else {
                return Ok(Vec::new());
            };
            Ok(vec![
                Finding::new(
                    RuleId::HA205,
                    format!(
                        "`{name}` (job {job_id}) holds {held}, and {lease}: deleting it loses the job's checkpoints, and the next JobManager failover restarts the job empty"
                    ),
                    "let the job end first (Flink removes its pointers and counter, then the ConfigMap), or stop the cluster (its lease then expires or is released); for a planned teardown use an HA205 exemption or turn HA205 off in the webhook settings",
                )
                .path("data"),
            ])
        }
    }
}

/// An UPDATE of an HA ConfigMap under a live lease may take entries away only as Flink
/// (and `flink-ha jobmanager`) do: a pointer after it was marked for deletion, the
/// counter after the last checkpoint, one leader entry at a time (or several together
/// with the lock, in a release).
fn check_update(old: &Node, new: &Node, scope: &LeaseScope<'_>) -> Result<Vec<Finding>, ReviewError> {
    if !is_configmap(old) {
        return Ok(Vec::new());
    }
    let name = old.str_at(&["metadata", "name"]).unwrap_or("");
    let own = own_record(old);
    let mut removed = Removed::between(old, new);
    if removed.leader_entries.len() > 1
        && let Some(Some(old_record)) = &own
    {
        // A release (the holder cleared) or a takeover goes with the entries it ends.
        let new_record = own_record(new).flatten();
        let same_holder =
            new_record.is_some_and(|r| r.is_live_at(scope.now) && r.holder_identity == old_record.holder_identity);
        if !same_holder {
            removed.leader_entries.clear();
        }
    }
    if removed.is_empty() {
        return Ok(Vec::new());
    }
    let lease = match own {
        Some(None) => None,
        Some(Some(record)) => record.is_live_at(scope.now).then(|| LiveLease::of(&record, None)),
        None => match job_cluster_ids(old, name) {
            Some((_, cluster_ids)) => cluster_lease(&cluster_ids, scope)?,
            None => None,
        },
    };
    let Some(lease) = lease else {
        return Ok(Vec::new());
    };
    let first = removed
        .pointers
        .first()
        .or(removed.leader_entries.first())
        .cloned()
        .unwrap_or_else(|| flink::COUNTER_KEY.to_string());
    Ok(vec![
        Finding::new(
            RuleId::HA205,
            format!(
                "this update takes {removed} out of `{name}` while {lease}: Flink never removes them that way (it marks a pointer for deletion first, drops the counter after the last checkpoint, and one leader entry at a time), and the running cluster loses what it recovers from"
            ),
            "leave HA entries to Flink: let the job end or stop the cluster first; for a planned repair use an HA205 exemption or turn HA205 off in the webhook settings",
        )
        .path(format!("data.{first}")),
    ])
}

/// What an UPDATE takes out of an HA ConfigMap that Flink would not take that way.
#[derive(Default)]
struct Removed {
    /// Plan and checkpoint keys removed without a delete mark.
    pointers: Vec<String>,
    /// The counter removed while a checkpoint pointer not marked for deletion stays.
    counter: bool,
    /// Leader entry keys removed.
    leader_entries: Vec<String>,
}

impl Removed {
    fn between(old: &Node, new: &Node) -> Removed {
        let (before, after) = (data_entries(old), data_entries(new));
        let stays: std::collections::HashSet<&str> = after.iter().map(|(k, _)| *k).collect();
        let mut removed = Removed::default();
        for (key, value) in before.into_iter().filter(|(k, _)| !stays.contains(k)) {
            let bare = key.strip_prefix(flink::RUNTIME_KEY_PREFIX).unwrap_or(key);
            if is_pointer_key(bare) {
                // Unmarked under a format that marks: not how Flink removes it. A pointer
                // of Flink before 1.15 has no mark, and Flink removed it in one step.
                if HaPointer::removal_mark(key, value) == Some(false) {
                    removed.pointers.push(key.to_string());
                }
            } else if bare == flink::COUNTER_KEY {
                removed.counter = after.iter().any(|(k, v)| {
                    k.strip_prefix(flink::RUNTIME_KEY_PREFIX)
                        .unwrap_or(k)
                        .starts_with(flink::CHECKPOINT_KEY_PREFIX)
                        && HaPointer::removal_mark(k, v) != Some(true)
                });
            } else if bare.starts_with(flink::LEADER_ENTRY_PREFIX) || bare == flink::LEGACY_LEADER_ADDRESS_KEY {
                removed.leader_entries.push(key.to_string());
            }
        }
        if removed.leader_entries.len() < 2 {
            removed.leader_entries.clear();
        }
        removed
    }

    fn is_empty(&self) -> bool {
        self.pointers.is_empty() && !self.counter && self.leader_entries.is_empty()
    }
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = |keys: &[String]| {
            let mut shown: Vec<String> = keys.iter().take(3).map(|k| format!("`{k}`")).collect();
            if keys.len() > 3 {
                shown.push(format!("{} more", keys.len() - 3));
            }
            shown.join(", ")
        };
        let mut parts = Vec::new();
        if !self.pointers.is_empty() {
            let what = if self.pointers.len() == 1 {
                "pointer"
            } else {
                "pointers"
            };
            parts.push(format!(
                "{} {what} not marked for deletion ({})",
                self.pointers.len(),
                keys(&self.pointers)
            ));
        }
        if self.counter {
            parts.push("the checkpoint counter while checkpoint pointers stay".to_string());
        }
        if !self.leader_entries.is_empty() {
            parts.push(format!(
                "{} leader entries at once ({})",
                self.leader_entries.len(),
                keys(&self.leader_entries)
            ));
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// A ConfigMap's `data` entries, borrowed.
fn data_entries(config_map: &Node) -> Vec<(&str, &str)> {
    config_map
        .get("data")
        .and_then(Node::as_map)
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v.as_str().unwrap_or_default())))
        .collect()
}

fn is_pointer_key(key: &str) -> bool {
    key.starts_with(flink::EXECUTION_PLAN_KEY_PREFIX)
        || key.starts_with(flink::LEGACY_JOB_GRAPH_KEY_PREFIX)
        || key.starts_with(flink::CHECKPOINT_KEY_PREFIX)
}

/// What of a running cluster's state a ConfigMap holds beside its lock: what a delete
/// would lose.
#[derive(Default)]
struct HeldState {
    plans: usize,
    checkpoints: usize,
    counter: bool,
    leader_entries: usize,
}

impl HeldState {
    fn of(config_map: &Node) -> HeldState {
        let mut held = HeldState::default();
        let keys = config_map
            .get("data")
            .and_then(Node::as_map)
            .unwrap_or_default()
            .iter()
            .filter_map(|(key, _)| key.as_str());
        for key in keys {
            // `flink-ha jobmanager`'s entries are the same state under its own prefix.
            let key = key.strip_prefix(flink::RUNTIME_KEY_PREFIX).unwrap_or(key);
            if key.starts_with(flink::EXECUTION_PLAN_KEY_PREFIX) || key.starts_with(flink::LEGACY_JOB_GRAPH_KEY_PREFIX)
            {
                held.plans += 1;
            } else if key.starts_with(flink::CHECKPOINT_KEY_PREFIX) {
                held.checkpoints += 1;
            } else if key == flink::COUNTER_KEY {
                held.counter = true;
            } else if key.starts_with(flink::LEADER_ENTRY_PREFIX) || key == flink::LEGACY_LEADER_ADDRESS_KEY {
                held.leader_entries += 1;
            }
        }
        held
    }

    fn is_empty(&self) -> bool {
        self.plans == 0 && self.checkpoints == 0 && !self.counter && self.leader_entries == 0
    }
}

impl std::fmt::Display for HeldState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        if self.plans > 0 {
            parts.push(plural(self.plans, "execution plan", "execution plans"));
        }
        if self.checkpoints > 0 {
            parts.push(plural(self.checkpoints, "checkpoint pointer", "checkpoint pointers"));
        }
        if self.counter {
            parts.push("a checkpoint counter".to_string());
        }
        if self.leader_entries > 0 {
            parts.push(plural(self.leader_entries, "leader entry", "leader entries"));
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// A warning short enough for kubectl: the rule and its title, and what it is about.
/// The full message is in the findings (and the webhook's log).
fn warning_line(f: &Finding) -> String {
    let line = match f.key.as_deref().or(f.path.as_deref()) {
        Some(subject) => format!("[{}] {}: {subject}", f.rule, f.rule.title()),
        None => format!("[{}] {}", f.rule, f.rule.title()),
    };
    shorten(&line)
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_WARNING_CHARS {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_WARNING_CHARS - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::{Value, json};

    const NAMESPACE: &str = "default";
    const CLUSTER_CM: &str = "real-flink-cluster-config-map";
    const JOB_CM: &str = "real-flink-25fc957960a1789dd1ef3466290fa995-config-map";
    const CHECKPOINT: &str = "checkpointID-0000000000000000066";

    /// The real Flink 2.3 capture after a recovery: (job ConfigMap, cluster ConfigMap).
    /// The job ConfigMap holds checkpoint 66 and the counter, and no leader annotation.
    fn real_configmaps() -> (Value, Value) {
        let text = include_str!("../tests/fixtures/inspect-real-flink-2.3-after-recovery/configmaps.yaml");
        let list: Value = serde_yaml::from_str(text).unwrap();
        let items = list["items"].as_array().unwrap();
        let (job, cluster) = (items[0].clone(), items[1].clone());
        assert_eq!(job["metadata"]["name"], JOB_CM);
        assert!(job["metadata"]["annotations"].is_null());
        assert_eq!(cluster["metadata"]["name"], CLUSTER_CM);
        (job, cluster)
    }

    /// The capture's lease: renewed at 06:37:18.525509Z for 15 s.
    fn live() -> i64 {
        "2026-11-28T06:37:23Z".parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn expired() -> i64 {
        "2026-11-28T06:38:30Z".parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn body(operation: &str, old: Option<&Value>, new: Option<&Value>, user: &str) -> String {
        let name = old
            .or(new)
            .map(|o| o["metadata"]["name"].clone())
            .unwrap_or(Value::Null);
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "3c1e2d4f-0000-4000-8000-000000000205",
                "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                "resource": {"group": "", "version": "v1", "resource": "configmaps"},
                "name": name,
                "namespace": NAMESPACE,
                "operation": operation,
                "userInfo": {"username": user},
                "oldObject": old,
                "object": new,
            }
        })
        .to_string()
    }

    fn found(cluster: &Value) -> ReviewContext {
        ReviewContext::Found(vec![cluster.to_string()])
    }

    fn run(body: &str, now: i64, context: Option<&ReviewContext>) -> Result<Reviewed, ReviewError> {
        review_in_context(body, now, &ReviewSettings::default(), context)
    }

    fn rules(reviewed: &Reviewed) -> Vec<&str> {
        reviewed.findings.iter().map(|f| f.rule.as_str()).collect()
    }

    /// `value` with Flink's delete mark set, as Flink's first removal step writes it.
    fn marked(value: &str) -> String {
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(value).unwrap();
        let field = bytes.windows(17).position(|w| w == b"markedForDeletion").unwrap();
        // The class description ends (TC_ENDBLOCKDATA, no superclass: TC_NULL); the
        // object's data starts with the boolean.
        let end = field + bytes[field..].windows(2).position(|w| w == [0x78, 0x70]).unwrap();
        assert_eq!(bytes[end + 2], 0);
        bytes[end + 2] = 1;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert!(HaPointer::decode(&text).unwrap().marked_for_deletion);
        text
    }

    fn without(object: &Value, keys: &[&str]) -> Value {
        let mut object = object.clone();
        let data = object["data"].as_object_mut().unwrap();
        for key in keys {
            data.remove(*key);
        }
        object
    }

    #[test]
    fn deleting_the_real_job_configmap_under_its_clusters_live_lease_is_denied() {
        let (job, cluster) = real_configmaps();
        let reviewed = run(
            &body("DELETE", Some(&job), None, "admin"),
            live(),
            Some(&found(&cluster)),
        )
        .unwrap();
        assert!(!reviewed.allowed, "{}", reviewed.response);
        assert_eq!(rules(&reviewed), ["HA205"]);
        let message = &reviewed.findings[0].message;
        for part in [
            "1 checkpoint pointer, a checkpoint counter",
            "(job 25fc957960a1789dd1ef3466290fa995) holds",
            "`real-flink-cluster-config-map` holds a live leader record, holder 6f46063f-947d-4e5c-9045-709dda02fdae",
            "restarts the job empty",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
        let response: Value = serde_json::from_str(&reviewed.response).unwrap();
        assert_eq!(response["response"]["status"]["code"], 403);
        assert!(
            response["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with("[HA205] `real-flink-25fc957960a1789dd1ef3466290fa995-config-map` (job")
        );
    }

    #[test]
    fn deleting_it_once_the_lease_expired_is_admitted() {
        let (job, cluster) = real_configmaps();
        let reviewed = run(
            &body("DELETE", Some(&job), None, "admin"),
            expired(),
            Some(&found(&cluster)),
        )
        .unwrap();
        assert!(reviewed.allowed, "{}", reviewed.response);
        assert!(reviewed.findings.is_empty());
        // A released lock (holder cleared) is not live either, nor is a cluster
        // ConfigMap that is gone.
        let mut released = cluster.clone();
        let record = r#"{"holderIdentity":"","leaseDuration":"PT15S","acquireTime":"2026-11-28T06:36:28.496485Z","renewTime":"2026-11-28T06:37:18.525509Z","leaderTransitions":1}"#;
        released["metadata"]["annotations"][leader_record::ANNOTATION] = json!(record);
        let reviewed = run(
            &body("DELETE", Some(&job), None, "admin"),
            live(),
            Some(&found(&released)),
        )
        .unwrap();
        assert!(reviewed.allowed, "{}", reviewed.response);
        let gone = ReviewContext::Found(Vec::new());
        assert!(
            run(&body("DELETE", Some(&job), None, "admin"), live(), Some(&gone))
                .unwrap()
                .allowed
        );
    }

    #[test]
    fn without_context_the_review_names_the_cluster_configmap_it_needs() {
        let (job, _) = real_configmaps();
        let needed = run(&body("DELETE", Some(&job), None, "admin"), live(), None).unwrap_err();
        assert_eq!(
            needed,
            ReviewError::ContextNeeded(vec![ObjectRef {
                namespace: NAMESPACE.into(),
                name: CLUSTER_CM.into()
            }])
        );
        assert!(
            needed
                .to_string()
                .starts_with("the decision depends on ConfigMap default/real-flink-cluster-config-map")
        );
        // An `app` label that names another cluster: both are asked for.
        let mut relabelled = job.clone();
        relabelled["metadata"]["labels"]["app"] = json!("other-flink");
        let Err(ReviewError::ContextNeeded(refs)) =
            run(&body("DELETE", Some(&relabelled), None, "admin"), live(), None)
        else {
            panic!("no context asked for");
        };
        let names: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, [CLUSTER_CM, "other-flink-cluster-config-map"]);
    }

    #[test]
    fn a_context_that_could_not_be_read_is_an_error_when_the_decision_needs_it() {
        let (job, _) = real_configmaps();
        let unknown =
            ReviewContext::Unknown("reading default/real-flink-cluster-config-map timed out after 1 s".into());
        let error = run(&body("DELETE", Some(&job), None, "admin"), live(), Some(&unknown)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the decision depends on the cluster's lease, which could not be read: reading default/real-flink-cluster-config-map timed out after 1 s"
        );
        // A decision that does not need it is made as usual: an emptied job ConfigMap.
        let emptied = without(&job, &[CHECKPOINT, "counter"]);
        assert!(
            run(&body("DELETE", Some(&emptied), None, "admin"), live(), Some(&unknown))
                .unwrap()
                .allowed
        );
    }

    #[test]
    fn an_update_that_takes_checkpoint_entries_away_under_a_live_lease_is_denied() {
        let (job, cluster) = real_configmaps();
        let context = found(&cluster);
        // The pointer, unmarked.
        let update = body("UPDATE", Some(&job), Some(&without(&job, &[CHECKPOINT])), "admin");
        let reviewed = run(&update, live(), Some(&context)).unwrap();
        assert!(!reviewed.allowed, "{}", reviewed.response);
        assert_eq!(rules(&reviewed), ["HA205"]);
        assert!(
            reviewed.findings[0]
                .message
                .contains("1 pointer not marked for deletion (`checkpointID-0000000000000000066`)"),
            "{}",
            reviewed.findings[0].message
        );
        assert_eq!(
            reviewed.findings[0].path.as_deref(),
            Some("data.checkpointID-0000000000000000066")
        );
        // Everything at once (`kubectl apply` of an empty data).
        let update = body(
            "UPDATE",
            Some(&job),
            Some(&without(&job, &[CHECKPOINT, "counter"])),
            "admin",
        );
        assert!(!run(&update, live(), Some(&context)).unwrap().allowed);
        // The counter alone, under the checkpoint.
        let update = body("UPDATE", Some(&job), Some(&without(&job, &["counter"])), "admin");
        let reviewed = run(&update, live(), Some(&context)).unwrap();
        assert!(!reviewed.allowed);
        assert!(
            reviewed.findings[0]
                .message
                .contains("the checkpoint counter while checkpoint pointers stay")
        );
        // Expired: admitted.
        assert!(run(&update, expired(), Some(&context)).unwrap().allowed);
    }

    #[test]
    fn flinks_own_job_cleanup_and_checkpoint_subsumption_are_admitted_without_a_lookup() {
        let (job, cluster) = real_configmaps();
        let context = found(&cluster);
        let pointer = job["data"][CHECKPOINT].as_str().unwrap().to_string();
        let mut marked_job = job.clone();
        marked_job["data"][CHECKPOINT] = json!(marked(&pointer));
        // Subsumption: checkpoint 67 in, 66 marked, then 66 removed; the counter moves on.
        let mut added = marked_job.clone();
        added["data"]["checkpointID-0000000000000000067"] = json!(pointer);
        added["data"]["counter"] = json!("68");
        let subsumed = without(&added, &[CHECKPOINT]);
        // The job ends: its last checkpoint marked and removed, then the counter, then
        // the emptied ConfigMap deleted.
        let gone = without(&marked_job, &[CHECKPOINT]);
        let emptied = without(&gone, &["counter"]);
        let steps = [
            body(
                "UPDATE",
                Some(&job),
                Some(&added),
                "system:serviceaccount:default:flink",
            ),
            body(
                "UPDATE",
                Some(&added),
                Some(&subsumed),
                "system:serviceaccount:default:flink",
            ),
            body(
                "UPDATE",
                Some(&job),
                Some(&marked_job),
                "system:serviceaccount:default:flink",
            ),
            body(
                "UPDATE",
                Some(&marked_job),
                Some(&gone),
                "system:serviceaccount:default:flink",
            ),
            body(
                "UPDATE",
                Some(&gone),
                Some(&emptied),
                "system:serviceaccount:default:flink",
            ),
            body("DELETE", Some(&emptied), None, "system:serviceaccount:default:flink"),
        ];
        for (i, step) in steps.iter().enumerate() {
            // None of these needs the cluster's lease: no lookup, and admitted with it.
            let reviewed = run(step, live(), None).unwrap_or_else(|e| panic!("step {i}: {e}"));
            assert!(reviewed.allowed, "step {i}: {}", reviewed.response);
            let reviewed = run(step, live(), Some(&context)).unwrap();
            assert!(reviewed.allowed, "step {i}: {}", reviewed.response);
            assert!(reviewed.findings.is_empty(), "step {i}: {:?}", reviewed.findings);
        }
    }

    #[test]
    fn a_cluster_holding_only_its_lock_is_shutting_down_and_its_job_configmaps_may_go() {
        // Flink's graceful shutdown: leader entries and plans gone, the lock taken again,
        // then every HA ConfigMap deleted by label, job ConfigMaps first.
        let (job, cluster) = real_configmaps();
        let mut lock_only = cluster.clone();
        lock_only["data"] = json!({});
        let reviewed = run(
            &body("DELETE", Some(&job), None, "system:serviceaccount:default:flink"),
            live(),
            Some(&found(&lock_only)),
        )
        .unwrap();
        assert!(reviewed.allowed, "{}", reviewed.response);
    }

    #[test]
    fn ha205_off_needs_no_lookup_and_an_exemption_still_waives_it() {
        let (job, cluster) = real_configmaps();
        let delete = body(
            "DELETE",
            Some(&job),
            None,
            "system:serviceaccount:flink-operator:flink-operator",
        );
        let off = ReviewSettings {
            disabled_rules: vec!["HA205".into()],
            ..ReviewSettings::default()
        };
        assert!(review_in_context(&delete, live(), &off, None).unwrap().allowed);

        let exempt: Vec<Exemption> = serde_json::from_value(json!([{
            "name": "operator-teardown",
            "rules": ["HA205"],
            "users": ["system:serviceaccount:flink-operator:flink-operator"]
        }]))
        .unwrap();
        let settings = ReviewSettings {
            exemptions: exempt,
            ..ReviewSettings::default()
        };
        let reviewed = review_in_context(&delete, live(), &settings, Some(&found(&cluster))).unwrap();
        assert!(reviewed.allowed, "{}", reviewed.response);
        assert_eq!(reviewed.exempted.len(), 1);
        assert_eq!(reviewed.exempted[0].rule, RuleId::HA205);
        let admin = body("DELETE", Some(&job), None, "admin");
        assert!(
            !review_in_context(&admin, live(), &settings, Some(&found(&cluster)))
                .unwrap()
                .allowed
        );
    }

    #[test]
    fn an_update_cannot_add_its_own_opt_out_annotation_with_the_violation() {
        let (_, cluster) = real_configmaps();
        let plan = "executionPlan-25fc957960a1789dd1ef3466290fa995";
        let exempt: Vec<Exemption> = serde_json::from_value(json!([{
            "name": "opt-out",
            "rules": ["HA205"],
            "namespaces": [NAMESPACE],
            "objectAnnotation": true
        }]))
        .unwrap();
        let settings = ReviewSettings {
            exemptions: exempt,
            ..ReviewSettings::default()
        };
        let annotate = |object: &Value| {
            let mut object = object.clone();
            object["metadata"]["annotations"]["flink-ha.io/ignore"] = json!("HA205");
            object["metadata"]["annotations"]["flink-ha.io/ignore-reason"] = json!("self-service");
            object
        };
        // The waiver arrives with the violation: the old object had none, so it stands.
        let update = body(
            "UPDATE",
            Some(&cluster),
            Some(&annotate(&without(&cluster, &[plan]))),
            "admin",
        );
        let reviewed = review_in_context(&update, live(), &settings, None).unwrap();
        assert!(!reviewed.allowed, "{}", reviewed.response);
        assert!(reviewed.exempted.is_empty());
        // Annotated beforehand (the old object has it): waived.
        let annotated = annotate(&cluster);
        let update = body("UPDATE", Some(&annotated), Some(&without(&annotated, &[plan])), "admin");
        let reviewed = review_in_context(&update, live(), &settings, None).unwrap();
        assert!(reviewed.allowed, "{}", reviewed.response);
        assert_eq!(reviewed.exempted.len(), 1);
    }

    #[test]
    fn the_cluster_configmap_keeps_its_plans_and_leader_entries_from_updates_under_its_own_lease() {
        let (_, cluster) = real_configmaps();
        let plan = "executionPlan-25fc957960a1789dd1ef3466290fa995";
        let dispatcher = "org.apache.flink.k8s.leader.dispatcher";
        let job_leader = "org.apache.flink.k8s.leader.job-25fc957960a1789dd1ef3466290fa995";
        let update = |new: &Value| body("UPDATE", Some(&cluster), Some(new), "admin");
        // No lookup: the cluster ConfigMap carries its own lease.
        let reviewed = run(&update(&without(&cluster, &[plan])), live(), None).unwrap();
        assert!(!reviewed.allowed);
        assert!(reviewed.findings[0].message.contains("it holds a live leader record"));
        let reviewed = run(&update(&without(&cluster, &[dispatcher, job_leader])), live(), None).unwrap();
        assert!(!reviewed.allowed);
        assert!(reviewed.findings[0].message.contains("2 leader entries at once"));
        // Flink: one component's entry as it stops, a marked plan as its job ends.
        assert!(
            run(&update(&without(&cluster, &[job_leader])), live(), None)
                .unwrap()
                .allowed
        );
        let mut marked_plan = cluster.clone();
        marked_plan["data"][plan] = json!(marked(cluster["data"][plan].as_str().unwrap()));
        let remove_marked = body(
            "UPDATE",
            Some(&marked_plan),
            Some(&without(&marked_plan, &[plan])),
            "admin",
        );
        assert!(run(&remove_marked, live(), None).unwrap().allowed);
        // A release takes the lock and the process's entries in one write.
        let mut released = without(&cluster, &[dispatcher, job_leader]);
        let record = r#"{"holderIdentity":"","leaseDuration":"PT1S","acquireTime":"2026-11-28T06:37:20Z","renewTime":"2026-11-28T06:37:20Z","leaderTransitions":1}"#;
        released["metadata"]["annotations"][leader_record::ANNOTATION] = json!(record);
        assert!(run(&update(&released), live(), None).unwrap().allowed);
        // Expired: nothing runs to lose it.
        assert!(
            run(&update(&without(&cluster, &[plan])), expired(), None)
                .unwrap()
                .allowed
        );
    }
}
