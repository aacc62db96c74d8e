//! `review`: an AdmissionReview in, the AdmissionReview response the webhook sends out.
//!
//! CREATE and UPDATE are reviewed on `object` with the same rules as `lint`; DELETE on
//! `oldObject` (HA205: never delete an HA ConfigMap that holds plans, checkpoints, a
//! counter or leader entries under a live leader; a lock alone, as Flink's own graceful
//! shutdown leaves it, may go). Error findings
//! deny with one `[HAxxx] message` line each; warnings go back as admission warnings.

use jiff::Timestamp;
use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::exemptions::{self, Exempted, Exemption, RequestFacts};
use crate::finding::{Finding, Severity};
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
/// the time is an input, never read here).
pub fn review(json: &str, now_unix_ms: i64, settings: &ReviewSettings) -> Result<Reviewed, ReviewError> {
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

    let mut findings = match request.operation {
        Operation::Create | Operation::Update => {
            let object = request.object.as_ref().map(to_node);
            let old = request.old_object.as_ref().map(to_node);
            object.map(|o| lint_admitted(&o, old.as_ref())).unwrap_or_default()
        }
        Operation::Delete => request
            .old_object
            .as_ref()
            .map(|o| check_delete(&to_node(o), now))
            .unwrap_or_default(),
        Operation::Connect => Vec::new(),
    };
    findings.retain(|f| settings.enabled(f.rule));
    let reviewed_object = match request.operation {
        Operation::Delete => request.old_object.as_ref(),
        _ => request.object.as_ref(),
    };
    let facts = RequestFacts {
        namespace: request.namespace.as_deref().unwrap_or_default(),
        namespace_labels: settings.namespace_labels.as_ref(),
        user: request.user_info.username.as_deref().unwrap_or_default(),
        groups: request.user_info.groups.as_deref().unwrap_or_default(),
        annotations: reviewed_object.and_then(|o| o.metadata.annotations.as_ref()),
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

fn check_delete(old: &Node, now: Timestamp) -> Vec<Finding> {
    if !objects::is_ha_configmap(old) || old.str_at(&["kind"]) != Some("ConfigMap") {
        return Vec::new();
    }
    let Some(record) = old.str_at(&["metadata", "annotations", leader_record::ANNOTATION]) else {
        return Vec::new();
    };
    let Ok(record) = LeaderRecord::parse(record) else {
        return Vec::new();
    };
    if !record.is_live_at(now) {
        return Vec::new();
    }
    // A lock and nothing else loses nothing: Flink's own graceful shutdown releases the
    // lock, takes it again and deletes the emptied ConfigMap (no plans, no leader entries).
    let held = HeldState::of(old);
    if held.is_empty() {
        return Vec::new();
    }
    let name = old.str_at(&["metadata", "name"]).unwrap_or("");
    let expiry = record
        .renew_time
        .checked_add(jiff::SignedDuration::try_from(record.lease_duration).unwrap_or_default())
        .map(|t| t.to_string())
        .unwrap_or_default();
    vec![
        Finding::new(
            RuleId::HA205,
            format!(
                "`{name}` holds a live leader record (holder {}, lease until {expiry}) and {held}: deleting it crashes the running cluster and loses its HA metadata",
                record.holder_identity
            ),
            "stop the Flink cluster first (its lease then expires or is released), or turn HA205 off in the webhook settings for a planned teardown",
        )
        .path(format!("metadata.annotations.{}", leader_record::ANNOTATION)),
    ]
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
        use crate::ha_layout as flink;
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
