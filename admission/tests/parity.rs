//! Parity: the policy component in wasmtime answers byte for byte what the native core
//! answers, over the fixture corpus, the samples and the fuzz corpora.
//!
//! The native side is the core with its default features (schema validation by the
//! `jsonschema` crate); the component leaves that crate out and uses the direct type
//! checks. This test is also what proves those two agree on real inputs.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use flink_ha_admission::policy::{InputFormat, ReviewContext, ReviewError, ReviewSettings};
use flink_ha_admission::{EMBEDDED_POLICY, Limits, Policy, PolicyEngine};
use flink_ha_policy::LintRun;

#[path = "../../tests/support/corpus.rs"]
mod corpus;
use corpus::{ContextFile, REVIEW_NOW_MS as NOW_MS, files_under, review_context};

fn policy() -> &'static Policy {
    static POLICY: OnceLock<(PolicyEngine, Policy)> = OnceLock::new();
    &POLICY
        .get_or_init(|| {
            let engine = PolicyEngine::new(Limits::default()).expect("engine");
            let policy = engine
                .compile(EMBEDDED_POLICY, "embedded")
                .expect("the embedded policy compiles");
            (engine, policy)
        })
        .1
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn native_lint(name: &str, bytes: &[u8]) -> String {
    LintRun::of_one(name, bytes, flink_ha_policy::InputFormat::Auto).to_json()
}

/// What a review yields that both sides must agree on: the decision, the rules that
/// stood, what exemptions waived (rule, exemption, why) and the response.
type Outcome = (bool, Vec<String>, Vec<(String, String, String)>, String);

/// Why a review has no decision, the same on both sides: a bad request (its message), a
/// context to look up (`namespace/name`s), or one that could not be read (why).
fn native_failure(error: flink_ha_policy::ReviewError) -> String {
    match error {
        flink_ha_policy::ReviewError::ContextNeeded(refs) => format!(
            "context-needed {:?}",
            refs.iter()
                .map(|r| format!("{}/{}", r.namespace, r.name))
                .collect::<Vec<_>>()
        ),
        flink_ha_policy::ReviewError::ContextUnavailable(why) => format!("context-unavailable {why}"),
        other => format!("bad-request {other}"),
    }
}

fn component_failure(error: ReviewError) -> String {
    match error {
        ReviewError::ContextNeeded(refs) => format!(
            "context-needed {:?}",
            refs.iter()
                .map(|r| format!("{}/{}", r.namespace, r.name))
                .collect::<Vec<_>>()
        ),
        ReviewError::ContextUnavailable(why) => format!("context-unavailable {why}"),
        ReviewError::BadRequest(message) => format!("bad-request {message}"),
    }
}

/// The native review as the component's WIT result would carry it.
fn native_review(body: &str, settings: &Settings, context: Option<&ContextFile>) -> Result<Outcome, String> {
    let context = context.map(|c| match c {
        ContextFile::Found(found) => flink_ha_policy::ReviewContext::Found(found.clone()),
        ContextFile::Unknown(why) => flink_ha_policy::ReviewContext::Unknown(why.clone()),
    });
    flink_ha_policy::review_in_context(body, NOW_MS, settings, context.as_ref())
        .map(|r| {
            let rules = r.findings.iter().map(|f| f.rule.as_str().to_string()).collect();
            let exempted = r
                .exempted
                .into_iter()
                .map(|e| (e.rule.as_str().to_string(), e.exemption, e.why))
                .collect();
            (r.allowed, rules, exempted, r.response)
        })
        .map_err(native_failure)
}

/// A fixture's settings.json: disabled rules, warn-only, exemptions, namespace labels.
type Settings = flink_ha_policy::ReviewSettings;

fn component_review(body: &str, settings: &Settings, context: Option<&ContextFile>) -> Result<Outcome, String> {
    let context = context.map(|c| match c {
        ContextFile::Found(found) => ReviewContext::Found(found.clone()),
        ContextFile::Unknown(why) => ReviewContext::Unknown(why.clone()),
    });
    let settings = ReviewSettings {
        disabled_rules: settings.disabled_rules.clone(),
        warn_only: settings.warn_only,
        exemptions_json: if settings.exemptions.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&settings.exemptions).expect("serializable")
        },
        namespace_labels: settings
            .namespace_labels
            .as_ref()
            .map(|labels| labels.clone().into_iter().collect()),
    };
    policy()
        .review(body, NOW_MS, &settings, context.as_ref())
        .expect("the policy answers")
        .map(|r| {
            let exempted = r.exempted.into_iter().map(|e| (e.rule, e.exemption, e.why)).collect();
            (r.allowed, r.rules, exempted, r.response)
        })
        .map_err(component_failure)
}

#[test]
fn lint_is_byte_identical_over_fixtures_samples_and_the_lint_fuzz_corpus() {
    let root = root();
    let mut inputs: Vec<PathBuf> = Vec::new();
    for dir in ["tests/fixtures", "samples"] {
        inputs.extend(files_under(&root.join(dir)).into_iter().filter(|p| {
            !matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("expected.json" | "review.json" | "settings.json" | "inspect.json" | "context.json")
            )
        }));
    }
    let fixtures = inputs.len();
    inputs.extend(files_under(&root.join("fuzz/corpus/lint")));
    assert!(fixtures > 30, "the corpus is missing: {fixtures} files");

    let mut mismatches = Vec::new();
    for path in &inputs {
        let bytes = fs::read(path).expect("readable");
        // Named as the corpus names them, so detection by file name is exercised.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("input");
        let native = native_lint(name, &bytes);
        let component = policy()
            .lint(name, &bytes, InputFormat::Auto)
            .expect("the policy answers");
        if native != component {
            mismatches.push(format!(
                "{}\n  native:    {native}\n  component: {component}",
                path.display()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} differ:\n{}",
        mismatches.len(),
        inputs.len(),
        mismatches.join("\n")
    );
}

/// The guest allocates from a bump arena over its initial memory (component/src/arena.rs)
/// and hands what does not fit to dlmalloc. An input of 1.5 MB fills the arena several
/// times over, so blocks of both kinds, and vectors grown from one into the other, make
/// this report.
#[test]
fn an_input_larger_than_the_guest_arena_is_linted_the_same_way() {
    let mut text = String::from("high-availability.type: kubernets\nhigh-availability.storageDir: s3:///flink\n");
    let long_value = "v".repeat(360);
    for i in 0..4_000 {
        text.push_str(&format!("custom.option-{i}: {long_value}\n"));
    }
    assert!(text.len() > 1_500_000, "{} bytes", text.len());
    let native = native_lint("flink-conf.yaml", text.as_bytes());
    let component = policy()
        .lint("flink-conf.yaml", text.as_bytes(), InputFormat::Auto)
        .unwrap();
    assert!(native.contains("HA109"), "{native:.300}");
    assert_eq!(component, native);
}

#[test]
fn every_input_format_is_read_the_same_way() {
    let text = b"high-availability.type: \"kubernets\"\nhigh-availability.storageDir: s3:///flink\n";
    for (format, core) in [
        (InputFormat::Auto, flink_ha_policy::InputFormat::Auto),
        (InputFormat::FlinkConf, flink_ha_policy::InputFormat::FlinkConf),
        (InputFormat::ConfigYaml, flink_ha_policy::InputFormat::ConfigYaml),
        (InputFormat::Kubernetes, flink_ha_policy::InputFormat::Kubernetes),
    ] {
        let native = LintRun::of_one("x.yaml", text, core).to_json();
        assert_eq!(policy().lint("x.yaml", text, format).unwrap(), native, "{format:?}");
    }
}

#[test]
fn review_is_byte_identical_over_review_fixtures_and_the_review_fuzz_corpus() {
    let root = root();
    let mut bodies: Vec<(PathBuf, Settings)> = Vec::new();
    for dir in files_under(&root.join("tests/fixtures")) {
        if dir.file_name().and_then(|n| n.to_str()) == Some("review.json") {
            let settings: Settings = match fs::read_to_string(dir.with_file_name("settings.json")) {
                Ok(text) => serde_json::from_str(&text).expect("a valid settings.json"),
                Err(_) => Settings::default(),
            };
            bodies.push((dir.clone(), settings.clone()));
            // Every review fixture once more in warn-only mode.
            bodies.push((
                dir,
                Settings {
                    warn_only: true,
                    ..settings
                },
            ));
        }
    }
    assert!(!bodies.is_empty(), "no review fixtures");
    bodies.extend(
        files_under(&root.join("fuzz/corpus/review"))
            .into_iter()
            .map(|p| (p, Settings::default())),
    );

    let (mut mismatches, mut reviewed) = (Vec::new(), 0);
    for (path, settings) in &bodies {
        let Ok(body) = fs::read_to_string(path) else {
            continue;
        };
        // A fixture's lookup (context.json); the fuzz corpus has none.
        let context = path.parent().and_then(review_context);
        let native = native_review(&body, settings, context.as_ref());
        let component = component_review(&body, settings, context.as_ref());
        reviewed += usize::from(native.is_ok());
        if native != component {
            mismatches.push(format!(
                "{}\n  native:    {native:?}\n  component: {component:?}",
                path.display()
            ));
        }
    }
    assert!(reviewed > 10, "only {reviewed} bodies were AdmissionReviews");
    assert!(
        mismatches.is_empty(),
        "{} differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn rules_and_version_match() {
    assert_eq!(policy().rules().unwrap(), flink_ha_policy::rules::catalogue_json());
    assert_eq!(policy().version(), flink_ha_policy::version());
}

#[test]
fn the_policy_component_imports_nothing() {
    let engine = PolicyEngine::new(Limits::default()).unwrap();
    assert_eq!(engine.imports_of(EMBEDDED_POLICY).unwrap(), Vec::<String>::new());
}
