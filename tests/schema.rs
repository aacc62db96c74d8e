//! The published JSON Schema: it compiles, editors can validate real configs with it,
//! and the HA118 type check gives the same answers with and without the `jsonschema`
//! crate (the browser and the Wasm component run without it).
#![cfg(feature = "schema-validation")]

use flink_ha_policy::config::{Entry, FlinkConfig};
use flink_ha_policy::options::{self, OptionType};
use flink_ha_policy::schema::schema;
use flink_ha_policy::typecheck;

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the schema compiles")
}

fn yaml_file(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect("fixture");
    serde_yaml::from_str(&text).expect("valid YAML")
}

#[test]
fn editors_accept_the_clean_configs_nested_and_flat() {
    let v = validator();
    for path in [
        "tests/fixtures/clean-flink2-config/config.yaml",
        "samples/clean/config.yaml",
    ] {
        let doc = yaml_file(path);
        let errors: Vec<String> = v
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{path}: {errors:?}");
    }
}

#[test]
fn editors_flag_wrong_types_nested_and_flat() {
    let v = validator();
    let bad = [
        "kubernetes.cluster-id: Orders_ETL",
        "kubernetes:\n  cluster-id: Orders_ETL",
        "high-availability.type: kubernets",
        "high-availability:\n  kubernetes:\n    leader-election:\n      lease-duration: soon",
        "kubernetes.jobmanager.replicas: two",
        "job-result-store.delete-on-commit: yes",
    ];
    for text in bad {
        let doc: serde_json::Value = serde_yaml::from_str(text).expect("valid YAML");
        assert!(!v.is_valid(&doc), "accepted: {text}");
    }
}

#[test]
fn type_check_agrees_with_the_schema() {
    let values = [
        "1",
        "0",
        "-3",
        "+7",
        " 12 ",
        "123456789",
        "1234567890",
        "",
        "two",
        "1.5",
        "1e3",
        "0x10",
        "true",
        "FALSE",
        "True ",
        "yes",
        "no",
        "1 s",
        "٣",
    ];
    let mut compared = 0;
    for option in options::ALL
        .iter()
        .filter(|o| matches!(o.ty, OptionType::Integer { .. } | OptionType::Boolean))
    {
        for value in values {
            let mut config = FlinkConfig::default();
            config.push(Entry {
                key: option.key.to_string(),
                value: value.to_string(),
                key_pos: None,
                value_pos: None,
            });
            let mut direct = Vec::new();
            typecheck::check_direct(&config, &mut direct);
            let mut with_schema = Vec::new();
            typecheck::check_with_schema(&config, &mut with_schema);
            assert_eq!(direct, with_schema, "{} = {value:?}", option.key);
            compared += 1;
        }
    }
    assert!(compared > 50);
}
