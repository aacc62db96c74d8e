//! The policy through the component, as the webhook runs it (a fresh instance from the
//! `InstancePre` per call), against the native core on the same inputs, in one run:
//! `cargo bench -p flink-ha-admission --bench policy`.
//!
//! Bars (spec/benchmarks.md, issue 16): the component ≤ 1.3 × native once the
//! instantiate + call overhead is taken out, and that overhead ≤ 15 µs.
//! `instantiate + version()` is the overhead alone (a call that does nothing).
//!
//! After criterion's report come two blocks for scripts:
//! - `faults/call <what>: <n>`: page faults per call. No other tenant of the machine
//!   changes them, and each one is a kernel entry the pool's reset makes necessary.
//! - `component/native <document>: <ratio>x (native <t> µs, component <t> µs, overhead <t> µs)`
//!   with ratio = (component − overhead) / native, from interleaved rounds (see `paired`).
//!
//! Those blocks alone, in about 40 s: give a filter that matches no criterion benchmark,
//! `cargo bench -p flink-ha-admission --bench policy -- summary`.
//!
//! Profiling the guest: build with `--features perfmap` and run under `perf record`
//! (BENCHMARKS.md has the commands).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use flink_ha_admission::policy::{InputFormat, ReviewSettings};
use flink_ha_admission::{EMBEDDED_POLICY, Limits, PolicyEngine};

const CONFIG_40: &str = include_str!("../../benches/inputs/config-40-keys.yaml");
const FLINK_CONF: &str = include_str!("../../benches/inputs/flink-conf.yaml");
const FLINK_DEPLOYMENT: &str = include_str!("../../benches/inputs/flinkdeployment.yaml");
const REVIEW: &str = include_str!("../../benches/inputs/review-ha-configmap.json");
// The corpus's review time, while the leader record in the review is live. (The benches
// had their own figure, 2026-11-28: four days on, past the lease, so the review bench
// measured a review whose lease check never fired.)
#[path = "../../tests/support/corpus.rs"]
mod corpus;
use corpus::REVIEW_NOW_MS as NOW_MS;

const LINTS: [(&str, &str, &str); 3] = [
    ("config.yaml (40 keys)", "config.yaml", CONFIG_40),
    ("flink-conf.yaml (legacy)", "flink-conf.yaml", FLINK_CONF),
    ("FlinkDeployment", "flinkdeployment.yaml", FLINK_DEPLOYMENT),
];
const REVIEW_LABEL: &str = "review HA ConfigMap AdmissionReview";

fn native_lint(name: &str, text: &str) -> String {
    flink_ha_policy::LintRun::of_one(name, text.as_bytes(), flink_ha_policy::InputFormat::Auto).to_json()
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    // `--profile-time` (under perf) runs one benchmark in a loop: nothing else.
    let profiling = std::env::args().any(|arg| arg == "--profile-time");

    let engine = PolicyEngine::new(Limits::default()).expect("engine");
    let policy = engine.compile(EMBEDDED_POLICY, "embedded").expect("policy");
    let native_settings = flink_ha_policy::ReviewSettings::default();
    let settings = ReviewSettings {
        disabled_rules: Vec::new(),
        warn_only: false,
        exemptions_json: String::new(),
        namespace_labels: None,
    };
    let version = || {
        black_box(policy.version_uncached().expect("answers"));
    };
    let component_lint = |name: &str, text: &str| {
        black_box(
            policy
                .lint(black_box(name), black_box(text.as_bytes()), InputFormat::Auto)
                .expect("answers"),
        );
    };
    let native_review = || {
        black_box(flink_ha_policy::review(black_box(REVIEW), NOW_MS, &native_settings).expect("reviews"));
    };
    let component_review = || {
        black_box(
            policy
                .review(black_box(REVIEW), NOW_MS, &settings, None)
                .expect("answers")
                .expect("reviews"),
        );
    };

    let mut g = criterion.benchmark_group("overhead");
    g.bench_function("instantiate + version()", |b| b.iter(version));
    g.finish();
    for (label, name, text) in LINTS {
        let mut g = criterion.benchmark_group(format!("lint {label}"));
        g.bench_function("native (JSON report)", |b| {
            b.iter(|| black_box(native_lint(black_box(name), black_box(text))))
        });
        g.bench_function("component", |b| b.iter(|| component_lint(name, text)));
        g.finish();
    }
    let mut g = criterion.benchmark_group(REVIEW_LABEL);
    g.bench_function("native", |b| b.iter(native_review));
    g.bench_function("component", |b| b.iter(component_review));
    g.finish();
    criterion.final_summary();
    if profiling {
        return;
    }

    println!();
    println!("faults/call instantiate + version(): {:.1}", faults_per_call(&version));
    for (label, name, text) in LINTS {
        println!(
            "faults/call lint {label}: {:.1}",
            faults_per_call(&|| component_lint(name, text))
        );
    }
    println!("faults/call review: {:.1}", faults_per_call(&component_review));

    println!();
    for (label, name, text) in LINTS {
        paired(
            label,
            || {
                black_box(native_lint(black_box(name), black_box(text)));
            },
            || component_lint(name, text),
            version,
        );
    }
    paired(REVIEW_LABEL, native_review, component_review, version);
}

/// Times `native`, `component` and `overhead` in interleaved rounds of a few calls each,
/// and prints the summary line from the fastest round of each.
///
/// Why not criterion's estimates: other tenants of these cores slow whole seconds down,
/// by up to 2×, and criterion's benchmarks run one after another, seconds apart, so
/// their ratio moved by 50 % between runs. A round here takes about a millisecond, so
/// the three see the same moments; and the fastest round is the one least disturbed,
/// since a neighbour only ever adds time.
fn paired(label: &str, native: impl Fn(), component: impl Fn(), overhead: impl Fn()) {
    const ROUNDS: usize = 2000;
    const CALLS: u32 = 8;
    let batch_us = |f: &dyn Fn()| {
        let start = Instant::now();
        for _ in 0..CALLS {
            f();
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS)
    };
    let (mut n, mut c, mut o) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        n = n.min(batch_us(&native));
        c = c.min(batch_us(&component));
        o = o.min(batch_us(&overhead));
    }
    println!(
        "component/native {label}: {:.2}x (native {n:.1} µs, component {c:.1} µs, overhead {o:.1} µs)",
        (c - o) / n
    );
}

/// Page faults per call over 2,000 calls (after one to warm the slot).
fn faults_per_call(call: &dyn Fn()) -> f64 {
    const CALLS: u32 = 2000;
    call();
    let before = minor_faults();
    for _ in 0..CALLS {
        call();
    }
    (minor_faults() - before) as f64 / f64::from(CALLS)
}

/// The process's minor page faults so far (field 10 of /proc/self/stat).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name may hold spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    after_name
        .split(' ')
        .nth(7)
        .and_then(|f| f.parse().ok())
        .expect("minflt")
}
