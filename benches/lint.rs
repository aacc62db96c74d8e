//! The four documents of spec/benchmarks.md through the native core, and the parts of a
//! lint that dominate it: `cargo bench --bench lint`. Bar: median < 20 µs per document.
//!
//! `parts/*` explains the budget: the YAML reader is most of a `config.yaml` lint, which
//! is why `yaml.rs` tries the fast path (`yaml_simple.rs`) before `saphyr-parser`.

use criterion::{Criterion, criterion_group, criterion_main};
use flink_ha_policy::{ReviewSettings, config, ha_config, lint, review, yaml};
use std::hint::black_box;

const CONFIG_40: &str = include_str!("inputs/config-40-keys.yaml");
const FLINK_CONF: &str = include_str!("inputs/flink-conf.yaml");
const FLINK_DEPLOYMENT: &str = include_str!("inputs/flinkdeployment.yaml");
const REVIEW: &str = include_str!("inputs/review-ha-configmap.json");
// The corpus's review time, while the leader record in the review is live. (The benches
// had their own figure, 2026-11-28: four days on, past the lease, so the review bench
// measured a review whose lease check never fired.)
#[path = "../tests/support/corpus.rs"]
mod corpus;
use corpus::REVIEW_NOW_MS as NOW_MS;

fn documents(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.bench_function("lint config.yaml (40 keys)", |b| {
        b.iter(|| lint(black_box("config.yaml"), black_box(CONFIG_40)))
    });
    g.bench_function("lint flink-conf.yaml (legacy)", |b| {
        b.iter(|| lint(black_box("flink-conf.yaml"), black_box(FLINK_CONF)))
    });
    g.bench_function("lint FlinkDeployment", |b| {
        b.iter(|| lint(black_box("flinkdeployment.yaml"), black_box(FLINK_DEPLOYMENT)))
    });
    let settings = ReviewSettings::default();
    g.bench_function("review HA ConfigMap AdmissionReview", |b| {
        b.iter(|| review(black_box(REVIEW), NOW_MS, &settings))
    });
    g.finish();
}

/// The stages of a `config.yaml` lint, each on the 40-key document.
fn parts(c: &mut Criterion) {
    let mut g = c.benchmark_group("parts");
    g.bench_function("yaml::parse_stream (fast path)", |b| {
        b.iter(|| yaml::parse_stream(black_box(CONFIG_40)))
    });
    g.bench_function("yaml::parse_stream_full (saphyr-parser)", |b| {
        b.iter(|| yaml::parse_stream_full(black_box(CONFIG_40)))
    });
    g.bench_function("saphyr-parser events only", |b| {
        b.iter(|| {
            let mut parser = saphyr_parser::Parser::new_from_str(black_box(CONFIG_40));
            let mut events = 0;
            while let Some(Ok(_)) = parser.next_event() {
                events += 1;
            }
            events
        })
    });
    g.bench_function("libyaml-safer events only", |b| {
        b.iter(|| {
            let mut bytes = black_box(CONFIG_40).as_bytes();
            let mut parser = libyaml_safer::Parser::new();
            parser.set_input_string(&mut bytes);
            let mut events = 0;
            while let Ok(event) = parser.parse() {
                events += 1;
                if matches!(event.data, libyaml_safer::EventData::StreamEnd) {
                    break;
                }
            }
            events
        })
    });
    let stream = yaml::parse_stream(CONFIG_40);
    let root = stream.documents[0].root.clone().expect("the document has a root");
    g.bench_function("config::parse_standard", |b| {
        b.iter(|| config::parse_standard(black_box(&root)))
    });
    let (flink_config, _) = config::parse_standard(&root);
    g.bench_function("ha_config::check", |b| {
        b.iter(|| {
            let mut findings = Vec::new();
            ha_config::check(black_box(&flink_config), &ha_config::Origin::File, &mut findings);
            findings
        })
    });
    g.finish();
}

criterion_group!(benches, documents, parts);
criterion_main!(benches);
