//! The samples `flink-ha lint --examples` lints: a clean HA setup and the mistakes
//! operators make most. They live in `samples/` so the browser page loads the same ones.

pub const ALL: &[(&str, &str)] = &[
    ("clean/config.yaml", include_str!("../../samples/clean/config.yaml")),
    (
        "mistakes/config.yaml",
        include_str!("../../samples/mistakes/config.yaml"),
    ),
    (
        "mistakes/flink-conf.yaml",
        include_str!("../../samples/mistakes/flink-conf.yaml"),
    ),
    (
        "mistakes/ha-configmap.yaml",
        include_str!("../../samples/mistakes/ha-configmap.yaml"),
    ),
];
