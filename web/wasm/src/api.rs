//! The browser linter's operations as plain Rust: the same calls the CLI makes, so the
//! JSON and SARIF the page offers for download are the CLI's bytes.

use flink_ha_policy::input::decode;
use flink_ha_policy::{InputFormat, LintRun, detect, rules};

/// Parses an input format name (`auto`, `flink-conf`, `config-yaml`, `kubernetes`).
pub fn parse_format(format: &str) -> Result<InputFormat, String> {
    InputFormat::parse(format).ok_or_else(|| {
        format!(
            "unknown input format `{format}`: expected one of {}",
            InputFormat::NAMES.join(", ")
        )
    })
}

/// One input linted on its own, as `flink-ha lint --input-format FORMAT NAME` does.
pub fn run(name: &str, bytes: &[u8], format: &str) -> Result<LintRun, String> {
    Ok(LintRun::of_one(name, bytes, parse_format(format)?))
}

/// `flink-ha lint --format json`: compact JSON and a newline (cli/src/lint.rs).
pub fn lint_json(name: &str, bytes: &[u8], format: &str) -> Result<String, String> {
    Ok(run(name, bytes, format)?.to_json() + "\n")
}

/// `flink-ha lint --format sarif`: indented SARIF and a newline (cli/src/lint.rs).
pub fn lint_sarif(name: &str, bytes: &[u8], format: &str) -> Result<String, String> {
    Ok(run(name, bytes, format)?.to_sarif() + "\n")
}

/// What `auto` resolves to; `None` when the input fails the size or UTF-8 check, where
/// the core stops before choosing a reader.
pub fn detect_format(name: &str, bytes: &[u8]) -> Option<&'static str> {
    let text = decode(bytes).ok()?;
    Some(detect(name, text).as_str())
}

/// `flink-ha rules --format json` (without the trailing newline `println!` adds).
pub fn rules_json() -> String {
    rules::catalogue_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_cli_contract() {
        let out = lint_json("config.yaml", b"high-availability.type: kubernets\n", "auto").unwrap();
        assert!(out.ends_with("}\n") && !out[..out.len() - 1].contains('\n'), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["files"][0]["path"], "config.yaml");
        assert_eq!(v["files"][0]["findings"][0]["rule"], "HA109");
        assert_eq!(v["files"][0]["findings"][0]["line"], 1);
    }

    #[test]
    fn format_override_changes_the_reader() {
        // Legacy parsing keeps the quotes (HA004); YAML does not.
        let text = b"high-availability.type: \"kubernetes\"\n";
        assert!(lint_json("x.yaml", text, "flink-conf").unwrap().contains("HA004"));
        assert!(!lint_json("x.yaml", text, "config-yaml").unwrap().contains("HA004"));
    }

    #[test]
    fn unknown_format_is_an_error_naming_the_choices() {
        let e = lint_json("x.yaml", b"", "toml").unwrap_err();
        assert!(e.contains("toml") && e.contains("flink-conf"), "{e}");
    }

    #[test]
    fn detection_follows_name_and_content() {
        assert_eq!(detect_format("flink-conf.yaml", b"a: b\n"), Some("flink-conf"));
        assert_eq!(detect_format("config.yaml", b"a: b\n"), Some("config-yaml"));
        assert_eq!(
            detect_format("x.yaml", b"apiVersion: v1\nkind: ConfigMap\n"),
            Some("kubernetes")
        );
        assert_eq!(detect_format("config.yaml", b"\xff\xfe"), None);
    }

    #[test]
    fn sarif_names_every_rule() {
        let sarif: serde_json::Value = serde_json::from_str(&lint_sarif("c.yaml", b"a: b\n", "auto").unwrap()).unwrap();
        assert_eq!(
            sarif["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap().len(),
            rules::ALL.len()
        );
    }

    #[test]
    fn rules_are_the_catalogue() {
        let v: serde_json::Value = serde_json::from_str(&rules_json()).unwrap();
        assert_eq!(v[0]["id"], "HA001");
        assert!(
            v.as_array()
                .unwrap()
                .iter()
                .all(|r| r["explanation"].as_str().is_some_and(|e| !e.is_empty()))
        );
    }
}
