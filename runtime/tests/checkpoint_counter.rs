//! The checkpoint ID counter and the job-ConfigMap fence against the real API server
//! (the scenarios of Flink's `KubernetesCheckpointIDCounterTest`, plus fencing).

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

use flink_ha_runtime::checkpoint_counter::{COUNTER_KEY, CheckpointIdCounter};
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::{Error, LeaderElection, names};
use flink_ha_testenv::TestEnv;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

mod common;
use common::{cas_with_retries as cas, fast};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_at_one_counts_and_keeps_or_drops_its_key_on_shutdown() -> TestResult {
    let env = TestEnv::new("counter-basics").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let fence = Fence::new(0, "jm-1");
    let job_cm = fence.claim_job(&cas(&api, 15), "orders", JOB).await?;
    // A job ConfigMap is an HA ConfigMap: HA labels, never owner references.
    assert_eq!(
        job_cm.metadata.labels.clone().unwrap_or_default(),
        names::ha_labels("orders")
    );
    assert!(job_cm.metadata.owner_references.is_none());

    let counter = CheckpointIdCounter::new(cas(&api, 15), "orders", JOB, fence);
    counter.start().await?;
    assert_eq!(counter.get().await?, 1);
    assert_eq!(counter.get_and_increment().await?, 1);
    assert_eq!(counter.get_and_increment().await?, 2);
    assert_eq!(counter.get().await?, 3);
    // start() on a recovered job keeps the count.
    counter.start().await?;
    assert_eq!(counter.get().await?, 3);
    counter.set_count(42).await?;
    assert_eq!(counter.get_and_increment().await?, 42);

    counter.shutdown(false).await?;
    assert_eq!(counter.get().await?, 43, "a suspended job keeps its counter");
    counter.shutdown(true).await?;
    let cm = api.get(&names::job_config_map("orders", JOB)).await?;
    assert!(
        !cm.data.unwrap_or_default().contains_key(COUNTER_KEY),
        "a terminal job's counter is removed"
    );
    // A second shutdown (a retried cleanup) is fine.
    counter.shutdown(true).await?;

    // A job whose ConfigMap does not exist has no counter to read.
    let unclaimed = CheckpointIdCounter::new(
        cas(&api, 15),
        "orders",
        "ffffffffffffffffffffffffffffffff",
        Fence::new(0, "jm-1"),
    );
    match unclaimed.get().await {
        Err(Error::Missing { .. }) => {}
        other => panic!("expected Missing, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_reach_the_exact_total() -> TestResult {
    let env = TestEnv::new("counter-concurrent").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let fence = Fence::new(0, "jm-1");
    fence.claim_job(&cas(&api, 15), "orders", JOB).await?;
    CheckpointIdCounter::new(cas(&api, 15), "orders", JOB, fence.clone())
        .start()
        .await?;

    const TASKS: u64 = 8;
    const EACH: u64 = 25;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        // Plenty of retries: eight writers conflict on every round.
        let counter = CheckpointIdCounter::new(cas(&api, 1_000), "orders", JOB, fence.clone());
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..EACH {
                got.push(counter.get_and_increment().await?);
            }
            Ok::<_, Error>(got)
        }));
    }
    let mut ids = BTreeSet::new();
    for handle in handles {
        for id in handle.await?? {
            assert!(ids.insert(id), "checkpoint id {id} handed out twice");
        }
    }
    let expected: BTreeSet<u64> = (1..=TASKS * EACH).collect();
    assert_eq!(ids, expected);
    let counter = CheckpointIdCounter::new(cas(&api, 15), "orders", JOB, fence);
    assert_eq!(counter.get().await?, TASKS * EACH + 1);
    Ok(())
}

/// A leader deposed by a later grant can neither bump the counter nor claim the job
/// back — Flink 1.15+ would let both through on a job ConfigMap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_move_the_counter() -> TestResult {
    let env = TestEnv::new("counter-fenced").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let config = fast("fenced");
    let old = LeaderElection::start(api.clone(), config.clone());
    let (_, old_epoch) = old.wait_for_grant().await;
    let old_fence = Fence::new(old_epoch, old.identity());
    old_fence.claim_job(&cas(&api, 15), "fenced", JOB).await?;
    let old_counter = CheckpointIdCounter::new(cas(&api, 15), "fenced", JOB, old_fence.clone());
    old_counter.start().await?;
    assert_eq!(old_counter.get_and_increment().await?, 1);

    // The old leader stops renewing (as if paused); a new one is granted and claims the job.
    let new = LeaderElection::start(api.clone(), config);
    drop(old);
    let (_, new_epoch) = tokio::time::timeout(Duration::from_secs(10), new.wait_for_grant()).await?;
    assert!(
        new_epoch > old_epoch,
        "epochs grow with every grant: {old_epoch} then {new_epoch}"
    );
    let new_fence = Fence::new(new_epoch, new.identity());
    new_fence.claim_job(&cas(&api, 15), "fenced", JOB).await?;
    let new_counter = CheckpointIdCounter::new(cas(&api, 15), "fenced", JOB, new_fence);
    assert_eq!(new_counter.get_and_increment().await?, 2);

    // The old leader "resumes".
    let refused = old_counter.get_and_increment().await;
    assert!(matches!(refused, Err(Error::NotLeader { .. })), "{refused:?}");
    let refused = old_counter.set_count(1).await;
    assert!(matches!(refused, Err(Error::NotLeader { .. })), "{refused:?}");
    let refused = old_fence.claim_job(&cas(&api, 15), "fenced", JOB).await;
    assert!(matches!(refused, Err(Error::NotLeader { .. })), "{refused:?}");
    assert_eq!(
        new_counter.get().await?,
        3,
        "nothing the deposed leader tried is visible"
    );
    new.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_counter_is_an_error_and_is_not_overwritten() -> TestResult {
    let env = TestEnv::new("counter-corrupt").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let fence = Fence::new(0, "jm-1");
    let mut cm = fence.claim_job(&cas(&api, 15), "orders", JOB).await?;
    cm.data
        .get_or_insert_with(Default::default)
        .insert(COUNTER_KEY.into(), "12x".into());
    api.replace(&names::job_config_map("orders", JOB), &PostParams::default(), &cm)
        .await?;

    let counter = CheckpointIdCounter::new(cas(&api, 15), "orders", JOB, fence);
    let error = counter.get_and_increment().await.expect_err("a corrupt counter");
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("`12x`"), "{error}");
    let cm = api.get(&names::job_config_map("orders", JOB)).await?;
    assert_eq!(cm.data.unwrap_or_default()[COUNTER_KEY], "12x");
    // Missing job ConfigMap: a clear error, not a creation behind the fence's back.
    let other = CheckpointIdCounter::new(
        cas(&api, 15),
        "orders",
        "ffffffffffffffffffffffffffffffff",
        Fence::new(0, "jm-1"),
    );
    assert!(matches!(other.get_and_increment().await, Err(Error::Missing { .. })));
    Ok(())
}
