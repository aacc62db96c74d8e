//! The harness against the real API server: the behaviour the webhook and the HA runtime
//! rely on is the real thing's — CRUD, watches, label selectors, optimistic concurrency,
//! RBAC, and owner-reference garbage collection (the source document's promise: HA
//! ConfigMaps carry no owner references, so deleting the Deployment keeps them).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::core::Resource;
use serde_json::json;

use flink_ha_testenv::{Assets, ControlPlane, Error, PROVISION_COMMAND, TestEnv, pki};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..ObjectMeta::default()
        },
        data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..ConfigMap::default()
    }
}

fn api_status(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[tokio::test]
async fn config_maps_create_get_list_by_label_and_watch() -> TestResult {
    let env = TestEnv::new("crud-watch").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);

    // Watch from the (empty) list's resourceVersion, as the runtime's retrieval will.
    let start = api.list(&ListParams::default()).await?;
    assert!(start.items.is_empty());
    let version = start.metadata.resource_version.unwrap_or_default();
    let mut events = api.watch(&WatchParams::default(), &version).await?.boxed();

    let ha = [("app", "orders"), ("type", "flink-native-kubernetes")];
    api.create(
        &PostParams::default(),
        &config_map("orders-cluster-config-map", &ha, &[("counter", "1")]),
    )
    .await?;
    api.create(
        &PostParams::default(),
        &config_map("unrelated", &[("app", "other")], &[]),
    )
    .await?;

    let got = api.get("orders-cluster-config-map").await?;
    assert_eq!(
        got.data.unwrap_or_default().get("counter").map(String::as_str),
        Some("1")
    );

    // Equality- and set-based selectors, as Flink's cleanup and watches use them.
    let selected = api
        .list(&ListParams::default().labels("app=orders,type=flink-native-kubernetes"))
        .await?;
    let names: Vec<_> = selected.items.iter().filter_map(|c| c.metadata.name.clone()).collect();
    assert_eq!(names, ["orders-cluster-config-map"]);
    let selected = api
        .list(&ListParams::default().labels("app in (other, nothing)"))
        .await?;
    assert_eq!(selected.items.len(), 1);

    let mut changed = got_with("counter", "2", api.get("orders-cluster-config-map").await?);
    changed = api
        .replace("orders-cluster-config-map", &PostParams::default(), &changed)
        .await?;
    assert_eq!(changed.data.unwrap_or_default()["counter"], "2");
    api.delete("orders-cluster-config-map", &DeleteParams::default())
        .await?;

    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.try_next())
            .await
            .map_err(|_| format!("no watch event after {seen:?}"))??
            .ok_or("the watch ended")?;
        let (kind, name) = match &event {
            WatchEvent::Added(c) => ("ADDED", c.metadata.name.clone()),
            WatchEvent::Modified(c) => ("MODIFIED", c.metadata.name.clone()),
            WatchEvent::Deleted(c) => ("DELETED", c.metadata.name.clone()),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => return Err(format!("watch error: {e:?}").into()),
        };
        seen.push(format!("{kind} {}", name.unwrap_or_default()));
    }
    assert_eq!(
        seen,
        [
            "ADDED orders-cluster-config-map",
            "ADDED unrelated",
            "MODIFIED orders-cluster-config-map",
            "DELETED orders-cluster-config-map",
        ]
    );
    Ok(())
}

fn got_with(key: &str, value: &str, mut config_map: ConfigMap) -> ConfigMap {
    config_map
        .data
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value.to_string());
    config_map
}

#[tokio::test]
async fn a_write_with_a_stale_resource_version_is_a_conflict() -> TestResult {
    let env = TestEnv::new("stale-write").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let created = api
        .create(&PostParams::default(), &config_map("lease", &[], &[("counter", "1")]))
        .await?;

    // Two writers read the same version; the second write must lose.
    let first = api
        .replace(
            "lease",
            &PostParams::default(),
            &got_with("counter", "2", created.clone()),
        )
        .await?;
    let stale = api
        .replace(
            "lease",
            &PostParams::default(),
            &got_with("counter", "3", created.clone()),
        )
        .await
        .expect_err("a write with a stale resourceVersion must fail");
    assert_eq!(api_status(&stale), Some(409), "{stale}");

    let now = api.get("lease").await?;
    assert_eq!(now.data.unwrap_or_default()["counter"], "2");
    assert_eq!(now.metadata.resource_version, first.metadata.resource_version);
    Ok(())
}

#[tokio::test]
async fn rbac_denies_a_token_without_rights() -> TestResult {
    let env = TestEnv::new("rbac").await?;
    let nobody = env.client_with_token("nobody", pki::NOBODY_TOKEN).await?;
    let api: Api<ConfigMap> = Api::namespaced(nobody, &env.namespace);
    let denied = api.list(&ListParams::default()).await.expect_err("nobody may not list");
    assert_eq!(api_status(&denied), Some(403), "{denied}");
    let denied = api
        .create(&PostParams::default(), &config_map("x", &[], &[]))
        .await
        .expect_err("nobody may not create");
    assert_eq!(api_status(&denied), Some(403), "{denied}");

    // An unknown token is not a user at all.
    let stranger = env.client_with_token("stranger", "no-such-token").await?;
    let api: Api<ConfigMap> = Api::namespaced(stranger, &env.namespace);
    let denied = api.list(&ListParams::default()).await.expect_err("unknown token");
    assert_eq!(api_status(&denied), Some(401), "{denied}");
    Ok(())
}

#[tokio::test]
async fn kubectl_works_with_the_kubeconfig() -> TestResult {
    let env = TestEnv::new("kubectl").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    api.create(&PostParams::default(), &config_map("from-kube-rs", &[], &[("k", "v1")]))
        .await?;
    let output = tokio::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", env.kubeconfig.display()))
        .args([
            "-n",
            &env.namespace,
            "get",
            "configmap",
            "from-kube-rs",
            "-o",
            "jsonpath={.data.k}",
        ])
        .output()
        .await
        .map_err(|e| format!("run kubectl: {e}"))?;
    assert!(
        output.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "v1");
    Ok(())
}

/// The promise of Flink's HA design, observed: the garbage collector deletes what the
/// Deployment owns, and the HA ConfigMap without owner references survives.
#[tokio::test]
async fn deleting_a_deployment_collects_what_it_owns_and_keeps_unowned_config_maps() -> TestResult {
    let env = TestEnv::with_controller_manager("garbage-collection").await?;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), &env.namespace);

    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "orders-jobmanager"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "orders", "component": "jobmanager"}},
            "template": {
                "metadata": {"labels": {"app": "orders", "component": "jobmanager"}},
                "spec": {"containers": [{"name": "jobmanager", "image": "flink:2.1"}]}
            }
        }
    }))?;
    let deployment = deployments.create(&PostParams::default(), &deployment).await?;
    let owner = OwnerReference {
        api_version: Deployment::api_version(&()).into_owned(),
        kind: Deployment::kind(&()).into_owned(),
        name: "orders-jobmanager".into(),
        uid: deployment.metadata.uid.clone().ok_or("the deployment has no uid")?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut owned = config_map("flink-config-orders", &[("app", "orders")], &[("config.yaml", "a: b")]);
    owned.metadata.owner_references = Some(vec![owner]);
    config_maps.create(&PostParams::default(), &owned).await?;
    let ha = config_map(
        "orders-cluster-config-map",
        &[("app", "orders"), ("type", "flink-native-kubernetes")],
        &[("counter", "7")],
    );
    config_maps.create(&PostParams::default(), &ha).await?;

    // The Deployment controller runs: it makes the ReplicaSet.
    wait_for("a ReplicaSet for the Deployment", || async {
        Ok(!replica_sets
            .list(&ListParams::default().labels("app=orders"))
            .await?
            .items
            .is_empty())
    })
    .await?;

    deployments
        .delete("orders-jobmanager", &DeleteParams::background())
        .await?;
    wait_for("the owned ConfigMap to be garbage-collected", || async {
        Ok(config_maps.get_opt("flink-config-orders").await?.is_none())
    })
    .await?;
    wait_for("the ReplicaSet to be garbage-collected", || async {
        Ok(replica_sets
            .list(&ListParams::default().labels("app=orders"))
            .await?
            .items
            .is_empty())
    })
    .await?;

    let kept = config_maps.get("orders-cluster-config-map").await?;
    assert_eq!(kept.data.unwrap_or_default()["counter"], "7");
    Ok(())
}

async fn wait_for<F, Fut>(what: &str, mut done: F) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await? {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("gave up waiting for {what} after 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[test]
fn missing_assets_name_the_provisioning_command() {
    let empty = tempfile::tempdir().expect("temp dir");
    let error = Assets::find_among([empty.path().to_path_buf()]).expect_err("an empty folder has no assets");
    let message = error.to_string();
    assert!(matches!(error, Error::AssetsMissing { .. }));
    assert!(message.contains(PROVISION_COMMAND), "{message}");
    assert!(message.contains(&empty.path().display().to_string()), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
}

/// A process that dies during startup is reported with the end of its log. (A stand-in
/// etcd: the real one cannot be made to fail on cue.)
#[test]
fn a_process_that_dies_at_startup_is_reported_with_its_log() {
    use std::os::unix::fs::PermissionsExt;
    let assets = tempfile::tempdir().expect("temp dir");
    for (name, script) in [
        (
            "etcd",
            "#!/bin/sh\necho 'etcdmain: listen tcp: disk on fire' >&2\nexit 3\n",
        ),
        ("kube-apiserver", "#!/bin/sh\nexit 1\n"),
    ] {
        let path = assets.path().join(name);
        std::fs::write(&path, script).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let started = ControlPlane::start_with(Assets {
        dir: assets.path().to_path_buf(),
    });
    let error = started.err().expect("a dying etcd cannot start");
    let message = error.to_string();
    assert!(matches!(error, Error::ProcessDied { name: "etcd", .. }), "{message}");
    assert!(message.contains("disk on fire"), "{message}");
    assert!(message.contains("exit status: 3"), "{message}");
}
