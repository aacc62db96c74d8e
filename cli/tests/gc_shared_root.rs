//! `flink-ha gc -A --yes` on a storage root shared with other people's data: another
//! Kubernetes cluster's HA folder, standalone clusters in `default/` (one live), a forged
//! HA ConfigMap pointing at others' payloads, a cluster with no readable lease, folders no
//! ConfigMap names (one with the runtime's owner marker, one without) and, one level up,
//! a checkpoint directory and savepoints. Every file that is not the dead cluster's keeps
//! its bytes, for the right root, a root one level up and a root with no path.
//!
//! Its own test binary: `-A --yes` acts on every namespace of the control plane, which this
//! process owns alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use flink_ha_runtime::payloads::Pointer;
use flink_ha_runtime::storage::{self, StorageOptions};
use flink_ha_testenv::{S3Server, TestEnv};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use object_store::ObjectStoreExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const J_GONE: &str = "11111111111111111111111111111111";
const J_TEAM_B: &str = "22222222222222222222222222222222";
const J_FORGER: &str = "33333333333333333333333333333333";
const J_LIVE: &str = "44444444444444444444444444444444";
const J_DEAD_SA: &str = "55555555555555555555555555555555";
const J_NOLEASE: &str = "66666666666666666666666666666666";
const TWO_DAYS: Duration = Duration::from_secs(2 * 24 * 3600);

fn flink_ha(args: &[&str], kubeconfig: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flink-ha"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("flink-ha runs")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `bytes` at `root/relative`, last modified two days ago.
fn put(root: &Path, relative: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("a parent"))?;
    std::fs::write(&path, bytes)?;
    std::fs::File::options()
        .write(true)
        .open(&path)?
        .set_modified(SystemTime::now() - TWO_DAYS)
}

/// Every file under `root` and its bytes.
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk(root)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("readable");
            (p.strip_prefix(root).expect("under root").to_path_buf(), bytes)
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A cluster ConfigMap whose lock `holder` renewed `renewed_ago` ago (no lock: `None`),
/// holding the runtime's plan pointer of `job`.
fn cluster_configmap(cluster_id: &str, lock: Option<(&str, Duration)>, job: &str, plan_uri: &str) -> ConfigMap {
    let mut annotations = serde_json::Map::new();
    if let Some((holder, ago)) = lock {
        let renew = jiff::Timestamp::now() - jiff::SignedDuration::try_from(ago).expect("a duration");
        let record = serde_json::json!({
            "holderIdentity": holder,
            "leaseDuration": "PT15S",
            "acquireTime": renew.to_string(),
            "renewTime": renew.to_string(),
            "leaderTransitions": 0,
        });
        annotations.insert(
            "control-plane.alpha.kubernetes.io/leader".to_owned(),
            record.to_string().into(),
        );
    }
    let plan = Pointer {
        path: plan_uri.to_owned(),
        marked_for_deletion: false,
    };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("{cluster_id}-cluster-config-map"),
            "labels": { "app": cluster_id, "type": "flink-native-kubernetes", "configmap-type": "high-availability" },
            "annotations": annotations,
        },
        "data": { flink_ha_policy::ha_layout::runtime_execution_plan_key(job): plan.to_json() },
    }))
    .expect("a ConfigMap")
}

/// A job ConfigMap with one checkpoint pointer (checkpoint 3) to `uri`.
fn job_configmap(cluster_id: &str, job: &str, uri: &str) -> ConfigMap {
    let pointer = Pointer {
        path: uri.to_owned(),
        marked_for_deletion: false,
    };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("{cluster_id}-{job}-config-map"),
            "labels": { "app": cluster_id, "type": "flink-native-kubernetes", "configmap-type": "high-availability" },
        },
        "data": { flink_ha_runtime::checkpoint_store::checkpoint_key(3): pointer.to_json() },
    }))
    .expect("a ConfigMap")
}

async fn create(client: &kube::Client, namespace: &str, configmaps: Vec<ConfigMap>) -> TestResult {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for cm in configmaps {
        api.create(&PostParams::default(), &cm).await?;
    }
    Ok(())
}

async fn names(client: &kube::Client) -> Result<Vec<String>, kube::Error> {
    let api: Api<ConfigMap> = Api::all(client.clone());
    let mut names: Vec<String> = api
        .list(&Default::default())
        .await?
        .into_iter()
        .filter(|c| {
            c.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("configmap-type"))
        })
        .map(|c| {
            format!(
                "{}/{}",
                c.metadata.namespace.unwrap_or_default(),
                c.metadata.name.unwrap_or_default()
            )
        })
        .collect();
    names.sort();
    Ok(names)
}

/// One test at a time: each runs `gc -A --yes`, which would act on the other's clusters.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn gc_on_a_shared_root_deletes_only_the_dead_clusters_own_files() -> TestResult {
    let _turn = TURN.lock().await;
    let env = TestEnv::new("gc-shared-root").await?;
    let (a, b) = (env.namespace.clone(), format!("{}-b", env.namespace));
    Api::<Namespace>::all(env.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({ "metadata": { "name": b } }))?,
        )
        .await?;
    let top = tempfile::tempdir()?;
    let root = top.path().join("ha");
    let uri = |relative: &str| format!("file://{}/{relative}", root.display());
    let h24 = |c: char| c.to_string().repeat(24);
    let h12 = |c: char| c.to_string().repeat(12);

    // The dead cluster `gone` (namespace a): pointer-named payloads, an unreferenced Flink
    // HA file in its own folder, its job's blob and dirty job-result entry.
    let gone_checkpoint = format!("gone/completedCheckpoint{}", h24('1'));
    let gone_plan = format!("gone/submittedExecutionPlan{}", h24('2'));
    put(&root, &gone_checkpoint, b"gone checkpoint")?;
    put(&root, &gone_plan, b"gone plan")?;
    put(
        &root,
        &format!("gone/completedCheckpoint{}", h24('3')),
        b"gone, unreferenced",
    )?;
    put(&root, &format!("gone/blob/job_{J_GONE}/blob_p-1-2"), b"gone jar")?;
    put(&root, &format!("job-result-store/gone/{J_GONE}_DIRTY.json"), b"{}")?;
    create(
        &env.client,
        &a,
        vec![
            cluster_configmap("gone", Some(("", TWO_DAYS)), J_GONE, &uri(&gone_plan)),
            job_configmap("gone", J_GONE, &uri(&gone_checkpoint)),
        ],
    )
    .await?;
    // Another Kubernetes cluster's HA folder: no ConfigMap here names it.
    put(
        &root,
        &format!("team-b/completedCheckpoint{}", h12('a')),
        b"team-b checkpoint",
    )?;
    put(
        &root,
        &format!("team-b/submittedJobGraph{}", h12('b')),
        b"team-b job graph",
    )?;
    put(&root, &format!("team-b/blob/job_{J_TEAM_B}/blob_p-3-4"), b"team-b jar")?;
    put(&root, &format!("job-result-store/team-b/{J_TEAM_B}.json"), b"{}")?;
    // Standalone clusters in `default/`: one live (namespace b), one dead (namespace a),
    // and a file of a standalone cluster elsewhere.
    let live_checkpoint = format!("default/completedCheckpoint{}", h12('c'));
    let dead_sa_checkpoint = format!("default/completedCheckpoint{}", h12('d'));
    put(&root, &live_checkpoint, b"live checkpoint")?;
    put(&root, &dead_sa_checkpoint, b"dead standalone checkpoint")?;
    put(
        &root,
        &format!("default/completedCheckpoint{}", h12('e')),
        b"someone else's",
    )?;
    let live_plan = format!("default/submittedExecutionPlan{}", h12('f'));
    put(&root, &live_plan, b"live plan")?;
    create(
        &env.client,
        &b,
        vec![
            cluster_configmap("live", Some(("jm-1", Duration::ZERO)), J_LIVE, &uri(&live_plan)),
            job_configmap("live", J_LIVE, &uri(&live_checkpoint)),
        ],
    )
    .await?;
    create(
        &env.client,
        &a,
        vec![
            cluster_configmap("dead-sa", Some(("", TWO_DAYS)), J_DEAD_SA, &uri(&live_plan)),
            job_configmap("dead-sa", J_DEAD_SA, &uri(&dead_sa_checkpoint)),
        ],
    )
    .await?;
    // A forged, dead cluster whose pointers name team-b's and the live cluster's payloads.
    create(
        &env.client,
        &b,
        vec![
            cluster_configmap(
                "forger",
                Some(("", TWO_DAYS)),
                J_FORGER,
                &uri(&format!("team-b/submittedJobGraph{}", h12('b'))),
            ),
            job_configmap("forger", J_FORGER, &uri(&live_checkpoint)),
        ],
    )
    .await?;
    // A cluster without a readable lease (no cluster ConfigMap): unknown, not dead.
    let nolease_checkpoint = format!("nolease/completedCheckpoint{}", h24('5'));
    put(&root, &nolease_checkpoint, b"nolease checkpoint")?;
    create(
        &env.client,
        &a,
        vec![job_configmap("nolease", J_NOLEASE, &uri(&nolease_checkpoint))],
    )
    .await?;
    // Folders no ConfigMap names: one the runtime marked as a gone cluster's, one unmarked.
    put(
        &root,
        "old-rt/flink-ha-owner.json",
        format!(r#"{{"owner":"{a}/old-rt"}}"#).as_bytes(),
    )?;
    put(
        &root,
        &format!("old-rt/submittedExecutionPlan{}", h24('6')),
        b"old-rt plan",
    )?;
    put(&root, "stray/completedCheckpoint0123456789ab", b"stray")?;
    // One level up: a checkpoint directory and a savepoint beside the storageDir.
    put(
        top.path(),
        &format!("checkpoints/{J_GONE}/chk-41/_metadata"),
        b"metadata",
    )?;
    put(
        top.path(),
        &format!("checkpoints/{J_GONE}/shared/state-1"),
        b"shared state",
    )?;
    put(
        top.path(),
        "savepoints/savepoint-111111-aaaaaaaaaaaa/_metadata",
        b"savepoint",
    )?;

    let before_files = files(top.path());
    let before_names = names(&env.client).await?;

    // A root one level up, and a root with no path: refused, nothing changes.
    let up = format!("file://{}", top.path().display());
    for (storage, expected) in [
        (up.as_str(), "holds data that is not Flink HA state"),
        ("file:///", "has no path below"),
    ] {
        let out = flink_ha(&["gc", "-A", "--storage", storage, "--yes"], &env.kubeconfig);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{}",
            describe(&out)
        );
        assert_eq!(files(top.path()), before_files, "{storage}: {}", describe(&out));
        assert_eq!(names(&env.client).await?, before_names, "{storage}: {}", describe(&out));
    }
    // --older-than under the floor: refused.
    let storage = format!("file://{}", root.display());
    let out = flink_ha(
        &["gc", "-A", "--storage", &storage, "--older-than", "1 s", "--yes"],
        &env.kubeconfig,
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    // The right root: a dry run first (README shows its output), which changes nothing.
    let out = flink_ha(
        &["gc", "-A", "--storage", &storage, "--older-than", "1 d"],
        &env.kubeconfig,
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(files(top.path()), before_files, "{}", describe(&out));
    assert_eq!(names(&env.client).await?, before_names, "{}", describe(&out));
    let backups = tempfile::tempdir()?;
    let backup = backups.path().join("gc-1");
    let backup_arg = backup.to_str().ok_or("utf-8")?;
    let out = flink_ha(
        &[
            "gc",
            "-A",
            "--storage",
            &storage,
            "--older-than",
            "1 d",
            "--yes",
            "--backup-dir",
            backup_arg,
        ],
        &env.kubeconfig,
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "cluster nolease (namespace ".to_owned(),
        "refused: unknown, not dead".to_owned(),
        "cluster live (namespace ".to_owned(),
        "refused: its lease is live".to_owned(),
        format!(
            "keep {}: named by its pointer, but outside its folder forger/",
            uri(&format!("team-b/submittedJobGraph{}", h12('b')))
        ),
        "stray/ (1 file(s), 5 bytes): no HA ConfigMap gc can see refers to it, but nothing proves whose it is"
            .to_owned(),
    ] {
        assert!(text.contains(&expected), "missing `{expected}`:\n{}", describe(&out));
    }
    let deleted: Vec<PathBuf> = [
        gone_checkpoint.clone(),
        gone_plan.clone(),
        format!("gone/completedCheckpoint{}", h24('3')),
        format!("gone/blob/job_{J_GONE}/blob_p-1-2"),
        format!("job-result-store/gone/{J_GONE}_DIRTY.json"),
        "old-rt/flink-ha-owner.json".to_owned(),
        format!("old-rt/submittedExecutionPlan{}", h24('6')),
    ]
    .iter()
    .map(|r| Path::new("ha").join(r))
    .collect();
    let mut expected_files = before_files.clone();
    for path in &deleted {
        assert!(
            expected_files.remove(path).is_some(),
            "{} was never laid out",
            path.display()
        );
    }
    assert_eq!(files(top.path()), expected_files, "{}", describe(&out));
    let mut expected_names = before_names.clone();
    expected_names.retain(|n| {
        !(n == &format!("{a}/gone-cluster-config-map")
            || n == &format!("{a}/gone-{J_GONE}-config-map")
            || n.starts_with(&format!("{a}/dead-sa-"))
            || n.starts_with(&format!("{b}/forger-")))
    });
    assert_eq!(names(&env.client).await?, expected_names, "{}", describe(&out));

    // Again: nothing more goes (and no backup folder is made for nothing).
    let after = files(top.path());
    let again = backups.path().join("gc-2");
    let out = flink_ha(
        &[
            "gc",
            "-A",
            "--storage",
            &storage,
            "--older-than",
            "1 d",
            "--yes",
            "--backup-dir",
            again.to_str().ok_or("utf-8")?,
        ],
        &env.kubeconfig,
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(files(top.path()), after, "{}", describe(&out));
    assert!(!again.exists());

    // Undo: the backup gc wrote puts back every file and ConfigMap it deleted, bytes equal;
    // a dry run first changes nothing.
    let restore = |yes: bool| {
        let mut args = vec!["backup", "--restore", backup_arg, "--storage", &storage];
        if yes {
            args.push("--yes");
        }
        flink_ha(&args, &env.kubeconfig)
    };
    let out = restore(false);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("would put back"),
        "{}",
        describe(&out)
    );
    assert_eq!(files(top.path()), after, "{}", describe(&out));
    let out = restore(true);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(files(top.path()), before_files, "{}", describe(&out));
    assert_eq!(names(&env.client).await?, before_names, "{}", describe(&out));
    // Twice: everything exists, nothing is overwritten.
    let out = restore(true);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("a backup never overwrites"),
        "{}",
        describe(&out)
    );

    // A folder nothing proves is an orphan goes only when an operator names it and confirms
    // the file count the dry run showed; one a ConfigMap refers to, or `default`, never.
    let folder = |extra: &[&str]| {
        let mut args = vec!["gc", "-A", "--storage", &storage, "--backup-dir"];
        let dir = backups.path().join(format!("folder-{}", extra.len()));
        let dir = dir.to_str().unwrap_or_default().to_owned();
        args.push(&dir);
        args.extend_from_slice(extra);
        flink_ha(&args, &env.kubeconfig)
    };
    let out = folder(&["--folder", "stray"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("named by --folder: 1 file(s), 5 bytes"),
        "{}",
        describe(&out)
    );
    for (extra, expected) in [
        (&["--folder", "stray", "--yes"][..], "needs --confirm-files 1"),
        (
            &["--folder", "stray", "--yes", "--confirm-files", "2"][..],
            "now holds 1 file(s)",
        ),
        (
            &["--folder", "team-b", "--yes", "--confirm-files", "3"][..],
            "refer to it",
        ),
        (&["--folder", "default"][..], "not `default`"),
    ] {
        let out = folder(extra);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{}",
            describe(&out)
        );
        assert_eq!(files(top.path()), before_files, "{}", describe(&out));
    }
    let out = folder(&["--folder", "stray", "--yes", "--confirm-files", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut expected = before_files.clone();
    expected.remove(Path::new("ha/stray/completedCheckpoint0123456789ab"));
    assert_eq!(files(top.path()), expected, "{}", describe(&out));
    Ok(())
}

/// Every object of a bucket and its bytes.
async fn objects(
    store: &dyn object_store::ObjectStore,
) -> Result<BTreeMap<String, Vec<u8>>, Box<dyn std::error::Error>> {
    let listed: Vec<_> = store.list(None).try_collect().await?;
    let mut out = BTreeMap::new();
    for meta in listed {
        let bytes = store.get(&meta.location).await?.bytes().await?;
        out.insert(meta.location.to_string(), bytes.to_vec());
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_on_s3_refuses_a_bucket_root_and_deletes_only_the_dead_clusters_objects() -> TestResult {
    let _turn = TURN.lock().await;
    let env = TestEnv::new("gc-s3").await?;
    let s3 = S3Server::shared()?;
    let bucket = format!("gc-{}", std::process::id());
    s3.create_bucket(&bucket)?;
    let config = format!(
        "high-availability.type: kubernetes\nhigh-availability.storageDir: s3://{bucket}/ha\ns3.endpoint: {}\ns3.path.style.access: true\ns3.access-key: flink-ha-test\ns3.secret-key: flink-ha-test-secret\n",
        s3.endpoint()
    );
    let options = StorageOptions::from_entries(config.lines().filter_map(|l| l.split_once(": ")));
    let (store, _) = storage::open(&format!("s3://{bucket}/ha"), &options)?;
    let checkpoint = format!("ha/gone-s3/completedCheckpoint{}", "7".repeat(24));
    for (key, bytes) in [
        (checkpoint.as_str(), &b"gone checkpoint"[..]),
        ("ha/team-c/completedCheckpoint0123456789ab", b"team-c checkpoint"),
        (
            "ha/job-result-store/team-c/77777777777777777777777777777777.json",
            b"{}",
        ),
        (
            "checkpoints/77777777777777777777777777777777/chk-1/_metadata",
            b"metadata",
        ),
        ("savepoints/savepoint-777777-0123456789ab/_metadata", b"savepoint"),
    ] {
        store
            .put(&object_store::path::Path::from(key), bytes.to_vec().into())
            .await?;
    }
    create(
        &env.client,
        &env.namespace,
        vec![
            cluster_configmap(
                "gone-s3",
                Some(("", TWO_DAYS)),
                J_GONE,
                &format!("s3://{bucket}/ha/gone-s3/submittedExecutionPlan{}", "8".repeat(24)),
            ),
            job_configmap("gone-s3", J_GONE, &format!("s3://{bucket}/{checkpoint}")),
        ],
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, &config)?;
    let config_arg = config_path.to_str().ok_or("utf-8")?;
    let backup = dir.path().join("backup");
    let before = objects(store.as_ref()).await?;

    // The bucket itself, and the bucket's root given as the storageDir: refused.
    for root in [format!("s3://{bucket}"), format!("s3://{bucket}/")] {
        let out = flink_ha(
            &["gc", "-A", "--config", config_arg, "--storage", &root, "--yes"],
            &env.kubeconfig,
        );
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("has no path below"),
            "{}",
            describe(&out)
        );
    }
    assert_eq!(objects(store.as_ref()).await?, before);

    // The storageDir: only the dead cluster's checkpoint goes.
    let out = flink_ha(
        &[
            "gc",
            "-A",
            "--config",
            config_arg,
            "--older-than",
            "1 d",
            "--yes",
            "--backup-dir",
            backup.to_str().ok_or("utf-8")?,
        ],
        &env.kubeconfig,
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut expected = before.clone();
    expected.remove(&checkpoint);
    assert_eq!(objects(store.as_ref()).await?, expected, "{}", describe(&out));
    Ok(())
}
