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
    /// The input's name, as given.
    pub path: String,
    /// The input's findings, in reading order.
    pub findings: Vec<Finding>,
}

/// A whole lint run.
#[derive(Clone, Debug, Serialize)]
pub struct LintRun {
    /// Each input's findings, in the order the inputs were given.
    pub files: Vec<FileFindings>,
    /// The findings of all inputs counted by severity.
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

    /// A run from each input's name and report, in that order.
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

    /// Whether any finding of the run is an error.
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

impl LintRun {
    /// JUnit XML, as CI systems other than GitHub read it: one test suite per input, one
    /// test case per finding (a `<failure>` when its severity is at or above `fail_on`,
    /// else passing with the finding as output), and one passing case for an input without
    /// findings, so every input linted shows up.
    pub fn to_junit(&self, fail_on: Option<Severity>) -> String {
        let fails = |s: Severity| fail_on.is_some_and(|threshold| s <= threshold);
        let mut suites = String::new();
        let mut total = (0usize, 0usize);
        for file in &self.files {
            let failures = file.findings.iter().filter(|f| fails(f.severity)).count();
            let cases = file.findings.len().max(1);
            total.0 += cases;
            total.1 += failures;
            suites.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{cases}\" failures=\"{failures}\" errors=\"0\">\n",
                xml_escape(&file.path)
            ));
            if file.findings.is_empty() {
                suites.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"no findings\"/>\n",
                    xml_escape(&file.path)
                ));
            }
            for f in &file.findings {
                let place = match (f.line, f.column) {
                    (Some(l), Some(c)) => format!(" at {l}:{c}"),
                    _ => String::new(),
                };
                let subject = f
                    .key
                    .as_deref()
                    .or(f.path.as_deref())
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                let name = format!("{} {}{subject}{place}", f.rule, f.rule.title());
                let body = format!("{}\nhint: {}", f.message, f.hint);
                suites.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{}\">\n",
                    xml_escape(&file.path),
                    xml_escape(&name)
                ));
                if fails(f.severity) {
                    suites.push_str(&format!(
                        "      <failure type=\"{}\" message=\"{}\">{}</failure>\n",
                        f.severity.as_str(),
                        xml_escape(&f.message),
                        xml_escape(&body)
                    ));
                } else {
                    suites.push_str(&format!(
                        "      <system-out>{}: {}</system-out>\n",
                        f.severity.as_str(),
                        xml_escape(&body)
                    ));
                }
                suites.push_str("    </testcase>\n");
            }
            suites.push_str("  </testsuite>\n");
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"flink-ha\" tests=\"{}\" failures=\"{}\" errors=\"0\">\n{suites}</testsuites>\n",
            total.0, total.1
        )
    }
}

/// Text for XML attributes and elements; characters XML 1.0 cannot carry become U+FFFD.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
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
