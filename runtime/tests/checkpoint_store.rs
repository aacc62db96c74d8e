//! The completed-checkpoint store against the real API server, payloads on file://
//! (the scenarios of Flink's `KubernetesStateHandleStoreTest` and completed-checkpoint
//! store tests, plus fencing and the write-count bar).

use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};

use flink_ha_runtime::checkpoint_store::{CompletedCheckpointStore, MissingCheckpoint, checkpoint_key};
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::payloads::{PayloadStore, Pointer};
use flink_ha_runtime::{Error, names};
use flink_ha_testenv::TestEnv;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB: &str = "0123456789abcdef0123456789abcdef";

struct Setup {
    _env: TestEnv,
    api: Api<ConfigMap>,
    storage: tempfile::TempDir,
    payloads: PayloadStore,
}

async fn setup(test: &str) -> Result<Setup, Box<dyn std::error::Error>> {
    let env = TestEnv::new(test).await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "orders")?;
    Ok(Setup {
        _env: env,
        api,
        storage,
        payloads,
    })
}

mod common;
use common::cas;

/// The job's store, recovered: adds are refused before a recovery.
async fn store(s: &Setup, fence: &Fence, retained: u32) -> Result<CompletedCheckpointStore, Error> {
    let store = CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, s.payloads.clone(), fence.clone(), retained);
    store.recover().await?;
    Ok(store)
}

/// The payload files under `<storageDir>/orders/`.
fn payload_files(s: &Setup) -> Vec<String> {
    common::file_names(&s.storage.path().join("orders"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_num_retained_recovers_the_highest_and_deletes_subsumed_payloads() -> TestResult {
    let s = setup("checkpoints-retention").await?;
    let fence = Fence::new(0, "jm-1");
    fence.claim_job(&cas(&s.api), "orders", JOB).await?;
    let checkpoints = store(&s, &fence, 2).await?;
    assert_eq!(checkpoints.recover().await?, None);
    for id in 1..=5u64 {
        let added = checkpoints
            .add(id, Bytes::from(format!("state of checkpoint {id}")))
            .await?;
        assert_eq!(added.subsumed, if id > 2 { vec![id - 2] } else { vec![] });
        assert!(
            added.path.starts_with("file://") && added.path.contains("completedCheckpoint"),
            "{}",
            added.path
        );
    }
    assert_eq!(checkpoints.checkpoint_ids().await?, [4, 5]);
    assert_eq!(
        checkpoints.recover().await?,
        Some((5, Bytes::from("state of checkpoint 5")))
    );
    let files = payload_files(&s);
    assert_eq!(files.len(), 2, "subsumed payloads are deleted: {files:?}");
    assert!(files.iter().all(|f| f.starts_with("completedCheckpoint")), "{files:?}");

    // The job ConfigMap holds exactly the retained pointers, in Flink's key format.
    let cm = s.api.get(&names::job_config_map("orders", JOB)).await?;
    let keys: Vec<String> = cm.data.unwrap_or_default().into_keys().collect();
    assert_eq!(keys, [checkpoint_key(4), checkpoint_key(5)]);

    // A new leader recovers the same checkpoint after claiming the job.
    let next = Fence::new(1, "jm-2");
    next.claim_job(&cas(&s.api), "orders", JOB).await?;
    assert_eq!(
        store(&s, &next, 2).await?.recover().await?,
        Some((5, Bytes::from("state of checkpoint 5")))
    );

    // Suspended: everything stays. Terminal: pointers and payloads go.
    store(&s, &next, 2).await?.shutdown(false).await?;
    assert_eq!(payload_files(&s).len(), 2);
    store(&s, &next, 2).await?.shutdown(true).await?;
    assert!(payload_files(&s).is_empty());
    assert_eq!(store(&s, &next, 2).await?.checkpoint_ids().await?, Vec::<u64>::new());
    Ok(())
}

/// The API-cost bar: at most two ConfigMap writes per completed checkpoint, retention
/// included — counted as MODIFIED events of a watch on the job ConfigMap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_costs_at_most_two_config_map_writes() -> TestResult {
    let s = setup("checkpoints-writes").await?;
    let fence = Fence::new(0, "jm-1");
    let claimed = fence.claim_job(&cas(&s.api), "orders", JOB).await?;
    let checkpoints = store(&s, &fence, 1).await?;
    let name = names::job_config_map("orders", JOB);
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let version = claimed.metadata.resource_version.unwrap_or_default();
    let mut events = s.api.watch(&params, &version).await?.boxed();

    checkpoints.add(1, Bytes::from_static(b"one")).await?; // nothing to subsume: 1 write
    checkpoints.add(2, Bytes::from_static(b"two")).await?; // subsumes 1: 2 writes
    checkpoints.add(3, Bytes::from_static(b"three")).await?; // subsumes 2: 2 writes
    let mut writes = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(2), events.try_next()).await {
            Ok(Ok(Some(WatchEvent::Modified(_)))) => writes += 1,
            Ok(Ok(Some(_))) => {}
            // The watch ended, or nothing more happened for 2 s.
            Ok(Ok(None)) | Err(_) => break,
            Ok(Err(error)) => return Err(error.into()),
        }
    }
    assert_eq!(writes, 5, "1 + 2 + 2 writes for three checkpoints with num-retained 1");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_out_add_writes_nothing_and_leaves_no_payload() -> TestResult {
    let s = setup("checkpoints-fenced").await?;
    let old = Fence::new(3, "jm-old");
    old.claim_job(&cas(&s.api), "orders", JOB).await?;
    store(&s, &old, 1).await?.add(7, Bytes::from_static(b"seven")).await?;
    Fence::new(4, "jm-new").claim_job(&cas(&s.api), "orders", JOB).await?;

    let refused = store(&s, &old, 1).await?.add(8, Bytes::from_static(b"eight")).await;
    assert!(matches!(refused, Err(Error::NotLeader { .. })), "{refused:?}");
    assert_eq!(payload_files(&s).len(), 1, "the refused add's payload is deleted");
    let refused = store(&s, &old, 1).await?.shutdown(true).await;
    assert!(matches!(refused, Err(Error::NotLeader { .. })), "{refused:?}");
    assert_eq!(
        store(&s, &Fence::new(4, "jm-new"), 1).await?.checkpoint_ids().await?,
        [7]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_dangling_pointers_are_skipped_in_recovery() -> TestResult {
    let s = setup("checkpoints-corrupt").await?;
    let fence = Fence::new(0, "jm-1");
    fence.claim_job(&cas(&s.api), "orders", JOB).await?;
    let checkpoints = store(&s, &fence, 5).await?;
    checkpoints.add(5, Bytes::from_static(b"five")).await?;

    let name = names::job_config_map("orders", JOB);
    let mut cm = s.api.get(&name).await?;
    let data = cm.data.get_or_insert_with(Default::default);
    data.insert(checkpoint_key(9), "rO0ABXNyAC5vcmcuYXBhY2hl".into()); // not our pointer
    let dangling = Pointer {
        path: "nowhere/completedCheckpoint000000000000".into(),
        marked_for_deletion: false,
    };
    data.insert(checkpoint_key(8), dangling.to_json());
    let marked = Pointer {
        path: "x".into(),
        marked_for_deletion: true,
    };
    data.insert(checkpoint_key(7), marked.to_json());
    s.api.replace(&name, &PostParams::default(), &cm).await?;

    // 9 is unreadable and 7 is being removed: 8 is the newest checkpoint, and its payload
    // is missing. That fails the recovery, naming it (as Flink's does) ...
    match checkpoints.recover().await {
        Err(Error::CheckpointPayloadMissing { key, uri, .. }) => {
            assert_eq!((key, uri), (checkpoint_key(8), dangling.path.clone()));
        }
        other => panic!("expected CheckpointPayloadMissing, got {other:?}"),
    }
    // ... unless the operator chose to fall back to an older one: then recovery takes 5.
    let checkpoints = checkpoints.with_missing_checkpoint(MissingCheckpoint::FallBackToOlder);
    assert_eq!(checkpoints.recover().await?, Some((5, Bytes::from_static(b"five"))));
    assert_eq!(checkpoints.checkpoint_ids().await?, [5, 8]);
    // An add over the marked entry finishes its removal and takes the key.
    checkpoints.add(7, Bytes::from_static(b"seven")).await?;
    assert_eq!(checkpoints.checkpoint_ids().await?, [5, 7, 8]);
    Ok(())
}

#[tokio::test]
async fn storage_dirs_this_build_cannot_reach_are_refused_clearly() {
    let refused = PayloadStore::open("hdfs://namenode/flink/ha", "orders")
        .err()
        .expect("no hdfs backend");
    assert!(refused.to_string().contains("hdfs://namenode/flink/ha"), "{refused}");
    let refused = PayloadStore::open("/no/scheme", "orders").err().expect("not a URI");
    assert!(refused.to_string().contains("not a URI"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_storage_dir_fails_the_add_and_keeps_the_acknowledged_checkpoint() -> TestResult {
    let s = setup("checkpoints-unwritable-storage").await?;
    let fence = Fence::new(0, "jm-1");
    fence.claim_job(&cas(&s.api), "orders", JOB).await?;
    store(&s, &fence, 2)
        .await?
        .add(1, Bytes::from("state of checkpoint 1"))
        .await?;

    // The same job, but its storageDir lies under a regular file: nothing can be
    // written there, whoever the process runs as (root included).
    let blocker = s.storage.path().join("not-a-directory");
    std::fs::write(&blocker, "a file")?;
    let broken = PayloadStore::open(&format!("file://{}/ha", blocker.display()), "orders")?;
    let failing = CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, broken, fence.clone(), 2);
    // The pointer carries its payload's full URI: this JobManager reads checkpoint 1
    // although its own storageDir is elsewhere.
    assert_eq!(
        failing.recover().await?,
        Some((1, Bytes::from("state of checkpoint 1")))
    );
    match failing.add(2, Bytes::from("state of checkpoint 2")).await {
        Err(error @ Error::StorageIo { .. }) => assert!(error.to_string().contains("not-a-directory"), "{error}"),
        other => panic!("expected a storage error, got {other:?}"),
    }

    // No pointer to a payload that does not exist, and checkpoint 1 is still the latest.
    let cm = s.api.get(&names::job_config_map("orders", JOB)).await?;
    let keys: Vec<String> = cm.data.unwrap_or_default().into_keys().collect();
    assert_eq!(keys, [checkpoint_key(1)]);
    assert_eq!(
        store(&s, &fence, 2).await?.recover().await?,
        Some((1, Bytes::from("state of checkpoint 1")))
    );
    Ok(())
}
