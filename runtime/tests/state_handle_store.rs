//! The pointer-store protocol itself against the real API server: the scenarios of
//! Flink's `KubernetesStateHandleStoreTest` that the checkpoint and cleanup tests do not
//! reach — an add over another entry, writes by a process that does not hold the lock,
//! an add to a missing ConfigMap, and a removal whose payload delete fails.

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use flink_ha_runtime::cleanup::{ExecutionPlanStore, execution_plan_key};
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::payloads::{PayloadStore, Pointer};
use flink_ha_runtime::state_handle_store::{Guard, StateHandleStore};
use flink_ha_runtime::{Error, LeaderElection, names};
use flink_ha_testenv::TestEnv;

mod common;
use common::{cas, fast};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB: &str = "00112233445566778899aabbccddeeff";

/// The payload files of cluster `cluster` under `storage`.
fn payload_files(storage: &tempfile::TempDir, cluster: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(storage.path().join(cluster))
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn payloads(storage: &tempfile::TempDir, cluster: &str) -> Result<PayloadStore, Error> {
    PayloadStore::open(&format!("file://{}", storage.path().display()), cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_over_another_entry_is_refused_and_leaves_the_first_alone() -> TestResult {
    let env = TestEnv::new("handles-already-exists").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let election = LeaderElection::start(api.clone(), fast("plans"));
    election.wait_for_leadership().await;
    let plans = ExecutionPlanStore::new(cas(&api), "plans", payloads(&storage, "plans")?, election.identity());

    plans.put(JOB, Bytes::from_static(b"plan v1")).await?;
    match plans.put(JOB, Bytes::from_static(b"plan v2")).await {
        Err(Error::AlreadyExists { key, .. }) => assert_eq!(key, execution_plan_key(JOB)),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // The first plan stands, and the refused add took its payload back with it.
    assert_eq!(plans.get(JOB).await?, Some(Bytes::from_static(b"plan v1")));
    assert_eq!(payload_files(&storage, "plans").len(), 1);
    election.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_without_the_lock_can_neither_put_nor_remove_a_plan() -> TestResult {
    let env = TestEnv::new("handles-not-leader").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let election = LeaderElection::start(api.clone(), fast("plans"));
    election.wait_for_leadership().await;
    let leader = ExecutionPlanStore::new(cas(&api), "plans", payloads(&storage, "plans")?, election.identity());
    leader.put(JOB, Bytes::from_static(b"the leader's plan")).await?;
    let before = api
        .get(&names::cluster_config_map("plans"))
        .await?
        .data
        .unwrap_or_default();

    // Same ConfigMap, same storage, an identity the lock does not name.
    let outsider = ExecutionPlanStore::new(cas(&api), "plans", payloads(&storage, "plans")?, "not-the-leader");
    let other_job = "ffeeddccbbaa99887766554433221100";
    match outsider.put(other_job, Bytes::from_static(b"an outsider's plan")).await {
        Err(Error::NotLeader { .. }) => {}
        other => panic!("expected NotLeader for the put, got {other:?}"),
    }
    match outsider.remove(JOB).await {
        Err(Error::NotLeader { .. }) => {}
        other => panic!("expected NotLeader for the remove, got {other:?}"),
    }

    // The plan entries are as the leader left them (the lock annotation and the leader
    // entries move with renewals; the plans do not), and no payload was left behind.
    let after = api
        .get(&names::cluster_config_map("plans"))
        .await?
        .data
        .unwrap_or_default();
    let plans_of = |data: &std::collections::BTreeMap<String, String>| {
        data.iter()
            .filter(|(k, _)| k.starts_with(flink_ha_runtime::cleanup::EXECUTION_PLAN_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(plans_of(&after), plans_of(&before));
    assert_eq!(leader.get(JOB).await?, Some(Bytes::from_static(b"the leader's plan")));
    assert_eq!(payload_files(&storage, "plans").len(), 1);
    election.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_to_a_missing_config_map_is_missing_and_leaves_no_payload() -> TestResult {
    let env = TestEnv::new("handles-missing").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    // A job ConfigMap nobody claimed: the store does not create it.
    let store = StateHandleStore::new(
        cas(&api),
        names::job_config_map("orders", JOB),
        payloads(&storage, "orders")?,
        Guard::Fence(Fence::new(0, "jm-1")),
    );
    match store
        .add(
            "checkpointID-0000000000000000001",
            "completedCheckpoint",
            Bytes::from_static(b"one"),
        )
        .await
    {
        Err(Error::Missing { name }) => assert_eq!(name, names::job_config_map("orders", JOB)),
        other => panic!("expected Missing, got {other:?}"),
    }
    assert_eq!(payload_files(&storage, "orders"), Vec::<std::path::PathBuf>::new());
    assert!(api.get_opt(&names::job_config_map("orders", JOB)).await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_payload_delete_leaves_the_entry_marked_and_hidden_and_a_retry_finishes_it() -> TestResult {
    let env = TestEnv::new("handles-failed-delete").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let fence = Fence::new(0, "jm-1");
    fence.claim_job(&cas(&api), "orders", JOB).await?;
    let store = StateHandleStore::new(
        cas(&api),
        names::job_config_map("orders", JOB),
        payloads(&storage, "orders")?,
        Guard::Fence(fence),
    );
    let key = "checkpointID-0000000000000000007";
    store
        .add(key, "completedCheckpoint", Bytes::from_static(b"seven"))
        .await?;
    let [payload] = payload_files(&storage, "orders")
        .try_into()
        .map_err(|f| format!("one payload expected: {f:?}"))?;

    // The payload cannot be deleted: a non-empty directory stands where the file was.
    std::fs::remove_file(&payload)?;
    std::fs::create_dir(&payload)?;
    std::fs::write(payload.join("in-the-way"), "x")?;
    match store.remove(key).await {
        Err(error @ Error::StorageIo { .. }) => assert!(error.to_string().contains("delete a payload"), "{error}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    // Phase 1 happened: the entry is marked, so readers no longer see it; phase 3 did not.
    let cm = api.get(&names::job_config_map("orders", JOB)).await?;
    let value = cm
        .data
        .unwrap_or_default()
        .remove(key)
        .ok_or("the key must stay until its payload is gone")?;
    assert!(Pointer::parse(&value)?.marked_for_deletion, "{value}");
    assert_eq!(store.get(key).await?, None);
    assert!(store.list("checkpointID-").await?.is_empty());

    // Once the payload can go, removing again finishes the job.
    std::fs::remove_dir_all(&payload)?;
    store.remove(key).await?;
    let cm = api.get(&names::job_config_map("orders", JOB)).await?;
    assert!(!cm.data.unwrap_or_default().contains_key(key));
    Ok(())
}
