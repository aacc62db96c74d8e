//! The HA stores with their payloads on S3: a real S3-compatible server on loopback
//! (flink_ha_testenv::S3Server) and the real API server, configured the way Flink is
//! configured for S3 (`s3.endpoint`, `s3.path.style.access`, `s3.access-key`, …).

use bytes::Bytes;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use object_store::path::Path;
use object_store::{PutMode, PutOptions, PutPayload};

use flink_ha_runtime::checkpoint_store::{CompletedCheckpointStore, checkpoint_key};
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::payloads::PayloadStore;
use flink_ha_runtime::{Error, HaSettings, names};
use flink_ha_testenv::{S3Server, TestEnv};

mod common;
use common::cas;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB: &str = "fedcba9876543210fedcba9876543210";

/// A Flink `config.yaml` for cluster `orders` with its storageDir on the test server.
fn flink_config(s3: &S3Server, storage_dir: &str) -> String {
    format!(
        "high-availability.type: kubernetes
high-availability.storageDir: {storage_dir}
kubernetes.cluster-id: orders
high-availability.cluster-id: orders
execution.checkpointing.interval: 10 s
execution.checkpointing.num-retained: 2
s3.endpoint: {}
s3.path.style.access: true
s3.access-key: flink-ha-test
s3.secret-key: flink-ha-test-secret
",
        s3.endpoint()
    )
}

/// The object names under `orders/` in the bucket, read from the server.
async fn objects(payloads: &PayloadStore) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let (store, root) = payloads.object_store();
    let mut names: Vec<String> = store
        .list(Some(root))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await?;
    names.sort();
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_on_s3_keep_num_retained_recover_the_highest_and_clean_up() -> TestResult {
    let s3 = S3Server::shared()?;
    s3.create_bucket("ha-retention")?;
    let settings = HaSettings::from_flink_config("config.yaml", &flink_config(s3, "s3://ha-retention/flink/recovery"))?;
    let payloads = PayloadStore::for_settings(&settings)?;
    assert_eq!(payloads.description(), "s3://ha-retention/flink/recovery/orders");

    let env = TestEnv::new("s3-retention").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let fence = Fence::new(0, "jm-1");
    fence.claim_job(&cas(&api), "orders", JOB).await?;
    let store = |fence: &Fence| {
        CompletedCheckpointStore::new(
            cas(&api),
            "orders",
            JOB,
            payloads.clone(),
            fence.clone(),
            settings.num_retained,
        )
    };
    let writer = store(&fence);
    assert_eq!(writer.recover().await?, None);
    for id in 1..=4 {
        writer.add(id, Bytes::from(format!("state of checkpoint {id}"))).await?;
    }

    // Two checkpoints retained: two pointers, two objects, all under the cluster's folder.
    let cm = api.get(&names::job_config_map("orders", JOB)).await?;
    let keys: Vec<String> = cm
        .data
        .unwrap_or_default()
        .into_keys()
        .filter(|k| k.starts_with(flink_ha_runtime::checkpoint_store::CHECKPOINT_PREFIX))
        .collect();
    assert_eq!(keys, [checkpoint_key(3), checkpoint_key(4)]);
    let stored = objects(&payloads).await?;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        stored.iter().all(|name| name.starts_with("flink/recovery/orders/")),
        "{stored:?}"
    );

    // A new leader recovers the highest checkpoint, its payload read back from S3.
    let successor = Fence::new(1, "jm-2");
    successor.claim_job(&cas(&api), "orders", JOB).await?;
    assert_eq!(
        store(&successor).recover().await?,
        Some((4, Bytes::from("state of checkpoint 4")))
    );

    // The job ends for good: its checkpoints go, pointers and payloads, and nothing of
    // it is left in the bucket.
    store(&successor).shutdown(true).await?;
    assert_eq!(objects(&payloads).await?, Vec::<String>::new());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_on_s3_are_written_create_only() -> TestResult {
    let s3 = S3Server::shared()?;
    s3.create_bucket("ha-create-only")?;
    let settings = HaSettings::from_flink_config("config.yaml", &flink_config(s3, "s3://ha-create-only/recovery"))?;
    let payloads = PayloadStore::for_settings(&settings)?;
    let uri = payloads.put_new("checkpoint", Bytes::from_static(b"first")).await?;
    // Pointers carry the payload's full URI, bucket included.
    let path = Path::from(
        uri.strip_prefix("s3://ha-create-only/")
            .ok_or_else(|| format!("{uri} is not in the bucket"))?,
    );

    // What put_new relies on: the server refuses a second create of the same name.
    let (store, _) = payloads.object_store();
    let create = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match store.put_opts(&path, PutPayload::from_static(b"second"), create).await {
        Err(object_store::Error::AlreadyExists { .. }) => {}
        other => panic!("a second create of {path} must be refused, got {other:?}"),
    }
    assert_eq!(payloads.get(&uri).await?, Bytes::from_static(b"first"));
    // And a name put_new draws is fresh every time.
    let other = payloads.put_new("checkpoint", Bytes::from_static(b"first")).await?;
    assert_ne!(other, uri);
    assert_eq!(objects(&payloads).await?.len(), 2);
    payloads.delete(&other).await?;
    // The orphan sweep's probe finds the same, and leaves nothing behind.
    assert!(payloads.create_only_holds().await?);
    assert_eq!(objects(&payloads).await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_configured_with_another_bucket_is_refused_and_keeps_the_last_checkpoint() -> TestResult {
    let s3 = S3Server::shared()?;
    s3.create_bucket("ha-present")?;
    let good = HaSettings::from_flink_config("config.yaml", &flink_config(s3, "s3://ha-present/recovery"))?;
    let missing = HaSettings::from_flink_config("config.yaml", &flink_config(s3, "s3://ha-never-created/recovery"))?;

    let env = TestEnv::new("s3-missing-bucket").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let fence = Fence::new(0, "jm-1");
    fence.claim_job(&cas(&api), "orders", JOB).await?;
    let store = |settings: &HaSettings| -> Result<CompletedCheckpointStore, Error> {
        Ok(CompletedCheckpointStore::new(
            cas(&api),
            "orders",
            JOB,
            PayloadStore::for_settings(settings)?,
            fence.clone(),
            2,
        ))
    };
    let writer = store(&good)?;
    assert_eq!(writer.recover().await?, None);
    writer.add(1, Bytes::from_static(b"one")).await?;

    // A JobManager configured with a bucket that does not exist refuses to recover
    // (the pointer names another bucket), and cannot add either.
    let misconfigured = store(&missing)?;
    match misconfigured.recover().await {
        Err(error @ Error::Refused(_)) => assert!(error.to_string().contains("s3://ha-never-created"), "{error}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match misconfigured.add(2, Bytes::from_static(b"two")).await {
        Err(Error::Refused(_)) => {}
        other => panic!("expected a refusal (no recovery), got {other:?}"),
    }
    let cm = api.get(&names::job_config_map("orders", JOB)).await?;
    let keys: Vec<String> = cm
        .data
        .unwrap_or_default()
        .into_keys()
        .filter(|k| k.starts_with(flink_ha_runtime::checkpoint_store::CHECKPOINT_PREFIX))
        .collect();
    assert_eq!(keys, [checkpoint_key(1)]);
    assert_eq!(store(&good)?.recover().await?, Some((1, Bytes::from_static(b"one"))));
    Ok(())
}
