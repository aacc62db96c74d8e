//! The fixture corpus: every directory under `tests/fixtures/` is one lint run (its
//! files form a bundle), or, when it holds `review.json`, one admission review (with
//! `settings.json` and, as the host's lookup, `context.json` beside it), or, when
//! it holds `inspect.json`, one `flink-ha inspect` of its ConfigMap dumps with the facts
//! `inspect.json` gives (time, existence, payloads). The
//! expected output sits beside the inputs in `expected.json` and must match byte for
//! byte. `UPDATE_EXPECT=1 cargo test --test fixtures` rewrites the expectations; review
//! the diff before committing it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use flink_ha_policy::{
    InputFormat, LintInput, LintRun, ReviewContext, ReviewSettings, ha_state, lint_inputs, review_in_context, rules,
};

#[path = "support/corpus.rs"]
mod corpus;
use corpus::{ContextFile, REVIEW_NOW, REVIEW_NOW_MS, files_under, review_context};

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .expect("tests/fixtures exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn input_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = files_under(dir)
        .into_iter()
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

/// What `inspect.json` gives an inspect fixture: what the live tool would find out.
#[derive(serde::Deserialize)]
struct InspectFacts {
    /// The API server's time.
    at: String,
    /// `namespace/cluster-id` → existence (absent: unknown).
    #[serde(default)]
    existence: std::collections::BTreeMap<String, ha_state::Existence>,
    /// Payload URI → what storage says.
    #[serde(default)]
    payloads: std::collections::BTreeMap<String, ha_state::PayloadFact>,
    /// Payload URI → a file (relative to the fixture) holding its bytes.
    #[serde(default)]
    payload_bytes: std::collections::BTreeMap<String, String>,
}

fn inspect_output(dir: &Path, facts: &str) -> String {
    let facts: InspectFacts = serde_json::from_str(facts).expect("valid inspect.json");
    let mut records = Vec::new();
    for file in input_files(dir) {
        let text = fs::read_to_string(&file).expect("readable dump");
        records.extend(ha_state::read_configmap_dump(&text).expect("a readable dump"));
    }
    let at: jiff::Timestamp = facts.at.parse().expect("valid time");
    let mut clusters = ha_state::read_clusters(&records, at, None);
    for cluster in &mut clusters {
        if let Some(existence) = facts
            .existence
            .get(&format!("{}/{}", cluster.namespace, cluster.cluster_id))
        {
            cluster.existence = existence.clone();
        }
        cluster.apply_payloads(&facts.payloads);
        for job in &mut cluster.jobs {
            let uri = job.recovery_checkpoint().and_then(|c| c.entry.uri()).map(str::to_owned);
            if let Some(file) = uri.and_then(|u| facts.payload_bytes.get(&u)) {
                let bytes = fs::read(dir.join(file)).expect("readable payload");
                ha_state::apply_latest_checkpoint(job, Ok(&bytes));
            }
        }
    }
    let findings: Vec<serde_json::Value> = ha_state::state_findings(&clusters)
        .into_iter()
        .map(|f| serde_json::json!({ "object": f.object, "finding": f.finding }))
        .collect();
    let out = serde_json::json!({
        "clusters": clusters,
        "findings": findings,
        "text": ha_state::render_text(&clusters).lines().collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&out).expect("serializable") + "\n"
}

/// What the corpus produces for one fixture directory.
pub fn actual_output(dir: &Path) -> String {
    if let Ok(facts) = fs::read_to_string(dir.join("inspect.json")) {
        return inspect_output(dir, &facts);
    }
    let review_file = dir.join("review.json");
    if review_file.exists() {
        let body = fs::read_to_string(&review_file).expect("readable review.json");
        let now: jiff::Timestamp = REVIEW_NOW.parse().expect("valid time");
        let settings = match fs::read_to_string(dir.join("settings.json")) {
            Ok(s) => serde_json::from_str(&s).expect("valid settings.json"),
            Err(_) => ReviewSettings::default(),
        };
        let context = review_context(dir).map(|c| match c {
            ContextFile::Found(found) => ReviewContext::Found(found),
            ContextFile::Unknown(why) => ReviewContext::Unknown(why),
        });
        return match review_in_context(&body, now.as_millisecond(), &settings, context.as_ref()) {
            Ok(r) => {
                let v: serde_json::Value = serde_json::from_str(&r.response).expect("response is JSON");
                serde_json::to_string_pretty(&v).expect("serializable") + "\n"
            }
            Err(e) => format!("error: {e}\n"),
        };
    }
    let files = input_files(dir);
    let loaded: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|p| {
            let name = p
                .strip_prefix(dir)
                .expect("inside dir")
                .to_string_lossy()
                .replace('\\', "/");
            (name, fs::read(p).expect("readable fixture"))
        })
        .collect();
    let inputs: Vec<LintInput<'_>> = loaded.iter().map(|(name, bytes)| LintInput { name, bytes }).collect();
    let reports = lint_inputs(&inputs, InputFormat::Auto);
    LintRun::new(loaded.iter().map(|(n, _)| n.clone()).zip(reports)).to_json_pretty() + "\n"
}

#[test]
fn the_review_time_is_one_instant_in_both_spellings() {
    let parsed: jiff::Timestamp = REVIEW_NOW.parse().expect("valid time");
    assert_eq!(parsed.as_millisecond(), REVIEW_NOW_MS);
}

#[test]
fn corpus_matches_expectations() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for dir in fixture_dirs() {
        let actual = actual_output(&dir);
        let expected_path = dir.join("expected.json");
        if update {
            fs::write(&expected_path, &actual).expect("writable expected.json");
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_covers_every_rule() {
    let mut seen = BTreeSet::new();
    for dir in fixture_dirs() {
        let out = actual_output(&dir);
        for rule in rules::ALL {
            if out.contains(&format!("\"rule\": \"{rule}\"")) || out.contains(&format!("[{rule}]")) {
                seen.insert(*rule);
            }
        }
    }
    let missing: Vec<_> = rules::ALL.iter().filter(|r| !seen.contains(r)).collect();
    assert!(missing.is_empty(), "no fixture produces {missing:?}");
}

#[test]
fn clean_inputs_have_no_errors() {
    for dir in fixture_dirs() {
        let name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
        if !name.starts_with("clean-") {
            continue;
        }
        let out = actual_output(&dir);
        assert!(!out.contains("\"severity\": \"error\""), "{name} has errors:\n{out}");
        assert!(!out.contains("\"allowed\": false"), "{name} was denied:\n{out}");
    }
}
