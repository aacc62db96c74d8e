//! A job ConfigMap deleted under its running job (by hand, a garbage collector, a Helm
//! uninstall) — found by the nemesis (`cli/tests/nemesis.rs`, fault `delete-job-cm`):
//! the next leader recovered the job empty, its counter started again at 1, and the
//! orphan sweep then deleted the acknowledged checkpoints no pointer named any more.
//! Flink's own JobManager loses the job the same way. The leader that holds the job now
//! creates the ConfigMap again from the copy it last read or wrote, at its next write,
//! while its lease is valid — and not after.

use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams};

use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::{HaServices, HaSettings, JobId, names};
use flink_ha_testenv::TestEnv;

mod common;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_config_map_deleted_under_the_running_job_is_put_back_whole() -> TestResult {
    let env = TestEnv::new("job-cm-deleted").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let storage_dir = format!("file://{}", storage.path().display());
    let settings = HaSettings::from_flink_config(
        "config.yaml",
        &common::flink_config(
            &env.namespace,
            "deleted-cm",
            &storage_dir,
            "execution.checkpointing.num-retained: 2\n",
        ),
    )?;
    let services = HaServices::new(env.client.clone(), settings)?;
    let election = services.leader_election();
    let (_, epoch) = tokio::time::timeout(Duration::from_secs(20), election.wait_for_grant()).await?;
    let job = JobId::parse("0123456789abcdef0123456789abcdef")?;
    let name = names::job_config_map("deleted-cm", job.as_str());

    let ha = services.take_up_job(&election, epoch, &job).await?;
    ha.checkpoints().recover().await?;
    for _ in 0..3 {
        let id = ha.counter().get_and_increment().await?;
        ha.checkpoints()
            .add(id, Bytes::from(format!("checkpoint {id}")))
            .await?;
    }
    api.delete(&name, &DeleteParams::default()).await?;
    assert!(api.get_opt(&name).await?.is_none());

    // The next checkpoint of the running job: its counter goes on from 4, not from 1.
    let id = ha.counter().get_and_increment().await?;
    assert_eq!(id, 4, "the counter was put back with the ConfigMap");
    ha.checkpoints().add(id, Bytes::from("checkpoint 4")).await?;
    let cm = api
        .get_opt(&name)
        .await?
        .ok_or("the job ConfigMap was not created again")?;
    assert_eq!(Fence::read(&cm)?, Some(Fence::new(epoch, election.identity())));
    assert_eq!(
        cm.metadata.labels.as_ref(),
        Some(&names::ha_labels("deleted-cm")),
        "the HA labels came back with it"
    );
    assert!(cm.metadata.owner_references.is_none());

    // Whoever leads next recovers the newest checkpoint, not an empty job.
    let again = services.take_up_job(&election, epoch, &job).await?;
    let recovered = again.checkpoints().recover().await?;
    assert_eq!(recovered, Some((4, Bytes::from("checkpoint 4"))));
    assert_eq!(again.checkpoints().checkpoint_ids().await?, vec![3, 4]);

    // Once this grant is over, a deletion is not undone: the copy may be stale by then.
    election.stop().await;
    api.delete(&name, &DeleteParams::default()).await?;
    let refused = ha.counter().get_and_increment().await;
    assert!(refused.is_err(), "a write after the grant must fail: {refused:?}");
    assert!(
        api.get_opt(&name).await?.is_none(),
        "a ConfigMap deleted after the grant ended was created again"
    );
    Ok(())
}
