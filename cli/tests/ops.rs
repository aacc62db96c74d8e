//! `flink-ha inspect`, `gc` and `audit` on a real Flink 2.3 cluster's HA data
//! (`tests/real-flink/capture-2.3/`): offline from its `kubectl get cm -o yaml` dump, and
//! live after loading its ConfigMaps into a real API server, with the payloads on a local
//! folder and on a real S3-compatible server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use flink_ha_runtime::storage::{self, StorageOptions};
use flink_ha_testenv::{S3Server, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use object_store::ObjectStoreExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB: &str = "25fc957960a1789dd1ef3466290fa995";
const CHECKPOINT: &str = "completedCheckpointe31c6049fc69";
const PLAN: &str = "submittedExecutionPlan0036a6a2eccb";
const BLOB: &str = "blob_p-43a84e9fd5d395cbdcd5144f1f2e3d6fa2b03c24-e39149054c743126d5a949b4e8b1c9d6";

fn capture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/real-flink/capture-2.3")
        .join(file)
}

fn flink_ha(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flink-ha"));
    command.args(args).env("RUST_LOG", "warn");
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env("KUBECONFIG", "/nonexistent/kubeconfig"),
    };
    command.output().expect("flink-ha runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The capture's ConfigMaps, ready to create in `namespace` (server-set fields dropped).
/// `rewrite` replaces the capture's install folder (`/var/flink-data`) inside the pointers
/// with a path of the same length, so the Java streams stay valid.
fn capture_configmaps(namespace: &str, rewrite: Option<&str>) -> Vec<ConfigMap> {
    let text = std::fs::read_to_string(capture("configmaps-after-recovery.yaml")).expect("capture");
    let list: serde_json::Value = serde_yaml::from_str(&text).expect("yaml");
    let b64 = base64::engine::general_purpose::STANDARD;
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let mut cm: ConfigMap = serde_json::from_value(item.clone()).expect("a ConfigMap");
            cm.metadata.namespace = Some(namespace.to_owned());
            cm.metadata.uid = None;
            cm.metadata.resource_version = None;
            cm.metadata.creation_timestamp = None;
            if let (Some(to), Some(data)) = (rewrite, cm.data.as_mut()) {
                assert_eq!(to.len(), "/var/flink-data".len());
                for (key, value) in data.iter_mut() {
                    if key.starts_with("checkpointID-") || key.starts_with("executionPlan-") {
                        let mut bytes = b64.decode(value.as_bytes()).expect("base64");
                        replace_all(&mut bytes, b"/var/flink-data", to.as_bytes());
                        *value = b64.encode(bytes);
                    }
                }
            }
            cm
        })
        .collect()
}

fn replace_all(haystack: &mut [u8], from: &[u8], to: &[u8]) {
    let mut i = 0;
    while i + from.len() <= haystack.len() {
        if &haystack[i..i + from.len()] == from {
            haystack[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
}

async fn create_all(env: &TestEnv, configmaps: Vec<ConfigMap>) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    for cm in configmaps {
        api.create(&PostParams::default(), &cm).await?;
    }
    Ok(())
}

/// A folder of exactly `/var/flink-data`'s length (`/tmp/fha-XXXXXX`), for pointers
/// rewritten to point into it.
fn same_length_folder() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("fha-")
        .rand_bytes(6)
        .tempdir_in("/tmp")
        .expect("a temp folder");
    assert_eq!(dir.path().to_str().expect("utf-8").len(), "/var/flink-data".len());
    dir
}

/// Lays out the capture's storageDir under `root` (`ha/default/…`, blob, a job-result-store
/// entry) plus a file of another cluster in the shared `default` folder.
fn lay_out_storage(root: &Path) -> std::io::Result<()> {
    let folder = root.join("ha/default");
    std::fs::create_dir_all(folder.join(format!("blob/job_{JOB}")))?;
    std::fs::copy(capture(CHECKPOINT), folder.join(CHECKPOINT))?;
    std::fs::copy(capture(PLAN), folder.join(PLAN))?;
    std::fs::write(folder.join(format!("blob/job_{JOB}/{BLOB}")), b"jar bytes")?;
    std::fs::write(folder.join("completedCheckpoint0123456789ab"), b"another cluster's")?;
    std::fs::create_dir_all(root.join("ha/job-result-store/default"))?;
    std::fs::write(
        root.join(format!("ha/job-result-store/default/{JOB}_DIRTY.json")),
        br#"{"result":{}}"#,
    )?;
    Ok(())
}

#[test]
fn inspect_offline_names_leader_job_checkpoint_and_the_restore_path_of_a_real_flink_dump() {
    // The payload files in a plain folder, as a support bundle holds them.
    let payloads = tempfile::tempdir().expect("temp dir");
    for file in [CHECKPOINT, PLAN] {
        std::fs::copy(capture(file), payloads.path().join(file)).expect("copy");
    }
    let dump = capture("configmaps-after-recovery.yaml");
    let storage = format!("file://{}", payloads.path().display());
    let out = flink_ha(
        &[
            "inspect",
            "--from",
            dump.to_str().expect("utf-8"),
            "--storage",
            &storage,
            "--at",
            "2026-11-28T06:37:25Z",
        ],
        None,
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for expected in [
        "cluster real-flink (namespace default)",
        "leader:     6f46063f-947d-4e5c-9045-709dda02fdae, live, expires in 8 s",
        "restserver: http://127.0.0.1:18081",
        &format!("job {JOB} (Flink)"),
        &format!(
            "checkpoint 66: file:/var/flink-data/ha/default/{CHECKPOINT} (8817 bytes), found at {storage}/{CHECKPOINT} (8817 bytes)"
        ),
        "counter:     67 (next checkpoint id)",
        &format!("restore by hand: file:/var/flink-data/ckpt/{JOB}/chk-66"),
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }

    // The same as JSON, for scripts.
    let out = flink_ha(
        &[
            "inspect",
            "--from",
            dump.to_str().expect("utf-8"),
            "--storage",
            &storage,
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let job = &json["clusters"][0]["jobs"][0];
    assert_eq!(job["latest"]["checkpoint_id"], 66);
    assert_eq!(
        job["latest"]["info"]["external_pointer"],
        format!("file:/var/flink-data/ckpt/{JOB}/chk-66")
    );
    assert_eq!(json["summary"]["errors"], 0);

    // A payload gone from storage is an error finding (exit 1) naming the pointer.
    std::fs::remove_file(payloads.path().join(CHECKPOINT)).expect("remove");
    let out = flink_ha(
        &[
            "inspect",
            "--from",
            dump.to_str().expect("utf-8"),
            "--storage",
            &storage,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stdout(&out).contains("error[HA209]: `checkpointID-0000000000000000066` points at"),
        "{}",
        describe(&out)
    );

    // A dump that is not YAML, and a cluster id that is not there: exit 2 with the reason.
    let broken = payloads.path().join("broken.yaml");
    std::fs::write(&broken, "items: [\n").expect("write");
    let out = flink_ha(&["inspect", "--from", broken.to_str().expect("utf-8")], None);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = flink_ha(
        &["inspect", "no-such-cluster", "--from", dump.to_str().expect("utf-8")],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no HA ConfigMaps of cluster id `no-such-cluster`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_live_reads_a_real_flink_clusters_state_with_its_payloads_on_s3() -> TestResult {
    let env = TestEnv::new("inspect-live").await?;
    create_all(&env, capture_configmaps(&env.namespace, None)).await?;

    // The storageDir copied to S3: `s3://<bucket>/ha/default/…`.
    let s3 = S3Server::shared()?;
    let bucket = format!("inspect-{}", std::process::id());
    s3.create_bucket(&bucket)?;
    let config = format!(
        "high-availability.type: kubernetes\nhigh-availability.storageDir: s3://{bucket}/ha\ns3.endpoint: {}\ns3.path.style.access: true\ns3.access-key: flink-ha-test\ns3.secret-key: flink-ha-test-secret\nkubernetes.cluster-id: real-flink\n",
        s3.endpoint()
    );
    let options = StorageOptions::from_entries(config.lines().filter_map(|l| l.split_once(": ")));
    let (store, root) = storage::open(&format!("s3://{bucket}/ha"), &options)?;
    for file in [CHECKPOINT, PLAN] {
        let bytes = std::fs::read(capture(file))?;
        store
            .put(&root.clone().join("default").join(file), bytes.into())
            .await?;
    }
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, &config)?;

    // Beside it, a cluster of the runtime's, with its own keys and JSON pointers.
    let runtime_job = "0f0e0d0c0b0a09080706050403020100";
    let checkpoint_uri = format!("s3://{bucket}/ha/rt/completedCheckpoint{}", "0".repeat(24));
    store
        .put(
            &root
                .clone()
                .join("rt")
                .join(format!("completedCheckpoint{}", "0".repeat(24))),
            b"app bytes".to_vec().into(),
        )
        .await?;
    let pointer = flink_ha_runtime::payloads::Pointer {
        path: checkpoint_uri.clone(),
        marked_for_deletion: false,
    };
    let runtime_cms: Vec<ConfigMap> = vec![
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "rt-cluster-config-map", "labels": { "app": "rt", "type": "flink-native-kubernetes" } },
        }))?,
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": format!("rt-{runtime_job}-config-map"), "labels": { "app": "rt", "type": "flink-native-kubernetes" } },
            "data": {
                flink_ha_runtime::checkpoint_store::checkpoint_key(7): pointer.to_json(),
                flink_ha_runtime::checkpoint_counter::COUNTER_KEY: "8",
            },
        }))?,
    ];
    create_all(&env, runtime_cms).await?;
    let out = flink_ha(
        &[
            "inspect",
            "rt",
            "-n",
            &env.namespace,
            "--config",
            config_path.to_str().ok_or("utf-8")?,
        ],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for expected in [
        format!("job {runtime_job} (flink-ha runtime)"),
        format!("checkpoint 7: {checkpoint_uri}, found (9 bytes)"),
        "counter:     8 (next checkpoint id)".to_owned(),
    ] {
        assert!(
            stdout(&out).contains(&expected),
            "missing `{expected}` in:\n{}",
            describe(&out)
        );
    }

    let out = flink_ha(
        &[
            "inspect",
            "real-flink",
            "-n",
            &env.namespace,
            "--config",
            config_path.to_str().ok_or("utf-8")?,
        ],
        Some(&env.kubeconfig),
    );
    let text = stdout(&out);
    // The capture's lease ran out long ago by the API server's clock, and no Deployment or
    // FlinkDeployment carries the id: a warning (HA212), not an error.
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for expected in [
        "exists:     gone: no JobManager Deployment or FlinkDeployment with this id".to_owned(),
        "leader:     6f46063f-947d-4e5c-9045-709dda02fdae, expired".to_owned(),
        format!("job {JOB} (Flink)"),
        format!("found at s3://{bucket}/ha/default/{CHECKPOINT} (8817 bytes)"),
        format!("restore by hand: file:/var/flink-data/ckpt/{JOB}/chk-66"),
        format!(
            "{}/ConfigMap/real-flink-cluster-config-map: warning[HA212]",
            env.namespace
        ),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }

    // With a JobManager Deployment named after the id, the cluster exists: no HA212.
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.namespace);
    deployments
        .create(&PostParams::default(), &jobmanager_deployment("real-flink"))
        .await?;
    let out = flink_ha(&["inspect", "real-flink", "-n", &env.namespace], Some(&env.kubeconfig));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("exists:     running: Deployment/real-flink"),
        "{}",
        describe(&out)
    );
    assert!(!stdout(&out).contains("HA212"), "{}", describe(&out));
    Ok(())
}

fn jobmanager_deployment(name: &str) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name, "component": "jobmanager" } },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name, "component": "jobmanager" } },
            "template": {
                "metadata": { "labels": { "app": name, "component": "jobmanager" } },
                "spec": { "containers": [ { "name": "jobmanager", "image": "flink:2.3" } ] }
            }
        }
    }))
    .expect("a Deployment")
}

/// The Flink Kubernetes Operator's FlinkDeployment CRD (its schema left open), so a
/// FlinkDeployment can exist; idempotent across tests on the shared control plane.
async fn ensure_flinkdeployment_crd(client: &kube::Client) -> TestResult {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "flinkdeployments.flink.apache.org" },
        "spec": {
            "group": "flink.apache.org",
            "scope": "Namespaced",
            "names": { "plural": "flinkdeployments", "singular": "flinkdeployment", "kind": "FlinkDeployment" },
            "versions": [{
                "name": "v1beta1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } }
            }]
        }
    }))?;
    match Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    // Served once established.
    let resource = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "flink.apache.org",
        "v1beta1",
        "FlinkDeployment",
    ));
    let api: Api<kube::core::DynamicObject> = Api::all_with(client.clone(), &resource);
    for _ in 0..100 {
        if api.list(&Default::default()).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err("the FlinkDeployment CRD was not served within 10 s".into())
}

async fn create_flinkdeployment(env: &TestEnv, name: &str) -> TestResult {
    ensure_flinkdeployment_crd(&env.client).await?;
    let resource = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "flink.apache.org",
        "v1beta1",
        "FlinkDeployment",
    ));
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &resource);
    let object: kube::core::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": { "name": name },
        "spec": { "flinkVersion": "v2_0", "job": { "upgradeMode": "last-state" } },
    }))?;
    api.create(&PostParams::default(), &object).await?;
    Ok(())
}

/// A cluster ConfigMap whose lock `holder` renewed `renewed_secs_ago` seconds ago.
fn lock_configmap(cluster_id: &str, holder: &str, renewed_secs_ago: i64) -> ConfigMap {
    let renew = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(renewed_secs_ago);
    let record = serde_json::json!({
        "holderIdentity": holder,
        "leaseDuration": "PT15S",
        "acquireTime": renew.to_string(),
        "renewTime": renew.to_string(),
        "leaderTransitions": 0,
    });
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("{cluster_id}-cluster-config-map"),
            "labels": { "app": cluster_id, "type": "flink-native-kubernetes" },
            "annotations": { "control-plane.alpha.kubernetes.io/leader": record.to_string() },
        },
    }))
    .expect("a ConfigMap")
}

/// The capture's cluster, long gone, in a namespace of its own: its ConfigMaps with the
/// pointers rewritten into a storageDir laid out under the returned folder (`ha/`).
async fn gone_real_flink_cluster(test_name: &str) -> Result<(TestEnv, tempfile::TempDir), Box<dyn std::error::Error>> {
    let env = TestEnv::new(test_name).await?;
    let folder = same_length_folder();
    let root = folder.path().to_str().ok_or("utf-8")?.to_owned();
    create_all(&env, capture_configmaps(&env.namespace, Some(&root))).await?;
    lay_out_storage(folder.path())?;
    Ok((env, folder))
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_exactly_a_gone_clusters_state_and_refuses_every_protected_one() -> TestResult {
    let (env, folder) = gone_real_flink_cluster("gc").await?;
    let root = folder.path();
    // Beside it: a cluster with a Deployment, one with a live lease, one that stopped a
    // minute ago, and ConfigMaps that only look like HA state by their labels.
    create_all(
        &env,
        vec![
            lock_configmap("deployed", "", 7200),
            lock_configmap("operated", "", 7200),
            lock_configmap("leading", "a-live-jobmanager", 2),
            lock_configmap("recent", "", 600),
        ],
    )
    .await?;
    Api::<Deployment>::namespaced(env.client.clone(), &env.namespace)
        .create(&PostParams::default(), &jobmanager_deployment("deployed"))
        .await?;
    create_flinkdeployment(&env, "operated").await?;
    let lookalikes: Vec<ConfigMap> = ["flink-config-real-flink", "real-flink-notes"]
        .iter()
        .map(|name| {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": name, "labels": { "app": "real-flink", "type": "flink-native-kubernetes" } },
                "data": { "config.yaml": "kubernetes.cluster-id: real-flink\n" },
            }))
            .expect("a ConfigMap")
        })
        .collect();
    create_all(&env, lookalikes).await?;

    let storage = format!("file://{}/ha", root.display());
    let names = |api: Api<ConfigMap>| async move {
        let mut names: Vec<String> = api
            .list(&Default::default())
            .await
            .expect("list")
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        names.sort();
        names
    };
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let before = names(api.clone()).await;

    // Dry run: says what and why, changes nothing.
    let out = flink_ha(
        &["gc", "-n", &env.namespace, "--storage", &storage],
        Some(&env.kubeconfig),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for expected in [
        "cluster real-flink (namespace ".to_owned(),
        format!("would delete configmap {}/real-flink-cluster-config-map", env.namespace),
        format!("would delete configmap {}/real-flink-{JOB}-config-map", env.namespace),
        "keep payloads: gc read one namespace, and a cluster in another may name the same files; run with -A to delete them".to_owned(),
        format!(
            "cluster deployed (namespace {}): refused: Deployment/deployed exists",
            env.namespace
        ),
        format!(
            "cluster leading (namespace {}): refused: its lease is live (held by a-live-jobmanager",
            env.namespace
        ),
        format!("cluster recent (namespace {}): refused: idle for", env.namespace),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
    assert!(
        !text.contains("completedCheckpoint0123456789ab"),
        "another cluster's file:\n{text}"
    );
    assert_eq!(names(api.clone()).await, before, "a dry run deletes nothing");
    assert!(root.join("ha/default").join(CHECKPOINT).exists());

    // --yes: exactly the gone cluster's state.
    let out = flink_ha(
        &[
            "gc",
            "-n",
            &env.namespace,
            "--storage",
            &storage,
            "--yes",
            "--backup-dir",
            root.join("gc-backup").to_str().ok_or("utf-8")?,
        ],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let after = names(api.clone()).await;
    let expected: Vec<String> = before
        .iter()
        .filter(|n| !n.starts_with("real-flink-cluster") && !n.starts_with(&format!("real-flink-{JOB}")))
        .cloned()
        .collect();
    assert_eq!(after, expected, "{}", describe(&out));
    assert!(after.contains(&"flink-config-real-flink".to_owned()) && after.contains(&"real-flink-notes".to_owned()));
    // Without -A no payload goes: a cluster in a namespace gc did not read may name it.
    for kept in [
        format!("ha/default/{CHECKPOINT}"),
        format!("ha/default/{PLAN}"),
        format!("ha/default/blob/job_{JOB}/{BLOB}"),
        format!("ha/job-result-store/default/{JOB}_DIRTY.json"),
        "ha/default/completedCheckpoint0123456789ab".to_owned(),
    ] {
        assert!(root.join(&kept).exists(), "{kept} went:\n{}", describe(&out));
    }

    // A cluster whose payload folder is named after it: its other files go only when gc
    // sees every namespace (another namespace may run a cluster with the same id).
    let own = root.join("ha/own");
    std::fs::create_dir_all(&own)?;
    let referenced = format!("completedCheckpoint{}", "1".repeat(24));
    std::fs::write(own.join(&referenced), b"checkpoint")?;
    std::fs::write(own.join(format!("submittedExecutionPlan{}", "2".repeat(24))), b"plan")?;
    let pointer = flink_ha_runtime::payloads::Pointer {
        path: format!("file://{}/{referenced}", own.display()),
        marked_for_deletion: false,
    };
    create_all(
        &env,
        vec![
            lock_configmap("own", "", 7200),
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": format!("own-{JOB}-config-map"), "labels": { "app": "own", "type": "flink-native-kubernetes" } },
                "data": { flink_ha_runtime::checkpoint_store::checkpoint_key(3): pointer.to_json() },
            }))?,
        ],
    )
    .await?;
    let out = flink_ha(
        &[
            "gc",
            "own",
            "-n",
            &env.namespace,
            "--storage",
            &storage,
            "--older-than",
            "1 h",
        ],
        Some(&env.kubeconfig),
    );
    let text = stdout(&out);
    assert!(
        !text.contains(&format!("would delete file://{}", own.display())),
        "{text}"
    );
    assert!(text.contains("run with -A to delete them"), "{text}");

    // With -A (a dry run: other tests' namespaces are in scope too): the referenced file
    // goes, the young one in its own folder stays, and a folder no HA ConfigMap refers to
    // is only reported (here one of a cluster whose ConfigMaps were deleted by label, as
    // Flink's docs do it): without the runtime's owner marker nothing proves whose it is.
    std::fs::create_dir_all(root.join("ha/stale-cluster/blob"))?;
    std::fs::write(root.join("ha/stale-cluster/completedCheckpointaaaaaaaaaaaa"), b"old")?;
    std::fs::create_dir_all(root.join("ha/job-result-store/stale-cluster"))?;
    std::fs::write(
        root.join(format!("ha/job-result-store/stale-cluster/{JOB}.json")),
        b"{}",
    )?;
    let out = flink_ha(
        &[
            "gc",
            "-A",
            "--storage",
            &storage,
            "--older-than",
            "1 h",
            "--format",
            "json",
        ],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["dry_run"], true);
    let plan_of = |id: &str| {
        json["plans"]
            .as_array()
            .and_then(|plans| {
                plans
                    .iter()
                    .find(|p| p["cluster_id"] == id && (id == "(storage)" || p["namespace"] == env.namespace.as_str()))
            })
            .cloned()
    };
    let own_plan = plan_of("own").ok_or_else(|| describe(&out))?;
    let deleted: Vec<(String, String)> = own_plan["deletions"]
        .as_array()
        .ok_or("deletions")?
        .iter()
        .filter_map(|d| Some((d["uri"].as_str()?.to_owned(), d["why"].as_str()?.to_owned())))
        .collect();
    assert_eq!(
        deleted,
        vec![(
            format!("file://{}/{referenced}", own.display()),
            "named by a pointer of this cluster".to_owned()
        )],
        "{}",
        describe(&out)
    );
    let kept = own_plan["kept"].to_string();
    assert!(
        kept.contains("submittedExecutionPlan2222") && kept.contains("written"),
        "{kept}"
    );
    let storage_plan = plan_of("(storage)").ok_or_else(|| describe(&out))?;
    assert_eq!(storage_plan["deletions"], serde_json::json!([]), "{}", describe(&out));
    assert!(
        storage_plan["kept"]
            .to_string()
            .contains("stale-cluster/ (1 file(s), 3 bytes): no HA ConfigMap gc can see refers to it"),
        "{}",
        describe(&out)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_apply_of_a_reviewed_plan_deletes_nothing_a_writer_changed_since() -> TestResult {
    let (env, folder) = gone_real_flink_cluster("gc-apply").await?;
    let root = folder.path();
    let storage = format!("file://{}/ha", root.display());
    let out = flink_ha(
        &["gc", "-n", &env.namespace, "--storage", &storage, "--format", "json"],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let plan_path = root.join("plan.json");
    std::fs::write(&plan_path, &out.stdout)?;

    // An edited plan is refused before anything is deleted: here one that adds a file.
    let mut edited: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    edited["plans"][0]["deletions"]
        .as_array_mut()
        .ok_or("deletions")?
        .push(serde_json::json!({
            "kind": "object", "uri": format!("{storage}/default/completedCheckpoint0123456789ab"),
            "size": 17, "last_modified": null, "why": "added by hand"
        }));
    let edited_path = root.join("edited.json");
    std::fs::write(&edited_path, serde_json::to_vec(&edited)?)?;
    let out = flink_ha(
        &[
            "gc",
            "--apply",
            edited_path.to_str().ok_or("utf-8")?,
            "--storage",
            &storage,
        ],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("digest"),
        "{}",
        describe(&out)
    );
    assert!(root.join("ha/default/completedCheckpoint0123456789ab").exists());

    // A JobManager comes back and writes to the job ConfigMap after the review.
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let job_cm = format!("real-flink-{JOB}-config-map");
    api.patch(
        &job_cm,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "data": { "counter": "68" } })),
    )
    .await?;

    let out = flink_ha(
        &[
            "gc",
            "--apply",
            plan_path.to_str().ok_or("utf-8")?,
            "--storage",
            &storage,
            "--backup-dir",
            root.join("gc-backup").to_str().ok_or("utf-8")?,
        ],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!(
            "NOT deleted: configmap {}/{job_cm} changed since gc looked",
            env.namespace
        )),
        "{}",
        describe(&out)
    );
    assert!(api.get_opt(&job_cm).await?.is_some());
    assert!(
        api.get_opt("real-flink-cluster-config-map").await?.is_some(),
        "the lock goes last, after every job ConfigMap"
    );
    assert!(
        root.join("ha/default").join(CHECKPOINT).exists(),
        "payloads stay while ConfigMaps do"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_finds_an_owned_ha_configmap_and_a_broken_flink_config_in_a_live_cluster() -> TestResult {
    let env = TestEnv::new("audit").await?;
    let mut configmaps = capture_configmaps(&env.namespace, None);
    // The job ConfigMap given an owner: the garbage collector would delete it with the
    // Deployment (HA201). Created before any webhook, so admission never saw it.
    configmaps[0].metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "real-flink".into(),
        uid: "6c7f5a8e-0000-4000-8000-000000000001".into(),
        ..OwnerReference::default()
    }]);
    configmaps.push(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "flink-config-real-flink" },
            "data": { "config.yaml": "high-availability.type: kubernets\nkubernetes.cluster-id: real-flink\n" },
        }))
        .expect("a ConfigMap"),
    );
    create_all(&env, configmaps).await?;
    let out = flink_ha(&["audit", "-n", &env.namespace], Some(&env.kubeconfig));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let ns = &env.namespace;
    for expected in [
        format!("{ns}/ConfigMap/real-flink-{JOB}-config-map: error[HA201]"),
        format!("{ns}/ConfigMap/flink-config-real-flink: error[HA109]"),
        format!("{ns}/ConfigMap/real-flink-cluster-config-map: warning[HA212]"),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }

    // JSON and SARIF carry the same findings.
    let out = flink_ha(&["audit", "-n", ns, "--format", "json"], Some(&env.kubeconfig));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(json["summary"]["errors"].as_u64() >= Some(2), "{}", describe(&out));
    let out = flink_ha(&["audit", "-n", ns, "--format", "sarif"], Some(&env.kubeconfig));
    assert!(stdout(&out).contains("\"ruleId\": \"HA201\""), "{}", describe(&out));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_brings_back_deleted_ha_configmaps_only_while_their_payloads_exist() -> TestResult {
    let (env, folder) = gone_real_flink_cluster("backup").await?;
    let root = folder.path();
    let storage = format!("file://{}/ha", root.display());
    let backup = root.join("backup.json");
    let backup_arg = backup.to_str().ok_or("utf-8")?;
    let out = flink_ha(
        &["backup", "-n", &env.namespace, "--storage", &storage, "-o", backup_arg],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&backup)?)?;
    assert_eq!(saved["configmaps"].as_array().map(Vec::len), Some(2), "{saved}");
    assert!(
        saved["payloads"]
            .as_array()
            .ok_or("payloads")?
            .iter()
            .all(|p| p["state"] == "found" && p["sha256"].as_str().is_some_and(|s| s.len() == 64)),
        "{saved}"
    );
    // A backup is never written over another.
    let out = flink_ha(
        &["backup", "-n", &env.namespace, "-o", backup_arg],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    // The HA ConfigMaps are deleted by mistake.
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let before: Vec<ConfigMap> = api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|c| c.metadata.name.as_deref().is_some_and(|n| n.starts_with("real-flink-")))
        .collect();
    assert_eq!(before.len(), 2);
    for cm in &before {
        api.delete(cm.metadata.name.as_deref().ok_or("name")?, &Default::default())
            .await?;
    }
    // `inspect --from` reads the backup as a dump.
    let out = flink_ha(&["inspect", "--from", backup_arg], None);
    assert!(
        stdout(&out).contains("recovers from checkpoint 66"),
        "{}",
        describe(&out)
    );

    // A payload they name is gone: restore refuses, naming it, and creates nothing.
    let checkpoint = root.join("ha/default").join(CHECKPOINT);
    let aside = root.join("aside");
    std::fs::rename(&checkpoint, &aside)?;
    let out = flink_ha(
        &["backup", "--restore", backup_arg, "--storage", &storage, "--yes"],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(CHECKPOINT),
        "{}",
        describe(&out)
    );
    assert!(api.get_opt("real-flink-cluster-config-map").await?.is_none());

    // With it back: a dry run creates nothing, --yes creates both with their data.
    std::fs::rename(&aside, &checkpoint)?;
    let out = flink_ha(
        &["backup", "--restore", backup_arg, "--storage", &storage],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(api.get_opt("real-flink-cluster-config-map").await?.is_none());
    let out = flink_ha(
        &["backup", "--restore", backup_arg, "--storage", &storage, "--yes"],
        Some(&env.kubeconfig),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for cm in &before {
        let name = cm.metadata.name.as_deref().ok_or("name")?;
        let now = api.get(name).await?;
        assert_eq!(now.data, cm.data, "{name}");
        assert_eq!(now.metadata.labels, cm.metadata.labels, "{name}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_tells_whether_the_latest_checkpoint_is_whole() -> TestResult {
    let (env, folder) = gone_real_flink_cluster("inspect-whole").await?;
    let root = folder.path();
    let root_text = root.to_str().ok_or("utf-8")?;
    // The payload names its checkpoint directory under the capture's install folder: point
    // it into this test's folder (same length, so the Java stream stays valid).
    let payload = root.join("ha/default").join(CHECKPOINT);
    let mut bytes = std::fs::read(&payload)?;
    replace_all(&mut bytes, b"/var/flink-data", root_text.as_bytes());
    std::fs::write(&payload, bytes)?;
    let chk = root.join(format!("ckpt/{JOB}/chk-66"));
    std::fs::create_dir_all(&chk)?;
    std::fs::copy(capture("_metadata-chk-66"), chk.join("_metadata"))?;
    let storage = format!("file://{root_text}/ha");
    let inspect = || {
        flink_ha(
            &["inspect", "real-flink", "-n", &env.namespace, "--storage", &storage],
            Some(&env.kubeconfig),
        )
    };
    // Its state is inline (a small hashmap backend): the _metadata alone makes it whole.
    let out = inspect();
    assert!(
        stdout(&out).contains("whole:       yes: its _metadata and 0 state file(s), 0 bytes, exist as recorded"),
        "{}",
        describe(&out)
    );
    std::fs::remove_file(chk.join("_metadata"))?;
    let out = inspect();
    assert!(
        stdout(&out).contains("NOT whole:") && stdout(&out).contains("_metadata: missing"),
        "{}",
        describe(&out)
    );
    Ok(())
}
