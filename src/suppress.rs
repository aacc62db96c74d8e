//! Inline suppressions in the linted text, for a finding a team has decided to live with:
//!
//! ```yaml
//! # flink-ha: ignore HA117 -- one standalone cluster on this storageDir
//! kubernetes.cluster-id: orders
//! high-availability.kubernetes.leader-election.lease-duration: 3 s  # flink-ha: ignore HA110 -- loopback test cluster
//! # flink-ha: ignore-file HA106 -- local development only
//! ```
//!
//! A comment alone on its line applies to the next line with content; a comment after
//! content applies to its own line; `ignore-file` to the whole input. Several rules are
//! separated by commas. The reason after `--` is required: a suppression is a decision,
//! and the reason is what the next reader needs. A suppression that names an unknown rule,
//! has no reason, or suppresses nothing is itself a finding (HA006), so stale ones do not
//! pile up.

use crate::finding::Finding;
use crate::rules::RuleId;
use crate::yaml::Pos;

const MARKER: &str = "flink-ha:";

/// One suppression comment.
struct Suppression {
    rules: Vec<RuleId>,
    /// The line it applies to; `None`: the whole input.
    target: Option<u32>,
    /// Where the comment is.
    at: Pos,
    used: bool,
}

/// Drops the findings the text's suppressions name and adds HA006 for each suppression
/// that is malformed or suppresses nothing.
pub(crate) fn apply(text: &str, findings: &mut Vec<Finding>) {
    if !crate::scan::contains(text, MARKER) {
        return;
    }
    let (mut suppressions, mut problems) = parse(text);
    if suppressions.is_empty() && problems.is_empty() {
        return;
    }
    findings.retain(|f| {
        let hit = suppressions.iter_mut().find(|s| {
            s.rules.contains(&f.rule) && (s.target.is_none() || s.target == f.line) && f.rule != RuleId::HA006
        });
        match hit {
            Some(s) => {
                s.used = true;
                false
            }
            None => true,
        }
    });
    for s in suppressions.iter().filter(|s| !s.used) {
        let names: Vec<&str> = s.rules.iter().map(|r| r.as_str()).collect();
        let scope = match s.target {
            Some(line) => format!("line {line}"),
            None => "this file".to_owned(),
        };
        problems.push(
            Finding::new(
                RuleId::HA006,
                format!("the suppression of {} suppresses nothing on {scope}", names.join(", ")),
                "the finding it was written for is gone (or on another line): remove the comment",
            )
            .at(Some(s.at)),
        );
    }
    findings.extend(problems);
}

/// The suppressions of a text, and HA006 for the malformed ones.
fn parse(text: &str) -> (Vec<Suppression>, Vec<Finding>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut suppressions = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(hash) = comment_start(line) else { continue };
        let comment = line[hash + 1..].trim_start();
        let Some(rest) = comment.strip_prefix(MARKER) else {
            continue;
        };
        let at = Pos::new(index + 1, line[..hash].chars().count() + 1);
        let rest = rest.trim_start();
        let (whole_file, rest) = if let Some(r) = rest.strip_prefix("ignore-file") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix("ignore") {
            (false, r)
        } else {
            problems.push(malformed(at, "is neither `ignore` nor `ignore-file`"));
            continue;
        };
        let (ids, reason) = match rest.split_once("--") {
            Some((ids, reason)) => (ids, reason.trim()),
            None => (rest, ""),
        };
        if reason.is_empty() {
            problems.push(malformed(at, "has no reason (`-- why this is fine`)"));
            continue;
        }
        let mut rules = Vec::new();
        let mut unknown = Vec::new();
        for id in ids.split(',').map(str::trim).filter(|id| !id.is_empty()) {
            match RuleId::parse(id) {
                Some(rule) => rules.push(rule),
                None => unknown.push(id),
            }
        }
        if !unknown.is_empty() {
            problems.push(malformed(at, &format!("names no rule as {}", unknown.join(", "))));
            continue;
        }
        if rules.is_empty() {
            problems.push(malformed(at, "names no rule"));
            continue;
        }
        let target = if whole_file {
            None
        } else if line[..hash].trim().is_empty() {
            // Alone on its line: the next line with content that is not a comment.
            let next = lines[index + 1..]
                .iter()
                .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            match next {
                Some(offset) => Some(u32::try_from(index + 2 + offset).unwrap_or(u32::MAX)),
                None => {
                    problems.push(malformed(at, "has no line after it to apply to"));
                    continue;
                }
            }
        } else {
            Some(u32::try_from(index + 1).unwrap_or(u32::MAX))
        };
        suppressions.push(Suppression {
            rules,
            target,
            at,
            used: false,
        });
    }
    (suppressions, problems)
}

fn malformed(at: Pos, why: &str) -> Finding {
    Finding::new(
        RuleId::HA006,
        format!("the `flink-ha:` comment {why}"),
        "write `# flink-ha: ignore HA114 -- reason` (or `ignore-file`), rules separated by commas",
    )
    .at(Some(at))
}

/// Where a YAML comment starts on a line: a `#` at its start or after a space, outside
/// quotes.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return Some(i),
            None => {}
        }
        previous = c;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: RuleId, line: u32) -> Finding {
        Finding::new(rule, "m", "h").at(Some(Pos::new(line as usize, 1)))
    }

    #[test]
    fn comments_above_after_and_file_wide_suppress_their_findings() {
        let text = "# flink-ha: ignore HA110 -- quiet network\n\na: 1\nb: 2  # flink-ha: ignore HA111, HA112 -- lab\n# flink-ha: ignore-file HA106 -- dev\nc: 3\n";
        let mut findings = vec![
            finding(RuleId::HA110, 3),
            finding(RuleId::HA110, 6),
            finding(RuleId::HA112, 4),
            finding(RuleId::HA106, 6),
        ];
        apply(text, &mut findings);
        let left: Vec<(RuleId, Option<u32>)> = findings.iter().map(|f| (f.rule, f.line)).collect();
        assert_eq!(left, [(RuleId::HA110, Some(6))]);
    }

    #[test]
    fn malformed_and_unused_suppressions_are_findings() {
        let text = "a: 1  # flink-ha: ignore HA110\nb: 2  # flink-ha: ignore HA999 -- x\nc: 3  # flink-ha: ignore HA111 -- stale\nd: '# flink-ha: ignore HA1'\n";
        let mut findings = Vec::new();
        apply(text, &mut findings);
        let messages: Vec<String> = findings
            .iter()
            .map(|f| format!("{}:{}", f.line.unwrap_or(0), f.message))
            .collect();
        assert_eq!(
            messages,
            [
                "1:the `flink-ha:` comment has no reason (`-- why this is fine`)",
                "2:the `flink-ha:` comment names no rule as HA999",
                "3:the suppression of HA111 suppresses nothing on line 3",
            ]
        );
    }
}
