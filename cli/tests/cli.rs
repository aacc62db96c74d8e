//! The `flink-ha` binary as a user meets it: output contract, exit codes, stdin,
//! directories, and the whole fixture corpus through the command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "../../tests/support/corpus.rs"]
mod corpus;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flink-ha"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flink-ha starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("flink-ha finishes")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every lint fixture, run as `flink-ha lint --format json <its files>` from inside its
/// directory, gives exactly its expected.json.
#[test]
fn lint_reproduces_the_corpus() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures()).expect("fixtures") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() || dir.join("review.json").exists() || dir.join("inspect.json").exists() {
            continue;
        }
        let mut files: Vec<String> = corpus::files_under(&dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .map(|p| p.strip_prefix(&dir).expect("inside").to_string_lossy().into_owned())
            .collect();
        files.sort();
        let out = bin()
            .arg("lint")
            .arg("--format=json")
            .args(&files)
            .current_dir(&dir)
            .output()
            .expect("runs");
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).expect("expected.json"))
                .expect("expected is JSON");
        let actual: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
        assert_eq!(actual, expected, "{}", dir.display());
        let errors = expected["summary"]["errors"].as_u64().expect("count");
        assert_eq!(
            out.status.code(),
            Some(if errors > 0 { 1 } else { 0 }),
            "{}",
            dir.display()
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} fixtures found");
}

#[test]
fn text_output_is_compiler_style() {
    let o = bin()
        .args(["lint", "ha109-ha-type-typos/config.yaml"])
        .current_dir(fixtures())
        .output()
        .expect("runs");
    let text = stdout(&o);
    assert!(
        text.starts_with("ha109-ha-type-typos/config.yaml:2:25: error[HA109]: `kubernets` is not an HA type"),
        "{text}"
    );
    assert!(text.contains("\n    hint: did you mean `kubernetes`?"), "{text}");
    assert!(text.ends_with("1 error, 0 warnings, 0 infos in 1 file\n"), "{text}");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn directories_are_walked_and_form_one_bundle() {
    let o = bin()
        .args(["lint", "--format", "json", "ha402-storage-dirs-disagree"])
        .current_dir(fixtures())
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let paths: Vec<&str> = v["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        paths,
        [
            "ha402-storage-dirs-disagree/flinkdeployment.yaml",
            "ha402-storage-dirs-disagree/prod.yaml"
        ]
    );
    assert_eq!(v["summary"]["warnings"], 2);
    assert_eq!(o.status.code(), Some(0), "warnings alone exit 0");
}

#[test]
fn stdin_is_read_with_dash() {
    let o = run_with_stdin(&["lint", "--format=json", "-"], b"high-availability.type: kubernetes\n");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["files"][0]["path"], "<stdin>");
    let rules: Vec<&str> = v["files"][0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["rule"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(rules, ["HA101", "HA103", "HA114", "HA117"]);
    assert_eq!(o.status.code(), Some(1));

    // Legacy format forced on stdin: the quotes are kept.
    let o = run_with_stdin(
        &["lint", "--input-format", "flink-conf", "-"],
        b"high-availability.type: \"none\"\n",
    );
    assert!(stdout(&o).contains("warning[HA004]"), "{}", stdout(&o));
}

#[test]
fn io_and_usage_problems_exit_2_with_one_line() {
    let o = bin().args(["lint", "no/such/file.yaml"]).output().expect("runs");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.starts_with("flink-ha: cannot read no/such/file.yaml:"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let empty = tempfile::tempdir().expect("tempdir");
    let o = bin().arg("lint").arg(empty.path()).output().expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no *.yaml or *.yml files under"), "{}", stderr(&o));

    let o = bin()
        .args(["lint", "--format", "xml", "x.yaml"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    let o = bin()
        .args(["lint", "--input-format", "toml", "x.yaml"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    let o = bin().arg("lint").output().expect("runs");
    assert_eq!(o.status.code(), Some(2), "no PATH is a usage error");
}

#[test]
fn binary_garbage_is_a_finding_not_a_crash() {
    let mut garbage = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..100_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    let o = run_with_stdin(&["lint", "--format=json", "-"], &garbage);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("\"HA001\""), "{}", stdout(&o));
}

#[test]
fn sarif_is_2_1_0_with_the_catalogue() {
    let o = bin()
        .args(["lint", "--format", "sarif", "ha105-no-bucket"])
        .current_dir(fixtures())
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "flink-ha");
    assert_eq!(
        run["tool"]["driver"]["rules"].as_array().expect("rules").len(),
        flink_ha_policy::rules::ALL.len()
    );
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["ruleId"], "HA105");
    assert_eq!(results[0]["level"], "error");
    assert_eq!(results[0]["locations"][0]["physicalLocation"]["region"]["startLine"], 3);
}

#[test]
fn rules_and_schema() {
    let o = bin().args(["rules", "--format", "json"]).output().expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let ids: Vec<&str> = v
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or(""))
        .collect();
    assert!(
        ids.contains(&"HA001") && ids.contains(&"HA205") && ids.contains(&"HA402"),
        "{ids:?}"
    );
    assert!(v[0]["explanation"].as_str().is_some_and(|e| e.len() > 20));

    let o = bin().arg("schema").output().expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v["properties"]["high-availability.storageDir"].is_object());
    assert!(
        v["properties"]["high-availability"]["anyOf"].is_array(),
        "nested form and deprecated flat key"
    );
}

#[test]
fn review_exit_codes_follow_the_decision() {
    let dir = fixtures();
    let now = ["--now", "2026-11-24T01:34:40Z"];
    let o = bin()
        .arg("review")
        .arg(dir.join("review-ha205-delete-live-denied/review.json"))
        .args(now)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["code"], 403);

    let o = bin()
        .arg("review")
        .arg(dir.join("review-ha205-delete-live-denied/review.json"))
        .args(now)
        .args(["--disable", "HA205"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // An hour later the lease has long expired.
    let o = bin()
        .arg("review")
        .arg(dir.join("review-ha205-delete-live-denied/review.json"))
        .args(["--now", "2026-11-24T02:34:40Z"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0));

    let o = run_with_stdin(&["review", "-"], b"{\"kind\":\"ConfigMap\"}");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not an AdmissionReview"), "{}", stderr(&o));

    let o = bin()
        .args(["review", "--disable", "HA999", "x.json"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no such rule"), "{}", stderr(&o));
}

#[test]
fn review_takes_the_cluster_configmap_a_job_configmap_is_judged_by_from_a_context_file() {
    let dir = fixtures();
    let review = dir.join("review-ha205-job-configmap-delete-live-denied/review.json");
    // `kubectl get cm -l app=real-flink -o yaml` of the real Flink 2.3 cluster: a List
    // with the job and the cluster ConfigMap, whose lease was renewed at 06:37:18.5.
    let capture = dir.join("inspect-real-flink-2.3-after-recovery/configmaps.yaml");
    let run = |extra: &[&str]| bin().arg("review").arg(&review).args(extra).output().expect("runs");

    let o = run(&["--now", "2026-11-28T06:37:23Z"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("ConfigMap default/real-flink-cluster-config-map")
            && stderr(&o).contains("--context FILE")
            && stderr(&o).contains("kubectl get configmap real-flink-cluster-config-map -n default -o yaml"),
        "{}",
        stderr(&o)
    );

    let context = capture.to_str().expect("UTF-8 path");
    let o = run(&["--now", "2026-11-28T06:37:23Z", "--context", context]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let message = v["response"]["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("[HA205]") && message.contains("restarts the job empty"),
        "{message}"
    );

    // The lease ran out at 06:37:33.5; and an empty context: no cluster ConfigMap.
    let o = run(&["--now", "2026-11-28T06:40:00Z", "--context", context]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("none.yaml");
    std::fs::write(&empty, "").expect("write");
    let o = run(&[
        "--now",
        "2026-11-28T06:37:23Z",
        "--context",
        empty.to_str().expect("UTF-8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pod = tmp.path().join("pod.yaml");
    std::fs::write(&pod, "kind: Pod\nmetadata: {name: x}\n").expect("write");
    let o = run(&["--context", pod.to_str().expect("UTF-8")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("found kind Pod"), "{}", stderr(&o));
}

#[test]
fn review_applies_a_settings_files_exemptions_as_the_webhook_does() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().expect("tempdir");
    let settings = tmp.path().join("settings.yaml");
    std::fs::write(
        &settings,
        "# as in deploy/base/settings.yaml\nexemptions:\n  - name: operator-teardown\n    rules: [HA205]\n    users: [\"system:serviceaccount:flink-operator:flink-operator\"]\n",
    )
    .expect("write");
    let review = |fixture: &str| {
        bin()
            .arg("review")
            .arg(dir.join(fixture).join("review.json"))
            .args(["--now", "2026-11-24T01:34:40Z", "--settings"])
            .arg(&settings)
            .output()
            .expect("runs")
    };
    let o = review("review-ha205-exempted-operator-admitted");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        v["response"]["warnings"][0],
        "[HA205] exempted by operator-teardown (user system:serviceaccount:flink-operator:flink-operator)"
    );
    assert_eq!(
        review("review-ha205-exemption-other-user-denied").status.code(),
        Some(1)
    );

    std::fs::write(&settings, "exemptions:\n  - name: everything\n    rules: [HA205]\n").expect("write");
    let o = review("review-ha205-exempted-operator-admitted");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("settings.yaml:2:") && stderr(&o).contains("has no condition"),
        "{}",
        stderr(&o)
    );

    let o = bin().args(["schema", "--settings"]).output().expect("runs");
    assert_eq!(o.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(schema["properties"]["exemptions"]["items"]["properties"]["namespaceSelector"].is_object());
}

#[test]
fn examples_run_on_the_embedded_samples() {
    let o = bin().args(["lint", "--examples"]).output().expect("runs");
    let text = stdout(&o);
    assert!(
        text.contains("samples/mistakes/config.yaml:4:25: error[HA109]"),
        "{text}"
    );
    assert!(
        !text.contains("samples/clean/"),
        "the clean sample has no findings:\n{text}"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn fail_on_decides_the_exit_code_and_junit_marks_the_same_findings_failed() {
    // Three warnings (HA006) and no error.
    let input = "ha006-inline-suppressions/config.yaml";
    let code = |args: &[&str]| {
        bin()
            .arg("lint")
            .args(args)
            .arg(input)
            .current_dir(fixtures())
            .output()
            .expect("runs")
            .status
            .code()
    };
    assert_eq!(code(&[]), Some(0), "warnings alone pass by default");
    assert_eq!(code(&["--fail-on", "warning"]), Some(1));
    assert_eq!(code(&["--fail-on", "never"]), Some(0));
    assert_eq!(
        code(&["--fail-on", "sometimes"]),
        Some(2),
        "a bad value is a usage error"
    );

    let junit = |fail_on: &str| {
        let o = bin()
            .args([
                "lint",
                "--format",
                "junit",
                "--fail-on",
                fail_on,
                input,
                "ha109-ha-type-typos/config.yaml",
            ])
            .current_dir(fixtures())
            .output()
            .expect("runs");
        stdout(&o)
    };
    for (fail_on, failures) in [("error", 1), ("warning", 4), ("never", 0)] {
        let xml = junit(fail_on);
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("not XML ({e}):\n{xml}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(root.attribute("failures"), Some(failures.to_string().as_str()), "{xml}");
        let failed = doc.descendants().filter(|n| n.has_tag_name("failure")).count();
        assert_eq!(failed, failures, "{xml}");
        let suites: Vec<&str> = root.children().filter_map(|n| n.attribute("name")).collect();
        assert_eq!(suites, [input, "ha109-ha-type-typos/config.yaml"]);
    }
}

#[test]
fn a_settings_file_found_upward_turns_rules_off_or_changes_severity_per_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("prod")).expect("mkdir");
    std::fs::create_dir_all(root.join("dev/team")).expect("mkdir");
    // HA114, HA117 and HA106 (a file:// storageDir), all warnings, on both.
    let config = "high-availability.type: kubernetes\nhigh-availability.storageDir: file:///mnt/ha\nkubernetes.cluster-id: orders\n";
    std::fs::write(root.join("prod/config.yaml"), config).expect("write");
    std::fs::write(root.join("dev/config.yaml"), config).expect("write");
    std::fs::write(
        root.join(".flink-ha.yaml"),
        "rules:\n  HA117: off\n  HA106: error\noverrides:\n  - paths: [\"dev/**\"]\n    rules:\n      HA106: info\n",
    )
    .expect("write");
    let lint = |cwd: &Path, args: &[&str]| {
        bin()
            .arg("lint")
            .args(["--format", "json"])
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("runs")
    };
    let rules_of = |o: &Output| -> Vec<(String, String, String)> {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        v["files"]
            .as_array()
            .expect("files")
            .iter()
            .flat_map(|f| {
                f["findings"].as_array().expect("findings").iter().map(move |x| {
                    (
                        f["path"].as_str().unwrap_or("").to_string(),
                        x["rule"].as_str().unwrap_or("").to_string(),
                        x["severity"].as_str().unwrap_or("").to_string(),
                    )
                })
            })
            .collect()
    };
    // Found from a subfolder upward; paths are matched relative to the settings file.
    let o = lint(&root.join("dev/team"), &["../config.yaml", "../../prod/config.yaml"]);
    assert_eq!(o.status.code(), Some(1), "prod's HA106 is still an error");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(".flink-ha.yaml"),
        "says which settings apply"
    );
    assert_eq!(
        rules_of(&o),
        [
            ("../config.yaml".into(), "HA114".into(), "warning".into()),
            ("../config.yaml".into(), "HA106".into(), "info".into()),
            ("../../prod/config.yaml".into(), "HA114".into(), "warning".into()),
            ("../../prod/config.yaml".into(), "HA106".into(), "error".into()),
        ]
    );
    // --no-settings: everything back.
    let o = lint(root, &["--no-settings", "dev/config.yaml"]);
    let rules: Vec<String> = rules_of(&o).into_iter().map(|(_, r, _)| r).collect();
    assert!(
        rules.contains(&"HA117".to_string()) && rules.contains(&"HA106".to_string()),
        "{rules:?}"
    );
    // A broken settings file is refused with its place, not half applied.
    std::fs::write(root.join(".flink-ha.yaml"), "rules:\n  HA117: off\n  HA9999: warning\n").expect("write");
    let o = lint(root, &["dev/config.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(".flink-ha.yaml:3:3: `HA9999` is not a rule"), "{err}");
    std::fs::write(root.join(".flink-ha.yaml"), "rulez:\n  HA117: off\n").expect("write");
    let o = lint(root, &["dev/config.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(".flink-ha.yaml:1:1: unknown field `rulez`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `.pre-commit-hooks.yaml` as a user's repository runs it: `pre-commit try-repo` against
/// this repository, with the `flink-ha` built here on PATH.
#[test]
fn the_pre_commit_hook_fails_a_commit_with_an_error_and_passes_a_clean_one() {
    let repo_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_flink-ha")).parent().expect("a folder");
    let user = tempfile::tempdir().expect("tempdir");
    let work = user.path().join("flink-configs");
    std::fs::create_dir_all(&work).expect("mkdir");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .current_dir(&work)
            .env("PATH", &path)
            .env("PRE_COMMIT_HOME", user.path().join("cache"))
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}); scripts/setup installs pre-commit"))
    };
    assert!(run("git", &["init", "-q"]).status.success());
    let typo = "kubernetes.cluster-id: orders\nhigh-availability.type: kubernets\nhigh-availability.storageDir: s3://flink/ha\n";
    std::fs::write(work.join("config.yaml"), typo).expect("write");
    assert!(run("git", &["add", "config.yaml"]).status.success());
    let repo = repo_root.display().to_string();
    let try_repo = ["try-repo", repo.as_str(), "flink-ha-lint", "--all-files"];
    let o = run("pre-commit", &try_repo);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", stderr(&o));
    assert!(
        out.contains("flink-ha lint") && out.contains("Failed") && out.contains("HA109"),
        "{out}"
    );

    std::fs::write(work.join("config.yaml"), typo.replace("kubernets", "kubernetes")).expect("write");
    assert!(run("git", &["add", "config.yaml"]).status.success());
    let o = run("pre-commit", &try_repo);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("Passed"), "{out}");
}
