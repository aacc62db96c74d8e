//! Writes whose answer is lost, against the real API server: the client sends the PUT
//! (the server applies it) and then loses the answer, as a dropped connection or a
//! timeout does. The server is real; only the loss is injected, in a tower layer of the
//! kube client, because a real network does not lose one chosen answer on cue.
//!
//! Flink's `PossibleInconsistentState` scenarios: the payload of a possibly written
//! pointer is never deleted. The runtime goes one step further than Flink: it reads the
//! ConfigMap back and, if its pointer is there, the add has succeeded.

use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams};

use flink_ha_runtime::cas::ConfigMapCas;
use flink_ha_runtime::checkpoint_store::{CompletedCheckpointStore, checkpoint_key};
use flink_ha_runtime::cleanup::ExecutionPlanStore;
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::payloads::PayloadStore;
use flink_ha_runtime::{ElectionConfig, Error, LeaderElection, names};
use flink_ha_testenv::TestEnv;

mod common;
use common::cas;
use common::faults::{CUT, DROP_NEXT_PUT, Faults, LOSE_NEXT_PUT_ANSWER, LOSE_NEXT_PUT_ANSWER_THEN_CUT, PASS};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB: &str = "5555aaaa5555aaaa5555aaaa5555aaaa";

/// A test's namespace with job `JOB` claimed: a plain and a faulty view of its
/// ConfigMaps, the fault switch, and file:// payloads.
struct Setup {
    _env: TestEnv,
    api: Api<ConfigMap>,
    faulty: Api<ConfigMap>,
    faults: Faults,
    storage: tempfile::TempDir,
    payloads: PayloadStore,
    fence: Fence,
}

async fn setup(test: &str) -> Result<Setup, Box<dyn std::error::Error>> {
    let env = TestEnv::new(test).await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let faults = Faults::default();
    let faulty: Api<ConfigMap> = Api::namespaced(faults.client(&env).await?, &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "orders")?;
    let fence = Fence::new(0, "jm-1");
    fence.claim_job(&cas(&api), "orders", JOB).await?;
    Ok(Setup {
        _env: env,
        api,
        faulty,
        faults,
        storage,
        payloads,
        fence,
    })
}

fn payload_count(storage: &tempfile::TempDir) -> usize {
    common::file_names(&storage.path().join("orders")).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_resolved_by_reading_the_pointer_back() -> TestResult {
    let s = setup("lost-answer").await?;
    let store = CompletedCheckpointStore::new(cas(&s.faulty), "orders", JOB, s.payloads, s.fence, 2);
    assert_eq!(store.recover().await?, None);

    s.faults.set_plan(LOSE_NEXT_PUT_ANSWER);
    store.add(1, Bytes::from_static(b"one")).await?;
    assert_eq!(s.faults.plan(), PASS, "the fault must have fired");

    // The retry found its own pointer: success, one pointer, one payload.
    let cm = s.api.get(&names::job_config_map("orders", JOB)).await?;
    assert!(cm.data.unwrap_or_default().contains_key(&checkpoint_key(1)));
    assert_eq!(payload_count(&s.storage), 1);
    assert_eq!(store.recover().await?, Some((1, Bytes::from_static(b"one"))));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_that_stays_unknown_is_possibly_written_and_keeps_the_payload() -> TestResult {
    let s = setup("possibly-written").await?;
    // Few retries and a short deadline: the test is about the outcome, not the patience.
    let cut_off = ConfigMapCas::new(s.faulty, 2, Duration::from_secs(2));
    let store = CompletedCheckpointStore::new(cut_off, "orders", JOB, s.payloads.clone(), s.fence.clone(), 2);
    assert_eq!(store.recover().await?, None);

    s.faults.set_plan(LOSE_NEXT_PUT_ANSWER_THEN_CUT);
    match store.add(1, Bytes::from_static(b"one")).await {
        Err(Error::PossiblyWritten { .. }) => {}
        other => panic!("expected PossiblyWritten, got {other:?}"),
    }
    assert_eq!(s.faults.plan(), CUT, "the fault must have fired");

    // The PUT did land: the pointer is there, and its payload was kept, so the checkpoint
    // is recoverable by whoever reads it next.
    assert_eq!(payload_count(&s.storage), 1);
    let reader = CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, s.payloads, s.fence, 2);
    assert_eq!(reader.recover().await?, Some((1, Bytes::from_static(b"one"))));
    Ok(())
}

/// The first leader's store with checkpoint 1 in (one retained), through the faulty
/// client; and a new leader (epoch 1, `jm-2`) set to claim the job while the first one
/// waits for the answer to its next PUT.
async fn checkpoint_one_then_a_successor_claims(
    setup: &Setup,
) -> Result<(CompletedCheckpointStore, Fence), Box<dyn std::error::Error>> {
    let store = CompletedCheckpointStore::new(
        cas(&setup.faulty),
        "orders",
        JOB,
        setup.payloads.clone(),
        setup.fence.clone(),
        1,
    );
    assert_eq!(store.recover().await?, None);
    store.add(1, Bytes::from_static(b"one")).await?;

    let successor = Fence::new(1, "jm-2");
    let (api, claim) = (setup.api.clone(), successor.clone());
    setup.faults.after_lost_put(Box::pin(async move {
        if let Err(error) = claim.claim_job(&cas(&api), "orders", JOB).await {
            panic!("the successor's claim failed: {error}");
        }
    }));
    Ok((store, successor))
}

/// Issue 12, path 1: the PUT that adds checkpoint 2 (and marks 1) lands, its answer is
/// lost, and a new leader claims the job before the retry. The retry finds its own
/// pointer: the add has succeeded, whatever the fence says now, and the payload stays.
/// (Before the fix the retry's fence check was taken as "definitely not written": the
/// payload of 2 was deleted, 1 was hidden by its mark, and the successor found nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_then_a_new_leader_keeps_the_checkpoint() -> TestResult {
    let s = setup("lost-answer-new-leader").await?;
    let (store, successor) = checkpoint_one_then_a_successor_claims(&s).await?;
    s.faults.set_plan(LOSE_NEXT_PUT_ANSWER);
    let added = store.add(2, Bytes::from_static(b"two")).await;
    assert_eq!(s.faults.plan(), PASS, "the fault must have fired");
    assert!(added.is_ok(), "the add landed, so it succeeded: {added:?}");

    let next = CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, s.payloads.clone(), successor, 1);
    assert_eq!(next.recover().await?, Some((2, Bytes::from_static(b"two"))));
    // The deposed leader is fenced out from here on.
    assert!(matches!(
        store.add(3, Bytes::from_static(b"three")).await,
        Err(Error::NotLeader { .. })
    ));
    Ok(())
}

/// The mirror case: the PUT never reached the server, and a new leader claims the job
/// before the retry. Reading back proves the pointer absent and unable to land (the
/// ConfigMap moved past the version the PUT was conditioned on): not written, and the
/// payload goes, so nothing leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_write_then_a_new_leader_is_not_written_and_leaks_nothing() -> TestResult {
    let s = setup("dropped-write-new-leader").await?;
    let (store, successor) = checkpoint_one_then_a_successor_claims(&s).await?;
    s.faults.set_plan(DROP_NEXT_PUT);
    match store.add(2, Bytes::from_static(b"two")).await {
        Err(Error::NotWritten { .. }) => {}
        other => panic!("expected NotWritten, got {other:?}"),
    }
    assert_eq!(payload_count(&s.storage), 1, "only checkpoint 1's payload is left");
    let next = CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, s.payloads.clone(), successor, 1);
    assert_eq!(next.recover().await?, Some((1, Bytes::from_static(b"one"))));
    Ok(())
}

/// A plan's add lands, its answer is lost, and the cluster ConfigMap is deleted before
/// the add reads it back (`kubectl delete`, a cleanup tool). Its leader restores the
/// ConfigMap with what it held, the new pointer included: while it is gone, the add's
/// outcome is unknown, not "not written". (Before the fix the read-back took the 404 as
/// proof: the plan's payload was deleted, and the restored pointer named nothing, so the
/// job could not be recovered.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_whose_answer_is_lost_while_the_cluster_config_map_is_deleted_is_kept() -> TestResult {
    let s = setup("lost-answer-deleted-cluster").await?;
    let election = LeaderElection::start(
        s.api.clone(),
        ElectionConfig {
            cluster_id: "orders".into(),
            lease_duration: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(3),
            retry_period: Duration::from_secs(1),
            max_retries: 15,
        },
    );
    election.wait_for_grant().await;
    let plans = ExecutionPlanStore::new(cas(&s.faulty), "orders", s.payloads.clone(), election.identity());
    let name = names::cluster_config_map("orders");
    let (api, deleted) = (s.api.clone(), name.clone());
    s.faults.after_lost_put(Box::pin(async move {
        if let Err(error) = api.delete(&deleted, &DeleteParams::default()).await {
            panic!("could not delete the cluster ConfigMap: {error}");
        }
    }));
    s.faults.set_plan(LOSE_NEXT_PUT_ANSWER);
    let put = plans.put(JOB, Bytes::from_static(b"plan")).await;
    assert_eq!(s.faults.plan(), PASS, "the fault must have fired");

    // The leader restores the ConfigMap at its next renewal.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while s.api.get_opt(&name).await?.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the ConfigMap was not restored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = plans.get(JOB).await;
    assert!(
        matches!(&got, Ok(Some(plan)) if plan == &Bytes::from_static(b"plan")),
        "the restored plan's payload is gone: {got:?} (the add said {put:?})"
    );
    drop(election);
    Ok(())
}
