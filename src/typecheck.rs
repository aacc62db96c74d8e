//! HA118: values of integer and boolean options that Flink cannot convert.
//!
//! The JSON Schema (`schema.rs`) is the reference: with the `schema-validation` feature
//! the values are validated by the `jsonschema` crate against it. The browser and the
//! Wasm component leave that crate out (it is most of their size and costs a schema
//! compilation per fresh instance); they use the direct checks below, derived from the
//! same option table. A test runs both over the same values and requires the same
//! findings.

use crate::config::FlinkConfig;
use crate::finding::Finding;
use crate::options::{self, OptionSpec, OptionType, display_value};
use crate::rules::RuleId;

/// The typed options and every key they are read from.
fn typed_entries(config: &FlinkConfig) -> impl Iterator<Item = (&'static OptionSpec, &crate::config::Entry)> {
    options::ALL
        .iter()
        .copied()
        .filter(|o| matches!(o.ty, OptionType::Integer { .. } | OptionType::Boolean))
        .flat_map(move |o| {
            std::iter::once(o.key)
                .chain(o.deprecated.iter().copied())
                .filter_map(move |k| config.get(k).map(|e| (o, e)))
        })
}

/// What is wrong with a value of an integer or boolean option, if anything.
pub fn problem(option: &OptionSpec, value: &str) -> Option<String> {
    let v = value.trim();
    match option.ty {
        // Same rule as the schema's pattern: an optional sign and up to nine digits
        // (always within Java's int, which Flink parses into).
        OptionType::Integer { .. } => {
            (!is_small_integer(v)).then(|| format!("`{}` is not an integer", display_value(option.key, value)))
        }
        OptionType::Boolean => (!v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false"))
            .then(|| format!("`{}` is not `true` or `false`", display_value(option.key, value))),
        OptionType::String | OptionType::Duration => None,
    }
}

fn is_small_integer(v: &str) -> bool {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn finding(option: &OptionSpec, e: &crate::config::Entry, why: String) -> Finding {
    let expected = match option.ty {
        OptionType::Boolean => "`true` or `false`",
        _ => "a whole number such as `1`",
    };
    Finding::new(
        RuleId::HA118,
        format!("`{}`: {why}; Flink fails when it reads the option", e.key),
        format!("write {expected}"),
    )
    .key(&e.key)
    .at(e.value_pos.or(e.key_pos))
}

/// Direct checks, used where the `jsonschema` crate is left out.
pub fn check_direct(config: &FlinkConfig, out: &mut Vec<Finding>) {
    for (option, e) in typed_entries(config) {
        if let Some(why) = problem(option, &e.value) {
            out.push(finding(option, e, why));
        }
    }
}

/// Runs HA118 on the integer and boolean options set in `config` (`jsonschema` crate).
#[cfg(feature = "schema-validation")]
pub fn check(config: &FlinkConfig, out: &mut Vec<Finding>) {
    check_with_schema(config, out)
}

/// Runs HA118 on the integer and boolean options set in `config` (direct checks).
#[cfg(not(feature = "schema-validation"))]
pub fn check(config: &FlinkConfig, out: &mut Vec<Finding>) {
    check_direct(config, out)
}

/// Validates the typed values with the `jsonschema` crate against the published schema.
#[cfg(feature = "schema-validation")]
pub fn check_with_schema(config: &FlinkConfig, out: &mut Vec<Finding>) {
    use std::sync::OnceLock;
    static VALIDATOR: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    let Some(validator) = VALIDATOR
        .get_or_init(|| jsonschema::validator_for(&crate::schema::validation_schema()).ok())
        .as_ref()
    else {
        // The schema is ours and compiled in tests; should it ever fail, the direct
        // checks still give the same answers.
        return check_direct(config, out);
    };
    for (option, e) in typed_entries(config) {
        // One value at a time, as Flink reads it: always a string here.
        let instance = serde_json::json!({ option.key: e.value });
        if !validator.is_valid(&instance) {
            let why = problem(option, &e.value).unwrap_or_else(|| {
                format!(
                    "`{}` does not match the option's type",
                    display_value(option.key, &e.value)
                )
            });
            out.push(finding(option, e, why));
        }
    }
}
