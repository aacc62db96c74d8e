//! What the linter reports: findings, their severities, and per-file reports.

use serde::Serialize;

use crate::rules::RuleId;
use crate::yaml::Pos;

/// Severities belong to the rule catalogue (each rule has one); findings carry them.
pub use crate::rules::Severity;

/// One problem, with everything a person needs to act on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule that found the problem.
    pub rule: RuleId,
    /// How serious it is; the rule's severity, except where a rule has two levels (HA204).
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The Flink option the finding is about, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The object path (`metadata.ownerReferences`) when the finding is about a
    /// Kubernetes object rather than a Flink option.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// 1-based line in the input, when the input is text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column (in characters) in the input, when the input is text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// What to do about it.
    pub hint: String,
}

impl Finding {
    /// A finding with the rule's default severity.
    pub(crate) fn new(rule: RuleId, message: impl Into<String>, hint: impl Into<String>) -> Finding {
        Finding {
            rule,
            severity: rule.severity(),
            message: message.into(),
            key: None,
            path: None,
            line: None,
            column: None,
            hint: hint.into(),
        }
    }

    pub(crate) fn key(mut self, key: impl Into<String>) -> Finding {
        self.key = Some(key.into());
        self
    }

    pub(crate) fn path(mut self, path: impl Into<String>) -> Finding {
        self.path = Some(path.into());
        self
    }

    pub(crate) fn at(mut self, pos: Option<Pos>) -> Finding {
        if let Some(pos) = pos {
            self.line = Some(pos.line);
            self.column = Some(pos.column);
        }
        self
    }

    pub(crate) fn severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }

    /// Where the finding is, when it has both a line and a column.
    pub fn pos(&self) -> Option<Pos> {
        Some(Pos {
            line: self.line?,
            column: self.column?,
        })
    }
}

/// The findings for one input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The findings, in reading order (line, column, rule).
    pub findings: Vec<Finding>,
}

/// Counts by severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The number of error findings.
    pub errors: usize,
    /// The number of warning findings.
    pub warnings: usize,
    /// The number of info findings.
    pub infos: usize,
}

impl Summary {
    /// Adds `findings` to the counts.
    pub fn add(&mut self, findings: &[Finding]) {
        for f in findings {
            match f.severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
                Severity::Info => self.infos += 1,
            }
        }
    }
}

impl Report {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The findings counted by severity.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        s.add(&self.findings);
        s
    }

    /// Puts findings in reading order (line, column, rule) and drops exact repeats, so
    /// the output is stable whatever order the checks ran in.
    pub(crate) fn normalize(&mut self) {
        self.findings.sort_by(|a, b| reading_order(a).cmp(&reading_order(b)));
        self.findings.dedup();
    }
}

/// Where a finding stands in a report: line, column, rule, then what it is about.
fn reading_order(f: &Finding) -> (u32, u32, RuleId, &Option<String>, &Option<String>, &String) {
    (
        f.line.unwrap_or(0),
        f.column.unwrap_or(0),
        f.rule,
        &f.key,
        &f.path,
        &f.message,
    )
}
