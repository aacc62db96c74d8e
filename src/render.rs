//! The output formats of a lint run: text (like compilers), JSON (the contract in
//! spec/rules.md) and SARIF 2.1.0 (for code-scanning UIs). Pure string building, so the
//! CLI, the browser page and the Wasm component print exactly the same bytes.

use serde::Serialize;

use crate::finding::{Finding, Report, Severity, Summary};
use crate::input::{InputFormat, LintInput, lint_inputs};
use crate::rules;

/// The findings of one input under the name it was given.
#[derive(Clone, Debug, Serialize)]
pub struct FileFindings {
    pub path: String,
    pub findings: Vec<Finding>,
}

/// A whole lint run.
#[derive(Clone, Debug, Serialize)]
pub struct LintRun {
    pub files: Vec<FileFindings>,
    pub summary: Summary,
}

impl LintRun {
    /// One input linted on its own, as `flink-ha lint --input-format FORMAT NAME` lints
    /// it: the one call behind the CLI, the Wasm component, the browser page, the
    /// parity test and the benches, so their JSON is the same bytes.
    pub fn of_one(name: &str, bytes: &[u8], format: InputFormat) -> LintRun {
        let reports = lint_inputs(&[LintInput { name, bytes }], format);
        LintRun::new([name.to_string()].into_iter().zip(reports))
    }

    pub fn new(files: impl IntoIterator<Item = (String, Report)>) -> LintRun {
        let mut summary = Summary::default();
        let files = files
            .into_iter()
            .map(|(path, report)| {
                summary.add(&report.findings);
                FileFindings {
                    path,
                    findings: report.findings,
                }
            })
            .collect();
        LintRun { files, summary }
    }

    pub fn has_errors(&self) -> bool {
        self.summary.errors > 0
    }

    /// Compact JSON, one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Indented JSON (the fixture corpus stores this form).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// `path:line:column: severity[RULE]: message`, then the hint, then a summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for file in &self.files {
            for f in &file.findings {
                match (f.line, f.column) {
                    (Some(l), Some(c)) => out.push_str(&format!("{}:{l}:{c}: ", file.path)),
                    _ => out.push_str(&format!("{}: ", file.path)),
                }
                let subject = f.key.as_deref().or(f.path.as_deref());
                out.push_str(&format!("{}[{}]: {}", f.severity.as_str(), f.rule, f.message));
                if let Some(s) = subject {
                    out.push_str(&format!(" ({s})"));
                }
                out.push('\n');
                if !f.hint.is_empty() {
                    out.push_str(&format!("    hint: {}\n", f.hint));
                }
            }
        }
        let s = &self.summary;
        out.push_str(&format!(
            "{} {}, {} {}, {} {} in {} {}\n",
            s.errors,
            plural(s.errors, "error", "errors"),
            s.warnings,
            plural(s.warnings, "warning", "warnings"),
            s.infos,
            plural(s.infos, "info", "infos"),
            self.files.len(),
            plural(self.files.len(), "file", "files"),
        ));
        out
    }

    /// SARIF 2.1.0 with the whole rule catalogue in the driver.
    pub fn to_sarif(&self) -> String {
        let rules: Vec<serde_json::Value> = rules::catalogue()
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id.as_str(),
                    "name": r.title,
                    "shortDescription": {"text": r.title},
                    "fullDescription": {"text": r.explanation},
                    "defaultConfiguration": {"level": sarif_level(r.severity)},
                })
            })
            .collect();
        let mut results = Vec::new();
        for file in &self.files {
            for f in &file.findings {
                let mut location = serde_json::json!({
                    "physicalLocation": {"artifactLocation": {"uri": file.path}}
                });
                if let (Some(l), Some(c)) = (f.line, f.column) {
                    location["physicalLocation"]["region"] = serde_json::json!({"startLine": l, "startColumn": c});
                }
                if let Some(subject) = f.key.as_deref().or(f.path.as_deref()) {
                    location["logicalLocations"] = serde_json::json!([{"name": subject}]);
                }
                results.push(serde_json::json!({
                    "ruleId": f.rule.as_str(),
                    "ruleIndex": rules::ALL.iter().position(|r| *r == f.rule),
                    "level": sarif_level(f.severity),
                    "message": {"text": format!("{} Hint: {}", f.message, f.hint)},
                    "locations": [location],
                }));
            }
        }
        let sarif = serde_json::json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "flink-ha",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }},
                "results": results,
            }],
        });
        serde_json::to_string_pretty(&sarif).unwrap_or_default()
    }
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
