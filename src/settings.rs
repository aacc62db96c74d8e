//! The policy settings file, one format for both places it is read:
//!
//! - `.flink-ha.yaml` for `flink-ha lint`, found from the working directory upward: rules
//!   off or at another severity, per path glob;
//! - `flink-ha webhook --settings FILE`: rules off, and scoped exemptions
//!   ([`crate::exemptions`]).
//!
//! ```yaml
//! rules:                  # per rule: error, warning, info or off
//!   HA117: off
//! overrides:              # lint only; later entries win; globs relative to the file
//!   - paths: ["staging/**"]
//!     rules: {HA106: off}
//! exemptions:             # webhook only
//!   - name: operator-teardown
//!     rules: [HA205]
//!     users: ["system:serviceaccount:flink-operator:flink-operator"]
//! ```
//!
//! Parsing checks everything that can be checked without I/O (rule ids, selectors,
//! exemptions) and names the line of what it refuses; a file is used whole or not at
//! all. `flink-ha schema --settings` prints [`schema`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::exemptions::Exemption;
use crate::rules::RuleId;

/// What a setting does to a rule's findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Report the rule's findings as errors (lint).
    Error,
    /// Report the rule's findings as warnings (lint).
    Warning,
    /// Report the rule's findings as infos (lint).
    Info,
    /// Turn the rule off: its findings are dropped.
    Off,
}

/// A settings file, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySettings {
    /// The level of each rule listed under `rules`, for every input.
    pub rules: Vec<(RuleId, Level)>,
    /// The `overrides` entries, in file order (later ones win).
    pub overrides: Vec<Override>,
    /// The `exemptions` (webhook only), each checked.
    pub exemptions: Vec<Exemption>,
}

impl PolicySettings {
    /// The rules `rules` turns off, in file order: what `flink-ha review` and the
    /// webhook honour (they leave other levels and `overrides` to `flink-ha lint`).
    pub fn rules_off(&self) -> impl Iterator<Item = RuleId> + '_ {
        self.rules
            .iter()
            .filter(|(_, level)| *level == Level::Off)
            .map(|(rule, _)| *rule)
    }
}

/// Rules for the inputs some path globs match (lint only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// Globs relative to the settings file's folder (compiled by the CLI).
    pub paths: Vec<String>,
    /// The level of each rule listed under the override's `rules`.
    pub rules: Vec<(RuleId, Level)>,
}

/// Why a settings file was refused, and where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{line}:{column}: {message}")]
pub struct SettingsError {
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
    /// What is wrong there.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    #[serde(default)]
    rules: BTreeMap<String, Level>,
    #[serde(default)]
    overrides: Vec<OverrideFile>,
    #[serde(default)]
    exemptions: Vec<Exemption>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideFile {
    paths: Vec<String>,
    #[serde(default)]
    rules: BTreeMap<String, Level>,
}

/// Reads and checks a settings file's text.
pub fn parse(text: &str) -> Result<PolicySettings, SettingsError> {
    // An empty file (or only comments) is no settings, not an error.
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(PolicySettings::default());
    }
    let file: SettingsFile = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        SettingsError {
            line,
            column,
            message: e.to_string(),
        }
    })?;
    let at = |needle: &str, message: String| {
        let (line, column) = place_of(text, needle);
        SettingsError { line, column, message }
    };
    let rules_of = |rules: &BTreeMap<String, Level>| -> Result<Vec<(RuleId, Level)>, SettingsError> {
        rules
            .iter()
            .map(|(id, level)| match RuleId::parse(id) {
                Some(rule) => Ok((rule, *level)),
                None => Err(at(id, format!("`{id}` is not a rule (`flink-ha rules` lists them)"))),
            })
            .collect()
    };
    let rules = rules_of(&file.rules)?;
    let mut overrides = Vec::new();
    for o in &file.overrides {
        if o.paths.is_empty() {
            return Err(at("overrides", "an override without `paths`".into()));
        }
        overrides.push(Override {
            paths: o.paths.clone(),
            rules: rules_of(&o.rules)?,
        });
    }
    let mut names = std::collections::BTreeSet::new();
    for exemption in &file.exemptions {
        exemption.check().map_err(|e| {
            let needle = if e.value.is_empty() {
                "exemptions"
            } else {
                e.value.as_str()
            };
            at(needle, e.to_string())
        })?;
        if !names.insert(exemption.name.as_str()) {
            return Err(at(
                &exemption.name,
                format!(
                    "two exemptions are named `{}`; metrics and warnings need them apart",
                    exemption.name
                ),
            ));
        }
    }
    Ok(PolicySettings {
        rules,
        overrides,
        exemptions: file.exemptions,
    })
}

/// The lines of `text` as the YAML parser counts them in its error lines: LF, CRLF, and
/// also a lone CR, NEL, LS and PS (YAML 1.1 line breaks), which `str::lines` does not
/// know (found by the `settings` fuzz target).
pub fn yaml_lines(text: &str) -> Vec<&str> {
    let (mut lines, mut start) = (Vec::new(), 0);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}') {
            lines.push(&text[start..i]);
            start = i + c.len_utf8();
            if c == '\r' && chars.peek().map(|&(_, next)| next) == Some('\n') {
                chars.next();
                start += 1;
            }
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// The 1-based line and column of the first non-comment line holding `needle`.
fn place_of(text: &str, needle: &str) -> (usize, usize) {
    yaml_lines(text)
        .into_iter()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#'))
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, l[..c].chars().count() + 1)))
        .unwrap_or((1, 1))
}

/// The JSON Schema of the settings file (`flink-ha schema --settings`).
pub fn schema() -> Value {
    let rule_ids: Vec<&str> = crate::rules::catalogue().iter().map(|r| r.id.as_str()).collect();
    let rules = json!({
        "type": "object",
        "description": "Per rule id: error, warning or info changes its severity (lint); off turns it off.",
        "propertyNames": {"enum": rule_ids},
        "additionalProperties": {"enum": ["error", "warning", "info", "off"]}
    });
    let strings = json!({"type": "array", "items": {"type": "string", "minLength": 1}});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "flink-ha policy settings (.flink-ha.yaml, flink-ha webhook --settings)",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "rules": rules,
            "overrides": {
                "description": "flink-ha lint only: rules for the inputs the path globs match; later entries win.",
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["paths"],
                    "properties": {
                        "paths": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        "rules": rules
                    }
                }
            },
            "exemptions": {
                "description": "flink-ha webhook only: rules waived for some requests. Every condition given must hold; at least one is needed.",
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "rules"],
                    "anyOf": [
                        {"required": ["namespaces"]},
                        {"required": ["namespaceSelector"]},
                        {"required": ["users"]},
                        {"required": ["groups"]},
                        {"required": ["objectAnnotation"]}
                    ],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "description": "Named in warnings, logs and metrics."},
                        "rules": {"type": "array", "minItems": 1, "items": {"enum": rule_ids}},
                        "namespaces": strings,
                        "namespaceSelector": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "matchExpressions": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": false,
                                        "required": ["key", "operator"],
                                        "properties": {
                                            "key": {"type": "string", "minLength": 1},
                                            "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                                            "values": {"type": "array", "items": {"type": "string"}}
                                        }
                                    }
                                }
                            }
                        },
                        "users": {"description": "userInfo.username, e.g. system:serviceaccount:NS:NAME", "type": "array", "items": {"type": "string", "minLength": 1}},
                        "groups": strings,
                        "objectAnnotation": {
                            "description": "The object may opt out of these rules by listing them in the flink-ha.io/ignore annotation, read from the object as it was before the request (oldObject on UPDATE and DELETE). An error rule also needs flink-ha.io/ignore-reason, is never waived on CREATE, and needs users, groups, namespaces or namespaceSelector in the same exemption.",
                            "type": "boolean"
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_reads_and_what_is_wrong_is_refused_at_its_line() {
        let text = "rules:\n  HA117: off\noverrides:\n  - paths: [\"dev/**\"]\n    rules: {HA106: warning}\nexemptions:\n  - name: operator-teardown\n    rules: [HA205]\n    users: [\"system:serviceaccount:flink-operator:flink-operator\"]\n";
        let settings = parse(text).unwrap();
        assert_eq!(settings.rules, vec![(RuleId::HA117, Level::Off)]);
        assert_eq!(settings.overrides[0].rules, vec![(RuleId::HA106, Level::Warning)]);
        assert_eq!(settings.exemptions[0].name, "operator-teardown");

        let unknown = "exemptions:\n  - name: a\n    rules: [HA205]\n    users: [u]\n  - name: b\n    rules: [HA999]\n    users: [u]\n";
        let e = parse(unknown).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("`HA999` is not a rule"), "{e}");

        let selector = "exemptions:\n  - name: a\n    rules: [HA201]\n    namespaceSelector:\n      matchExpressions:\n        - {key: stage, operator: Equals, values: [x]}\n";
        let e = parse(selector).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("`Equals` is not an operator"), "{e}");

        let typo = "exemptions:\n  - name: a\n    rules: [HA201]\n    user: [u]\n";
        let e = parse(typo).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("unknown field `user`"), "{e}");

        let twice =
            "exemptions:\n  - {name: a, rules: [HA201], users: [u]}\n  - {name: a, rules: [HA205], users: [v]}\n";
        assert!(parse(twice).unwrap_err().message.contains("two exemptions"));

        assert_eq!(parse("# nothing yet\n").unwrap(), PolicySettings::default());
    }

    #[test]
    fn lines_end_at_lf_crlf_and_a_lone_cr_as_in_yaml() {
        assert_eq!(yaml_lines("a\nb\r\nc\rd\u{85}e"), vec!["a", "b", "c", "d", "e"]);
        let e = parse("exemptions:\r  - name: a\r    rules: [HA999]\r    users: [u]\r").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn the_schema_names_every_rule_and_the_exemption_fields() {
        let schema = schema().to_string();
        for needle in [
            "HA205",
            "namespaceSelector",
            "objectAnnotation",
            "DoesNotExist",
            "overrides",
        ] {
            assert!(schema.contains(needle), "{needle}");
        }
    }

    #[test]
    fn an_error_rule_waived_by_annotation_alone_is_refused_at_its_line() {
        let text = "exemptions:\n  - name: operator-teardown\n    rules: [HA205]\n    users: [u]\n  - name: opt-out\n    rules: [HA205]\n    objectAnnotation: true\n";
        let error = parse(text).unwrap_err();
        assert_eq!(error.line, 5, "{error}");
        assert!(
            error.message.contains("HA205") && error.message.contains("objectAnnotation"),
            "{error}"
        );
        let scoped = "exemptions:\n  - name: opt-out\n    rules: [HA205]\n    namespaces: [legacy]\n    objectAnnotation: true\n";
        parse(scoped).unwrap();
    }
}
