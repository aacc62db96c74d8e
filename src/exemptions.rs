//! Scoped exemptions of the admission review: which rules are waived for which requests.
//!
//! An exemption names rules and says when they are waived: in some namespaces (by name or
//! label selector), for some requesting users or groups (the AdmissionReview's
//! `userInfo`), or for objects that opt out with the `flink-ha.io/ignore` annotation
//! (read from the old object on UPDATE and DELETE; on CREATE it waives warning rules only,
//! and an exemption waiving an error rule by annotation also needs a subject or namespace).
//! Every condition given must hold. An exempted error finding admits the request with a
//! warning naming the exemption; an exempted warning is dropped. Both are reported, so
//! the webhook can log and count them.
//!
//! The real case behind it: the Flink Kubernetes Operator deletes a cluster's HA
//! ConfigMaps right after stopping its JobManager; if the JobManager was killed, its lease
//! is still live and HA205 denies the operator until the lease runs out. An exemption for
//! the operator's service account and HA205 lets exactly that through.

// With `settings` but not `admission`, exemptions are read and checked, never applied.
#![cfg_attr(not(feature = "admission"), allow(dead_code))]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Severity};
use crate::rules::RuleId;

/// The annotation an object lists the rules it opts out of in (`HA114,HA205`).
pub const IGNORE_ANNOTATION: &str = "flink-ha.io/ignore";
/// Why it opts out: required when an error rule is waived this way.
pub const IGNORE_REASON_ANNOTATION: &str = "flink-ha.io/ignore-reason";

/// One exemption, as the settings file writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exemption {
    /// Named in warnings, logs and metrics.
    pub name: String,
    /// The rules it waives.
    pub rules: Vec<String>,
    /// Namespaces it applies in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces it applies in, by their labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Requesting users (`userInfo.username`), e.g.
    /// `system:serviceaccount:flink-operator:flink-operator`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Requesting groups (`userInfo.groups`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Objects may opt out of these rules by listing them in `flink-ha.io/ignore`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub object_annotation: bool,
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels the namespace must have, with these exact values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements on the namespace's labels; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelRequirement {
    /// The label key the requirement is about.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values `In` and `NotIn` compare with; empty for `Exists` and `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Why an exemption cannot be used; `field` is where in it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("exemption `{exemption}`: {field}: {problem}")]
pub struct ExemptionError {
    /// The exemption's name (empty when it has none).
    pub exemption: String,
    /// The field at fault, e.g. `rules` or `namespaceSelector.matchExpressions`.
    pub field: String,
    /// What is wrong, as the rest of a sentence about the field.
    pub problem: String,
    /// The value at fault, to find its line in the settings file.
    pub value: String,
}

impl Exemption {
    /// Refuses what cannot be meant: no name, no or unknown rules, no condition (that is
    /// turning a rule off, which `rules: {HAxxx: off}` says plainly), a selector
    /// Kubernetes would refuse.
    pub fn check(&self) -> Result<(), ExemptionError> {
        let fail = |field: &str, problem: String, value: &str| ExemptionError {
            exemption: self.name.clone(),
            field: field.to_string(),
            problem,
            value: value.to_string(),
        };
        if self.name.trim().is_empty() {
            return Err(fail(
                "name",
                "every exemption needs a name (warnings and metrics carry it)".into(),
                "",
            ));
        }
        if self.rules.is_empty() {
            return Err(fail("rules", "names no rule".into(), &self.name));
        }
        for rule in &self.rules {
            if RuleId::parse(rule).is_none() {
                return Err(fail(
                    "rules",
                    format!("`{rule}` is not a rule (`flink-ha rules` lists them)"),
                    rule,
                ));
            }
        }
        let conditions = !self.namespaces.is_empty()
            || self.namespace_selector.is_some()
            || !self.users.is_empty()
            || !self.groups.is_empty()
            || self.object_annotation;
        if !conditions {
            return Err(fail(
                "rules",
                "has no condition (namespaces, namespaceSelector, users, groups or objectAnnotation); to waive a rule everywhere, set it to `off` under `rules`".into(),
                &self.name,
            ));
        }
        // An object's annotation is written by whoever writes the object: alone it would
        // let anyone who may write a ConfigMap waive an error rule. Such a waiver needs
        // a subject or a namespace scope as well.
        let scoped = !self.namespaces.is_empty()
            || self.namespace_selector.is_some()
            || !self.users.is_empty()
            || !self.groups.is_empty();
        if self.object_annotation
            && !scoped
            && let Some(rule) = self
                .rules
                .iter()
                .find(|r| RuleId::parse(r).is_some_and(|id| id.severity() == Severity::Error))
        {
            return Err(fail(
                "objectAnnotation",
                format!(
                    "`{rule}` is an error rule, and an object's own annotation cannot waive it alone; add users, groups, namespaces or namespaceSelector (or waive only warning rules here)"
                ),
                &self.name,
            ));
        }
        if let Some(selector) = &self.namespace_selector {
            if selector.match_labels.is_empty() && selector.match_expressions.is_empty() {
                return Err(fail(
                    "namespaceSelector",
                    "is empty and would select every namespace".into(),
                    "namespaceSelector",
                ));
            }
            for requirement in &selector.match_expressions {
                let values = !requirement.values.is_empty();
                match (requirement.operator.as_str(), values) {
                    ("In" | "NotIn", true) | ("Exists" | "DoesNotExist", false) => {}
                    ("In" | "NotIn", false) => {
                        return Err(fail(
                            "namespaceSelector.matchExpressions",
                            format!("`{}` needs values", requirement.operator),
                            &requirement.operator,
                        ));
                    }
                    ("Exists" | "DoesNotExist", true) => {
                        return Err(fail(
                            "namespaceSelector.matchExpressions",
                            format!("`{}` takes no values", requirement.operator),
                            &requirement.operator,
                        ));
                    }
                    (other, _) => {
                        return Err(fail(
                            "namespaceSelector.matchExpressions",
                            format!("`{other}` is not an operator (In, NotIn, Exists, DoesNotExist)"),
                            other,
                        ));
                    }
                }
                if requirement.key.trim().is_empty() {
                    return Err(fail(
                        "namespaceSelector.matchExpressions",
                        "a requirement without a key".into(),
                        "",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether this exemption waives `finding` for the request `facts` describes, and
    /// why, in words for the warning.
    fn waives(&self, finding: &Finding, facts: &RequestFacts<'_>) -> Result<String, Option<String>> {
        if !self.rules.iter().any(|r| r.eq_ignore_ascii_case(finding.rule.as_str())) {
            return Err(None);
        }
        let mut why = Vec::new();
        if !self.namespaces.is_empty() {
            if !self.namespaces.iter().any(|n| n == facts.namespace) {
                return Err(None);
            }
            why.push(format!("namespace {}", facts.namespace));
        }
        if let Some(selector) = &self.namespace_selector {
            // Labels unknown (the host could not look them up): not exempted.
            match facts.namespace_labels {
                Some(labels) if selector.matches(labels) => why.push(format!("namespace {} by label", facts.namespace)),
                _ => return Err(None),
            }
        }
        if !self.users.is_empty() {
            if !self.users.iter().any(|u| u == facts.user) {
                return Err(None);
            }
            why.push(format!("user {}", facts.user));
        }
        if !self.groups.is_empty() {
            match self.groups.iter().find(|g| facts.groups.contains(g)) {
                Some(group) => why.push(format!("group {group}")),
                None => return Err(None),
            }
        }
        if self.object_annotation {
            let listed = facts
                .annotations
                .and_then(|a| a.get(IGNORE_ANNOTATION))
                .is_some_and(|list| {
                    list.split(',')
                        .any(|r| r.trim().eq_ignore_ascii_case(finding.rule.as_str()))
                });
            if !listed {
                return Err(None);
            }
            let reason = facts
                .annotations
                .and_then(|a| a.get(IGNORE_REASON_ANNOTATION))
                .map(|r| r.trim())
                .filter(|r| !r.is_empty());
            if finding.severity == Severity::Error && facts.annotations_of_new_object {
                return Err(Some(format!(
                    "{IGNORE_ANNOTATION} lists {} on the object this request creates; an error rule is waived only by an annotation the object already had",
                    finding.rule
                )));
            }
            match (finding.severity, reason) {
                (Severity::Error, None) => {
                    return Err(Some(format!(
                        "{IGNORE_ANNOTATION} lists {} but {IGNORE_REASON_ANNOTATION} is missing, which an error rule needs",
                        finding.rule
                    )));
                }
                (_, Some(reason)) => why.push(format!("annotation: {reason}")),
                (_, None) => why.push("annotation".to_string()),
            }
        }
        Ok(why.join(", "))
    }
}

impl LabelSelector {
    /// Kubernetes' semantics: every label and every requirement must hold.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

/// What an exemption looks at in one request.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    /// The request's namespace; empty for cluster-scoped objects.
    pub namespace: &'a str,
    /// The namespace's labels when the host looked them up.
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// The requesting user (`userInfo.username`).
    pub user: &'a str,
    /// The requesting user's groups (`userInfo.groups`).
    pub groups: &'a [String],
    /// The annotations an `objectAnnotation` exemption reads: the old object's on UPDATE
    /// and DELETE (in place before this request), the new object's on CREATE.
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// `annotations` are the new object's (a CREATE): set by the very request reviewed,
    /// so they never waive an error rule.
    pub annotations_of_new_object: bool,
}

/// A finding an exemption waived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exempted {
    /// The rule of the waived finding.
    pub rule: RuleId,
    /// The severity the finding had.
    pub severity: Severity,
    /// The exemption's name.
    pub exemption: String,
    /// What matched, in words.
    pub why: String,
    /// The finding's message.
    pub message: String,
}

/// Splits `findings` into those that stand and those an exemption waives (the first
/// exemption that applies wins). An annotation that tries to waive an error rule without
/// a reason leaves the finding standing, with that said in its message.
pub fn apply(
    findings: Vec<Finding>,
    exemptions: &[Exemption],
    facts: &RequestFacts<'_>,
) -> (Vec<Finding>, Vec<Exempted>) {
    if exemptions.is_empty() {
        return (findings, Vec::new());
    }
    let mut standing = Vec::new();
    let mut exempted = Vec::new();
    'findings: for mut finding in findings {
        let mut refusal = None;
        for exemption in exemptions {
            match exemption.waives(&finding, facts) {
                Ok(why) => {
                    exempted.push(Exempted {
                        rule: finding.rule,
                        severity: finding.severity,
                        exemption: exemption.name.clone(),
                        why,
                        message: finding.message,
                    });
                    continue 'findings;
                }
                Err(Some(why)) => refusal = Some(why),
                Err(None) => {}
            }
        }
        if let Some(why) = refusal {
            finding.message = format!("{} (not exempted: {why})", finding.message);
        }
        standing.push(finding);
    }
    (standing, exempted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: RuleId) -> Finding {
        Finding::new(rule, format!("{rule} fired"), "")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn facts<'a>(
        namespace: &'a str,
        ns_labels: Option<&'a BTreeMap<String, String>>,
        user: &'a str,
        groups: &'a [String],
        annotations: Option<&'a BTreeMap<String, String>>,
    ) -> RequestFacts<'a> {
        RequestFacts {
            namespace,
            namespace_labels: ns_labels,
            user,
            groups,
            annotations,
            annotations_of_new_object: false,
        }
    }

    const OPERATOR: &str = "system:serviceaccount:flink-operator:flink-operator";

    #[test]
    fn the_operator_account_is_exempt_from_ha205_and_nobody_else_is() {
        let exemption = Exemption {
            name: "operator-teardown".into(),
            rules: vec!["HA205".into()],
            users: vec![OPERATOR.into()],
            ..Exemption::default()
        };
        exemption.check().unwrap();
        let groups = vec!["system:serviceaccounts".to_string()];
        let as_operator = facts("flink", None, OPERATOR, &groups, None);
        let (standing, exempted) = apply(
            vec![finding(RuleId::HA205)],
            std::slice::from_ref(&exemption),
            &as_operator,
        );
        assert!(standing.is_empty());
        assert_eq!(exempted[0].exemption, "operator-teardown");
        assert!(exempted[0].why.contains(OPERATOR), "{}", exempted[0].why);

        let as_someone = facts("flink", None, "alice", &[], None);
        let (standing, exempted) = apply(
            vec![finding(RuleId::HA205)],
            std::slice::from_ref(&exemption),
            &as_someone,
        );
        assert_eq!(standing.len(), 1);
        assert!(exempted.is_empty());
        // Another rule for the operator stands.
        let (standing, _) = apply(vec![finding(RuleId::HA201)], &[exemption], &as_operator);
        assert_eq!(standing.len(), 1);
    }

    #[test]
    fn namespaces_by_name_and_by_selector_and_every_condition_must_hold() {
        let selector = LabelSelector {
            match_labels: labels(&[("flink-ha.io/stage", "migration")]),
            match_expressions: vec![LabelRequirement {
                key: "team".into(),
                operator: "NotIn".into(),
                values: vec!["payments".into()],
            }],
        };
        let by_label = Exemption {
            name: "migration".into(),
            rules: vec!["HA201".into()],
            namespace_selector: Some(selector),
            ..Exemption::default()
        };
        by_label.check().unwrap();
        let migrating = labels(&[("flink-ha.io/stage", "migration"), ("team", "search")]);
        let payments = labels(&[("flink-ha.io/stage", "migration"), ("team", "payments")]);
        let waived = |ns_labels: Option<&BTreeMap<String, String>>| {
            apply(
                vec![finding(RuleId::HA201)],
                std::slice::from_ref(&by_label),
                &facts("x", ns_labels, "u", &[], None),
            )
            .1
            .len()
        };
        assert_eq!(waived(Some(&migrating)), 1);
        assert_eq!(waived(Some(&payments)), 0);
        assert_eq!(waived(None), 0, "labels unknown: not exempted");

        let both = Exemption {
            name: "legacy-by-ci".into(),
            rules: vec!["HA201".into()],
            namespaces: vec!["legacy".into()],
            groups: vec!["ci".into()],
            ..Exemption::default()
        };
        let ci = vec!["ci".to_string()];
        let waived = |ns: &str, groups: &[String]| {
            apply(
                vec![finding(RuleId::HA201)],
                std::slice::from_ref(&both),
                &facts(ns, None, "u", groups, None),
            )
            .1
            .len()
        };
        assert_eq!(waived("legacy", &ci), 1);
        assert_eq!(waived("legacy", &[]), 0);
        assert_eq!(waived("other", &ci), 0);
    }

    #[test]
    fn an_annotation_waives_an_error_rule_only_with_a_reason() {
        let exemption = Exemption {
            name: "opt-out".into(),
            rules: vec!["HA205".into(), "HA114".into()],
            object_annotation: true,
            ..Exemption::default()
        };
        let listed = labels(&[(IGNORE_ANNOTATION, "HA114, ha205")]);
        let (standing, exempted) = apply(
            vec![finding(RuleId::HA205)],
            std::slice::from_ref(&exemption),
            &facts("x", None, "u", &[], Some(&listed)),
        );
        assert!(exempted.is_empty());
        assert!(
            standing[0].message.contains("flink-ha.io/ignore-reason is missing"),
            "{}",
            standing[0].message
        );

        let with_reason = labels(&[
            (IGNORE_ANNOTATION, "HA205"),
            (IGNORE_REASON_ANNOTATION, "planned teardown, TICKET-7"),
        ]);
        let (standing, exempted) = apply(
            vec![finding(RuleId::HA205)],
            std::slice::from_ref(&exemption),
            &facts("x", None, "u", &[], Some(&with_reason)),
        );
        assert!(standing.is_empty());
        assert!(exempted[0].why.contains("TICKET-7"));

        // A warning rule needs no reason.
        let mut warning = finding(RuleId::HA114);
        warning.severity = Severity::Warning;
        let (standing, _) = apply(
            vec![warning],
            std::slice::from_ref(&exemption),
            &facts("x", None, "u", &[], Some(&listed)),
        );
        assert!(standing.is_empty());
    }

    #[test]
    fn exemptions_that_cannot_be_meant_are_refused() {
        let base = Exemption {
            name: "e".into(),
            rules: vec!["HA205".into()],
            users: vec!["u".into()],
            ..Exemption::default()
        };
        base.check().unwrap();
        let refused = |e: Exemption| e.check().unwrap_err().to_string();
        assert!(
            refused(Exemption {
                name: " ".into(),
                ..base.clone()
            })
            .contains("needs a name")
        );
        assert!(
            refused(Exemption {
                rules: vec!["HA999".into()],
                ..base.clone()
            })
            .contains("`HA999` is not a rule")
        );
        assert!(
            refused(Exemption {
                users: vec![],
                ..base.clone()
            })
            .contains("no condition")
        );
        let selector = |operator: &str, values: &[&str]| LabelSelector {
            match_expressions: vec![LabelRequirement {
                key: "k".into(),
                operator: operator.into(),
                values: values.iter().map(|v| v.to_string()).collect(),
            }],
            ..LabelSelector::default()
        };
        for (operator, values, problem) in [
            ("In", &[][..], "needs values"),
            ("Exists", &["a"][..], "takes no values"),
            ("Equals", &["a"][..], "not an operator"),
        ] {
            let e = Exemption {
                namespace_selector: Some(selector(operator, values)),
                ..base.clone()
            };
            assert!(refused(e).contains(problem), "{operator}");
        }
        let empty = Exemption {
            namespace_selector: Some(LabelSelector::default()),
            ..base
        };
        assert!(refused(empty).contains("every namespace"));
    }

    #[test]
    fn the_new_objects_annotation_never_waives_an_error_rule() {
        let exemption = Exemption {
            name: "opt-out".into(),
            rules: vec!["HA205".into(), "HA114".into()],
            namespaces: vec!["x".into()],
            object_annotation: true,
            ..Exemption::default()
        };
        exemption.check().unwrap();
        let with_reason = labels(&[
            (IGNORE_ANNOTATION, "HA205,HA114"),
            (IGNORE_REASON_ANNOTATION, "added in the same write"),
        ]);
        // CREATE: the only annotations are the new object's, set by the writer itself.
        let created = RequestFacts {
            annotations_of_new_object: true,
            ..facts("x", None, "u", &[], Some(&with_reason))
        };
        let (standing, exempted) = apply(vec![finding(RuleId::HA205)], std::slice::from_ref(&exemption), &created);
        assert!(exempted.is_empty(), "{exempted:?}");
        assert!(
            standing[0].message.contains("not exempted") && standing[0].message.contains("already"),
            "{}",
            standing[0].message
        );
        // A warning rule may still be waived by the object's own annotation.
        let mut warning = finding(RuleId::HA114);
        warning.severity = Severity::Warning;
        let (standing, _) = apply(vec![warning], std::slice::from_ref(&exemption), &created);
        assert!(standing.is_empty());
        // UPDATE and DELETE: the old object's annotations, in place before this request.
        let (standing, _) = apply(
            vec![finding(RuleId::HA205)],
            std::slice::from_ref(&exemption),
            &facts("x", None, "u", &[], Some(&with_reason)),
        );
        assert!(standing.is_empty());
    }

    #[test]
    fn an_error_rule_exemption_by_annotation_alone_is_refused() {
        let annotation_only = Exemption {
            name: "opt-out".into(),
            rules: vec!["HA114".into(), "HA205".into()],
            object_annotation: true,
            ..Exemption::default()
        };
        let error = annotation_only.check().unwrap_err();
        assert_eq!(error.field, "objectAnnotation");
        assert!(
            error.problem.contains("HA205") && error.problem.contains("users, groups, namespaces or namespaceSelector"),
            "{error}"
        );
        // Warnings only: the object may opt out on its own.
        Exemption {
            rules: vec!["HA114".into()],
            ..annotation_only.clone()
        }
        .check()
        .unwrap();
        // Scoped by a subject or a namespace: accepted.
        for scoped in [
            Exemption {
                users: vec!["u".into()],
                ..annotation_only.clone()
            },
            Exemption {
                groups: vec!["g".into()],
                ..annotation_only.clone()
            },
            Exemption {
                namespaces: vec!["n".into()],
                ..annotation_only.clone()
            },
        ] {
            scoped.check().unwrap();
        }
    }
}
