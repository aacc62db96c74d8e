//! The JSON Schema of the HA-related options (`flink-ha schema`), generated from the
//! option table. It accepts both forms Flink 2.x reads, dotted keys (`a.b.c: x`) and
//! nested maps (`a: {b: {c: x}}`), and is what the HA118 type check validates against.

use serde_json::{Map, Value, json};

use crate::options::KUBERNETES_FACTORY;
use crate::options::{self, OptionSpec, OptionType};

/// Units Flink's duration parser knows (see `duration.rs`), for the schema's pattern.
const DURATION_PATTERN: &str = r"^\s*[0-9]+\s*(d|day|days|h|hour|hours|min|m|minute|minutes|s|sec|secs|second|seconds|ms|milli|millis|millisecond|milliseconds|µs|micro|micros|microsecond|microseconds|ns|nano|nanos|nanosecond|nanoseconds)?\s*$";
/// Same rule as `typecheck::problem`: optional sign and up to nine digits.
const INTEGER_PATTERN: &str = r"^\s*[+-]?[0-9]{1,9}\s*$";
const BOOLEAN_PATTERN: &str = r"^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\s*$";

fn value_schema(option: &OptionSpec) -> Value {
    let mut schema = match option.ty {
        OptionType::String => json!({"type": "string"}),
        OptionType::Duration => json!({
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": DURATION_PATTERN}
            ]
        }),
        OptionType::Integer { .. } => json!({
            "anyOf": [
                {"type": "integer"},
                {"type": "string", "pattern": INTEGER_PATTERN}
            ]
        }),
        OptionType::Boolean => json!({
            "anyOf": [
                {"type": "boolean"},
                {"type": "string", "pattern": BOOLEAN_PATTERN}
            ]
        }),
    };
    if option.key == options::HA_TYPE.key {
        schema = json!({
            "anyOf": [
                {"enum": ["kubernetes", "zookeeper", "none", "KUBERNETES", "ZOOKEEPER", "NONE", KUBERNETES_FACTORY]},
                {"type": "string", "pattern": r"^([A-Za-z_$][A-Za-z0-9_$]*\.)+[A-Z][A-Za-z0-9_$]*$"}
            ]
        });
    }
    if option.key == options::K8S_CLUSTER_ID.key {
        schema = json!({"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$", "maxLength": crate::ha_layout::MAX_CLUSTER_ID_LENGTH});
    }
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("description".into(), Value::String(option.description.to_string()));
        if let Some(d) = option.default {
            obj.insert("default".into(), Value::String(d.to_string()));
        }
    }
    schema
}

fn deprecated_schema(option: &OptionSpec) -> Value {
    let mut schema = value_schema(option);
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("deprecated".into(), Value::Bool(true));
        obj.insert(
            "description".into(),
            Value::String(format!("Deprecated: use `{}`. {}", option.key, option.description)),
        );
    }
    schema
}

/// A tree of key segments, to write the nested form.
#[derive(Default)]
struct Tree {
    leaf: Option<Value>,
    children: Vec<(String, Tree)>,
}

impl Tree {
    fn insert(&mut self, segments: &[&str], schema: Value) {
        match segments.split_first() {
            None => self.leaf = Some(schema),
            Some((head, rest)) => {
                let idx = match self.children.iter().position(|(k, _)| k == head) {
                    Some(i) => i,
                    None => {
                        self.children.push((head.to_string(), Tree::default()));
                        self.children.len() - 1
                    }
                };
                self.children[idx].1.insert(rest, schema);
            }
        }
    }

    fn to_schema(&self) -> Value {
        let object = (!self.children.is_empty()).then(|| {
            let props: Map<String, Value> = self.children.iter().map(|(k, t)| (k.clone(), t.to_schema())).collect();
            json!({"type": "object", "properties": props})
        });
        match (&self.leaf, object) {
            (Some(leaf), Some(object)) => json!({"anyOf": [leaf, object]}),
            (Some(leaf), None) => leaf.clone(),
            (None, Some(object)) => object,
            (None, None) => json!({}),
        }
    }
}

/// The schema, for editors (yaml-language-server) and for validation.
pub fn schema() -> Value {
    let mut flat = Map::new();
    let mut tree = Tree::default();
    for option in options::ALL {
        flat.insert(option.key.to_string(), value_schema(option));
        tree.insert(&option.key.split('.').collect::<Vec<_>>(), value_schema(option));
        for old in option.deprecated {
            flat.insert(old.to_string(), deprecated_schema(option));
            tree.insert(&old.split('.').collect::<Vec<_>>(), deprecated_schema(option));
        }
    }
    // Dotted keys are listed as they are; top-level segments of the nested form are
    // added where no dotted key of that exact name exists.
    let nested = match tree.to_schema().get("properties") {
        Some(Value::Object(nested)) => nested.clone(),
        _ => Map::new(),
    };
    for (k, v) in nested {
        match flat.get(&k) {
            Some(existing) if existing != &v => {
                let merged = json!({"anyOf": [existing.clone(), v]});
                flat.insert(k, merged);
            }
            Some(_) => {}
            None => {
                flat.insert(k, v);
            }
        }
    }
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Flink configuration: high-availability options (flink-ha)",
        "description": "Flink config.yaml / flinkConfiguration options checked by flink-ha. Other options are allowed.",
        "type": "object",
        "properties": flat,
        "additionalProperties": true
    })
}

/// What HA118 validates each typed value against: the published schema itself.
#[cfg(feature = "schema-validation")]
pub(crate) fn validation_schema() -> Value {
    schema()
}
