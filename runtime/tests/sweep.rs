//! The orphan sweep against the real API server (issue 12's rule (g): after a run,
//! nothing leaks, not even the payload of a writer killed between its payload and its
//! pointer). The sweep deletes exactly the old payloads no pointer names, and nothing a
//! pointer names or may yet name: not a marked entry's payload, not an add of this
//! process whose outcome is unknown, not Flink's own files or a user's, nothing in a
//! folder another cluster owns, nothing while another process holds the lock.

use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use flink_ha_runtime::checkpoint_store::{CompletedCheckpointStore, PAYLOAD_KIND};
use flink_ha_runtime::cleanup::ExecutionPlanStore;
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::payloads::{OWNER_MARKER, PayloadStore};
use flink_ha_runtime::sweep::{Sweep, SweepReport, sweep_orphans};
use flink_ha_runtime::{Error, LeaderElection};
use flink_ha_testenv::TestEnv;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::{cas, fast};

const JOB: &str = "cccccccccccccccccccccccccccccccc";
const HOUR: Duration = Duration::from_secs(3600);

fn report(sweep: Sweep) -> SweepReport {
    match sweep {
        Sweep::Done(report) => report,
        Sweep::NotOurFolder { owner } => panic!("the folder was taken for {owner}'s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_old_orphans_and_nothing_a_pointer_names_or_may_name() -> TestResult {
    let env = TestEnv::new("sweep").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let uri = format!("file://{}", storage.path().display());
    let payloads = PayloadStore::open(&uri, "shop")?;
    let election = LeaderElection::start(api.clone(), fast("shop"));
    let (_, epoch) = election.wait_for_grant().await;

    // What a running cluster references: a plan and three checkpoints (two retained,
    // so the first is marked and removed by the third add).
    let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads.clone(), election.identity());
    plans.put(JOB, Bytes::from_static(b"plan")).await?;
    let fence = Fence::new(epoch, election.identity());
    fence.claim_job(&cas(&api), "shop", JOB).await?;
    let checkpoints = CompletedCheckpointStore::new(cas(&api), "shop", JOB, payloads.clone(), fence, 2);
    checkpoints.recover().await?;
    for id in 1..=3 {
        checkpoints.add(id, Bytes::from(format!("checkpoint {id}"))).await?;
    }

    // A writer killed between payload and pointer: another process's store (its
    // memory of the unsettled write died with it).
    let killed = PayloadStore::open(&uri, "shop")?;
    let orphan = killed.put_new(PAYLOAD_KIND, Bytes::from_static(b"orphan")).await?;
    // This process's own add whose pointer write has not settled.
    let pending = payloads.put_new(PAYLOAD_KIND, Bytes::from_static(b"pending")).await?;
    payloads.mark_unsettled(&pending);
    // Beside them: Flink's own payload name, its blob folder, a user's file.
    let folder = storage.path().join("shop");
    std::fs::write(folder.join("completedCheckpointe31c6049fc69"), b"flink")?;
    std::fs::create_dir_all(folder.join("blob"))?;
    std::fs::write(
        folder.join("blob").join(format!("{PAYLOAD_KIND}{}", "a".repeat(24))),
        b"blob",
    )?;
    std::fs::write(folder.join("notes.txt"), b"a user's")?;

    let cas = cas(&api);
    let sweep = |min_age| sweep_orphans(&cas, &env.namespace, "shop", &payloads, election.identity(), min_age);

    // Too young at an hour: nothing goes, and the folder is claimed for this cluster.
    let first = report(sweep(HOUR).await?);
    assert_eq!(first.deleted, Vec::<String>::new());
    assert_eq!((first.young, first.unsettled, first.referenced), (1, 1, 3), "{first:?}");
    assert!(folder.join(OWNER_MARKER).exists());

    // Old enough: exactly the orphan goes.
    let second = report(sweep(Duration::ZERO).await?);
    assert_eq!(second.deleted, vec![orphan.clone()], "{second:?}");
    assert_eq!((second.young, second.unsettled, second.referenced), (0, 1, 3));
    assert!(matches!(payloads.get(&orphan).await, Err(Error::PayloadMissing { .. })));
    assert_eq!(payloads.get(&pending).await?, Bytes::from_static(b"pending"));
    let (latest, bytes) = checkpoints.recover().await?.ok_or("no checkpoint after the sweep")?;
    assert_eq!((latest, bytes), (3, Bytes::from_static(b"checkpoint 3")));
    assert_eq!(plans.job_ids().await?, [JOB]);
    for kept in ["completedCheckpointe31c6049fc69", "notes.txt", "blob"] {
        assert!(folder.join(kept).exists(), "{kept} was deleted");
    }

    // Once the pending add settled as not written, it is an orphan like any other.
    payloads.settled(&pending);
    let third = report(sweep(Duration::ZERO).await?);
    assert_eq!(third.deleted, vec![pending]);
    election.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sweep_without_the_lock_or_in_another_clusters_folder() -> TestResult {
    let env = TestEnv::new("sweep-guard").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let uri = format!("file://{}", storage.path().display());
    let payloads = PayloadStore::open(&uri, "twin")?;
    let election = LeaderElection::start(api.clone(), fast("twin"));
    election.wait_for_grant().await;
    let orphan = PayloadStore::open(&uri, "twin")?
        .put_new(PAYLOAD_KIND, Bytes::from_static(b"orphan"))
        .await?;

    // A standby's sweep is refused before it deletes anything.
    let standby = sweep_orphans(
        &cas(&api),
        &env.namespace,
        "twin",
        &payloads,
        "a-standby",
        Duration::ZERO,
    )
    .await;
    assert!(matches!(standby, Err(Error::NotLeader { .. })), "{standby:?}");
    assert!(payloads.get(&orphan).await.is_ok());

    // The same cluster id in another namespace owns the folder: hands off.
    let other = "another-namespace/twin";
    assert_eq!(
        payloads.claim_folder(other).await?,
        flink_ha_runtime::payloads::FolderOwner::This
    );
    let foreign = sweep_orphans(
        &cas(&api),
        &env.namespace,
        "twin",
        &payloads,
        election.identity(),
        Duration::ZERO,
    )
    .await?;
    assert_eq!(foreign, Sweep::NotOurFolder { owner: other.into() });
    assert!(payloads.get(&orphan).await.is_ok());

    // Its owner's cleanup releases the marker only when the marker is its own.
    payloads.release_folder(&format!("{}/twin", env.namespace)).await?;
    assert!(storage.path().join("twin").join(OWNER_MARKER).exists());
    payloads.release_folder(other).await?;
    assert!(!storage.path().join("twin").join(OWNER_MARKER).exists());
    election.stop().await;
    Ok(())
}
