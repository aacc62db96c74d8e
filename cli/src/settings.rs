//! `.flink-ha.yaml`: a repository's policy controls for `flink-ha lint`, found from the
//! working directory upward (or given with `--settings`), as kube-linter's
//! `.kube-linter.yaml` is:
//!
//! ```yaml
//! rules:                  # per rule: error, warning, info or off
//!   HA117: off
//!   HA114: warning
//! overrides:              # later entries win; paths are globs relative to this file
//!   - paths: ["staging/**", "dev/*.yaml"]
//!     rules:
//!       HA106: off
//! ```
//!
//! A file that cannot be read as this is refused with its place (exit 2), never half
//! applied. The format is the core's (`flink_ha_policy::settings`), shared with
//! `flink-ha webhook --settings`, whose `exemptions` lint leaves aside.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flink_ha_policy::settings::{self, Level};
use flink_ha_policy::{Report, RuleId, Severity};
use globset::{Glob, GlobSet, GlobSetBuilder};

/// The file name looked for.
pub const FILE_NAME: &str = ".flink-ha.yaml";

/// Loaded settings.
pub struct Settings {
    /// The file they came from.
    pub source: PathBuf,
    /// The folder globs are relative to.
    root: PathBuf,
    rules: Vec<(RuleId, Level)>,
    overrides: Vec<(GlobSet, Vec<(RuleId, Level)>)>,
}

impl Settings {
    /// The nearest `.flink-ha.yaml` from `start` upward, if any.
    pub fn discover(start: &Path) -> Result<Option<Settings>> {
        let start = std::path::absolute(start).context("resolving the working directory")?;
        for dir in start.ancestors() {
            let candidate = dir.join(FILE_NAME);
            if candidate.is_file() {
                return Settings::load(&candidate).map(Some);
            }
        }
        Ok(None)
    }

    /// Reads and checks one settings file (the core's format; its `exemptions` are the
    /// webhook's and are checked here too, so CI catches a broken file).
    pub fn load(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = settings::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
        let mut overrides = Vec::new();
        for o in file.overrides {
            let mut set = GlobSetBuilder::new();
            for pattern in &o.paths {
                let glob = Glob::new(pattern).map_err(|e| {
                    anyhow::anyhow!(
                        "{}:{}: `{pattern}` is not a glob: {e}",
                        path.display(),
                        line_of(&text, pattern)
                    )
                })?;
                set.add(glob);
            }
            let set = set
                .build()
                .with_context(|| format!("{}: the override globs", path.display()))?;
            overrides.push((set, o.rules));
        }
        let rules = file.rules;
        let root = std::path::absolute(path)
            .ok()
            .map(|p| lexically_normal(&p))
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        Ok(Settings {
            source: path.to_path_buf(),
            root,
            rules,
            overrides,
        })
    }

    /// Applies the settings to the findings of the input named `name` (a path as given).
    pub fn apply(&self, name: &str, report: &mut Report) {
        let relative = std::path::absolute(name)
            .ok()
            .map(|p| lexically_normal(&p))
            .and_then(|p| p.strip_prefix(&self.root).ok().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from(name));
        let mut levels: BTreeMap<RuleId, Level> = self.rules.iter().copied().collect();
        for (globs, rules) in &self.overrides {
            if globs.is_match(&relative) {
                levels.extend(rules.iter().copied());
            }
        }
        if levels.is_empty() {
            return;
        }
        report.findings.retain_mut(|finding| match levels.get(&finding.rule) {
            Some(Level::Off) => false,
            Some(Level::Error) => {
                finding.severity = Severity::Error;
                true
            }
            Some(Level::Warning) => {
                finding.severity = Severity::Warning;
                true
            }
            Some(Level::Info) => {
                finding.severity = Severity::Info;
                true
            }
            None => true,
        });
    }
}

/// `a/b/../c` as `a/c`, without touching the file system (`std::path::absolute` keeps
/// `..`, and a glob must not see `dev/team/../../prod` as under `dev/`).
fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The 1-based line where `needle` first appears (for messages about parsed values).
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).map_or(1, |i| i + 1)
}
