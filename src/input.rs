//! From bytes to findings: size and encoding checks, format detection, and dispatch to
//! the Flink config readers or the Kubernetes object rules.

use serde::{Deserialize, Serialize};

use crate::bundle::{self, ConfigFact, Facts};
use crate::finding::{Finding, Report};
use crate::ha_config::{self, HaFacts, Origin};
use crate::objects::{self, DocumentOutcome};
use crate::suppress;
use crate::yaml::{self, Pos};

/// Largest input read. A ConfigMap holds at most 1 MiB and the API server takes
/// requests of a few MiB; anything larger is not a configuration.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;

/// How to read an input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// Decide from the file name and the content.
    #[default]
    Auto,
    /// Legacy `flink-conf.yaml`, read with Flink's line parser.
    FlinkConf,
    /// Standard `config.yaml` (YAML 1.2).
    ConfigYaml,
    /// Kubernetes manifests: one or more YAML/JSON documents.
    Kubernetes,
}

impl InputFormat {
    /// The configuration file this format reads, `None` for manifests and `Auto`.
    pub fn config_file(self) -> Option<ConfigFile> {
        match self {
            InputFormat::FlinkConf => Some(ConfigFile::FlinkConf),
            InputFormat::ConfigYaml => Some(ConfigFile::ConfigYaml),
            InputFormat::Auto | InputFormat::Kubernetes => None,
        }
    }

    /// Every format's name, as [`InputFormat::as_str`] gives it.
    pub const NAMES: &[&str] = &["auto", "flink-conf", "config-yaml", "kubernetes"];

    /// The format's name (`flink-conf`), as [`InputFormat::parse`] reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Auto => "auto",
            InputFormat::FlinkConf => "flink-conf",
            InputFormat::ConfigYaml => "config-yaml",
            InputFormat::Kubernetes => "kubernetes",
        }
    }

    /// The format a name means: one of [`InputFormat::NAMES`] or an alias such as
    /// `config.yaml` or `k8s`.
    pub fn parse(s: &str) -> Option<InputFormat> {
        match s {
            "auto" => Some(InputFormat::Auto),
            "flink-conf" | "flink-conf.yaml" => Some(InputFormat::FlinkConf),
            "config-yaml" | "config.yaml" => Some(InputFormat::ConfigYaml),
            "kubernetes" | "k8s" | "manifests" => Some(InputFormat::Kubernetes),
            _ => None,
        }
    }
}

/// Decides the format of an input from its name and content (never `Auto`).
pub fn detect(name: &str, text: &str) -> InputFormat {
    // Content first: a legacy file never has top-level `apiVersion:` and `kind:`.
    if looks_like_manifest(text) {
        return InputFormat::Kubernetes;
    }
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = base
        .strip_suffix(".yaml")
        .or_else(|| base.strip_suffix(".yml"))
        .unwrap_or(base);
    // `flink-conf.yaml`, and copies such as `flink-conf-prod.yaml` or `flink-conf.yaml.bak`.
    if stem == "flink-conf"
        || base.starts_with("flink-conf.")
        || base.starts_with("flink-conf-")
        || base.starts_with("flink-conf_")
    {
        InputFormat::FlinkConf
    } else {
        InputFormat::ConfigYaml
    }
}

/// A top-level `apiVersion:` and `kind:` (YAML), or a JSON object with both.
fn looks_like_manifest(text: &str) -> bool {
    // Most configs name neither; a substring search (memchr speed) says so before the
    // line-by-line check.
    if !(crate::scan::contains(text, "apiVersion") && crate::scan::contains(text, "kind")) {
        return false;
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return crate::scan::contains(text, "\"apiVersion\"") && crate::scan::contains(text, "\"kind\"");
    }
    let mut api = false;
    let mut kind = false;
    for line in text.lines() {
        api |= line.starts_with("apiVersion:");
        kind |= line.starts_with("kind:");
        if api && kind {
            return true;
        }
    }
    false
}

use crate::config::{self, ConfigFile, input_error, syntax_error};

/// Checks size and encoding; the text, or the finding that stops linting.
pub fn decode(bytes: &[u8]) -> Result<&str, Finding> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(input_error(
            format!(
                "input is over {MAX_INPUT_BYTES} bytes, the most the linter reads (a ConfigMap holds at most 1 MiB)"
            ),
            "lint the configuration files themselves, not an archive or a dump",
            None,
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        // The prefix is valid UTF-8 by construction.
        let prefix = std::str::from_utf8(valid).unwrap_or("");
        let line = prefix.matches('\n').count() + 1;
        let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        input_error(
            format!(
                "input is not UTF-8: byte 0x{:02X} at offset {} cannot be decoded",
                bytes[e.valid_up_to()],
                e.valid_up_to()
            ),
            "Flink and Kubernetes read configuration as UTF-8; re-save the file as UTF-8",
            Some(Pos::new(line, column)),
        )
    })
}

/// Lints a stream of Kubernetes documents.
fn lint_manifests(text: &str, out: &mut DocumentOutcome) {
    let stream = yaml::parse_stream(text);
    let count = stream.documents.iter().filter(|d| d.root.is_some()).count();
    for doc in &stream.documents {
        let Some(root) = &doc.root else { continue };
        if root.as_map().is_none() {
            out.findings.push(input_error(
                "a document is not a map: expected a Kubernetes object or a Flink configuration".to_string(),
                "each document must be a YAML map",
                root.pos.or(Some(doc.pos)),
            ));
        } else if objects::looks_like_object(root) {
            objects::lint_object(root, out);
        } else if count == 1 {
            // A lone map without apiVersion/kind is a Flink config in a file of another name.
            let (config, findings) = config::parse_standard(root);
            out.findings.extend(findings);
            let facts = ha_config::check(&config, &Origin::File, &mut out.findings);
            push_file_facts(out, facts);
        } else {
            objects::lint_object(root, out);
        }
    }
    if let Some(e) = &stream.error {
        out.findings.push(syntax_error(e));
    }
}

fn push_file_facts(out: &mut DocumentOutcome, facts: HaFacts) {
    out.facts.configs.push(ConfigFact {
        cluster_id: facts.cluster_id,
        kind: facts.kind,
        storage_dir: facts.storage_dir,
        from_configmap: false,
    });
}

/// One input of a lint run.
#[derive(Clone, Copy, Debug)]
pub struct LintInput<'a> {
    /// The file name (decides the format under `Auto` and appears in messages).
    pub name: &'a str,
    /// The input's content; the lint checks its size and that it is UTF-8.
    pub bytes: &'a [u8],
}

/// Lints several inputs together: each gets its own report, and the bundle rules
/// (HA4xx) look across all of them.
pub fn lint_inputs(inputs: &[LintInput<'_>], format: InputFormat) -> Vec<Report> {
    let mut reports = Vec::with_capacity(inputs.len());
    let mut facts = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (findings, f) = lint_one(input, format);
        reports.push(Report { findings });
        facts.push(f);
    }
    let names: Vec<&str> = inputs.iter().map(|i| i.name).collect();
    for ((report, extra), input) in reports.iter_mut().zip(bundle::check(&facts, &names)).zip(inputs) {
        report.findings.extend(extra);
        if let Ok(text) = std::str::from_utf8(input.bytes) {
            suppress::apply(text, &mut report.findings);
        }
        report.normalize();
    }
    reports
}

fn lint_one(input: &LintInput<'_>, format: InputFormat) -> (Vec<Finding>, Facts) {
    let text = match decode(input.bytes) {
        Ok(text) => text,
        Err(finding) => return (vec![finding], Facts::default()),
    };
    let format = match format {
        InputFormat::Auto => detect(input.name, text),
        f => f,
    };
    let mut out = DocumentOutcome::default();
    match format {
        InputFormat::FlinkConf | InputFormat::ConfigYaml => {
            let file = format.config_file().unwrap_or(ConfigFile::ConfigYaml);
            let (findings, facts) = ha_config::lint_config_text(text, file, &Origin::File);
            out.findings = findings;
            if let Some(facts) = facts {
                push_file_facts(&mut out, facts);
            }
        }
        InputFormat::Kubernetes | InputFormat::Auto => lint_manifests(text, &mut out),
    }
    (out.findings, out.facts)
}

impl From<ConfigFile> for InputFormat {
    fn from(file: ConfigFile) -> InputFormat {
        match file {
            ConfigFile::FlinkConf => InputFormat::FlinkConf,
            ConfigFile::ConfigYaml => InputFormat::ConfigYaml,
        }
    }
}
