//! The policy through the component, as the webhook runs it (a fresh instance from the
//! `InstancePre` per call), against the native core on the same inputs, in one run:
//! `cargo bench -p flink-ha-admission --bench policy`.
//!
//! Bars (spec/benchmarks.md): component ≤ 2 × native, and instantiate + call overhead
//! ≤ 50 µs. `instantiate + version()` is the overhead alone (a call that does nothing).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flink_ha_admission::policy::{InputFormat, ReviewSettings};
use flink_ha_admission::{EMBEDDED_POLICY, Limits, PolicyEngine};

const CONFIG_40: &str = include_str!("../../benches/inputs/config-40-keys.yaml");
const FLINK_CONF: &str = include_str!("../../benches/inputs/flink-conf.yaml");
const FLINK_DEPLOYMENT: &str = include_str!("../../benches/inputs/flinkdeployment.yaml");
const REVIEW: &str = include_str!("../../benches/inputs/review-ha-configmap.json");
const NOW_MS: i64 = 1_795_829_680_000;

fn native_lint(name: &str, text: &str) -> String {
    flink_ha_policy::LintRun::of_one(name, text.as_bytes(), flink_ha_policy::InputFormat::Auto).to_json()
}

fn compare(c: &mut Criterion) {
    let engine = PolicyEngine::new(Limits::default()).expect("engine");
    let policy = engine.compile(EMBEDDED_POLICY, "embedded").expect("policy");

    let mut g = c.benchmark_group("overhead");
    g.bench_function("instantiate + version()", |b| {
        b.iter(|| policy.version_uncached().expect("answers"))
    });
    g.finish();

    let docs = [
        ("config.yaml (40 keys)", "config.yaml", CONFIG_40),
        ("flink-conf.yaml (legacy)", "flink-conf.yaml", FLINK_CONF),
        ("FlinkDeployment", "flinkdeployment.yaml", FLINK_DEPLOYMENT),
    ];
    for (label, name, text) in docs {
        let mut g = c.benchmark_group(format!("lint {label}"));
        g.bench_function("native (JSON report)", |b| {
            b.iter(|| native_lint(black_box(name), black_box(text)))
        });
        g.bench_function("component", |b| {
            b.iter(|| {
                policy
                    .lint(black_box(name), black_box(text.as_bytes()), InputFormat::Auto)
                    .expect("answers")
            })
        });
        g.finish();
    }

    let mut g = c.benchmark_group("review HA ConfigMap AdmissionReview");
    let native_settings = flink_ha_policy::ReviewSettings::default();
    g.bench_function("native", |b| {
        b.iter(|| flink_ha_policy::review(black_box(REVIEW), NOW_MS, &native_settings).expect("reviews"))
    });
    let settings = ReviewSettings {
        disabled_rules: Vec::new(),
        warn_only: false,
        exemptions_json: String::new(),
        namespace_labels: None,
    };
    g.bench_function("component", |b| {
        b.iter(|| {
            policy
                .review(black_box(REVIEW), NOW_MS, &settings)
                .expect("answers")
                .expect("reviews")
        })
    });
    g.finish();
}

criterion_group!(benches, compare);
criterion_main!(benches);
