//! The four documents of spec/benchmarks.md through the native core:
//! `cargo bench --bench lint`. Bar: median < 20 µs per document.

use criterion::{Criterion, criterion_group, criterion_main};
use flink_ha_policy::{ReviewSettings, lint, review};
use std::hint::black_box;

const CONFIG_40: &str = include_str!("inputs/config-40-keys.yaml");
const FLINK_CONF: &str = include_str!("inputs/flink-conf.yaml");
const FLINK_DEPLOYMENT: &str = include_str!("inputs/flinkdeployment.yaml");
const REVIEW: &str = include_str!("inputs/review-ha-configmap.json");
/// 2026-11-24T01:34:40Z, while the leader record in the review is live.
const NOW_MS: i64 = 1_795_829_680_000;

fn bench(c: &mut Criterion) {
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

criterion_group!(benches, bench);
criterion_main!(benches, parts_group, libyaml_group);

fn parts(c: &mut Criterion) {
    let mut g = c.benchmark_group("parts");
    g.bench_function("saphyr events only", |b| {
        b.iter(|| {
            let mut p = saphyr_parser::Parser::new_from_str(black_box(CONFIG_40));
            let mut n = 0;
            while let Some(Ok(_)) = p.next_event() { n += 1; }
            n
        })
    });
    g.bench_function("parse_stream", |b| b.iter(|| flink_ha_policy::yaml::parse_stream(black_box(CONFIG_40))));
    let stream = flink_ha_policy::yaml::parse_stream(CONFIG_40);
    let root = stream.documents[0].root.clone().unwrap();
    g.bench_function("parse_standard", |b| b.iter(|| flink_ha_policy::config::parse_standard(black_box(&root))));
    let (cfg, _) = flink_ha_policy::config::parse_standard(&root);
    g.bench_function("ha_config::check", |b| b.iter(|| {
        let mut out = Vec::new();
        flink_ha_policy::ha_config::check(black_box(&cfg), &flink_ha_policy::ha_config::Origin::File, &mut out)
    }));
    g.finish();
}
criterion_group!(parts_group, parts);

fn libyaml(c: &mut Criterion) {
    c.bench_function("parts/libyaml-safer events only", |b| {
        b.iter(|| {
            let mut bytes = black_box(CONFIG_40).as_bytes();
            let mut p = libyaml_safer::Parser::new();
            p.set_input_string(&mut bytes);
            let mut n = 0;
            loop {
                match p.parse() {
                    Ok(e) => { n += 1; if matches!(e.data, libyaml_safer::EventData::StreamEnd) { break; } }
                    Err(_) => break,
                }
            }
            n
        })
    });
}
criterion_group!(libyaml_group, libyaml);
