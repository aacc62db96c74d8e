//! The cluster ConfigMap deleted while its leader cannot put it back (its answers lost,
//! or it is gone) — found by the nemesis (`cli/tests/nemesis.rs`, fault
//! `drop-during-cm-delete`): the next leader created it again without the execution-plan
//! pointers it held, and the running jobs were replaced by new ones. Each job ConfigMap
//! now keeps a copy of its job's plan pointer (written with the claim), and a new
//! leader puts the missing pointers back before it recovers — never for a job that ended.

use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams};

use flink_ha_runtime::cleanup::execution_plan_key;
use flink_ha_runtime::fence::PLAN_COPY_ANNOTATION;
use flink_ha_runtime::job_result_store::{ApplicationStatus, JobResult};
use flink_ha_runtime::{HaServices, HaSettings, JobId, names};
use flink_ha_testenv::TestEnv;

mod common;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLUSTER: &str = "lost-cm";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_lost_with_the_cluster_config_map_are_put_back_from_the_job_config_maps() -> TestResult {
    let env = TestEnv::new("cluster-cm-lost").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let storage_dir = format!("file://{}", storage.path().display());
    let config = common::flink_config(&env.namespace, CLUSTER, &storage_dir, "");
    let settings = HaSettings::from_flink_config("config.yaml", &config)?;

    // The first leader runs two jobs; one of them ends (its result dirty, its cleanup
    // not done yet).
    let first = HaServices::new(env.client.clone(), settings.clone())?;
    let election = first.leader_election();
    let (_, epoch) = tokio::time::timeout(Duration::from_secs(20), election.wait_for_grant()).await?;
    let plans = first.execution_plans(&election);
    let running = JobId::parse("0123456789abcdef0123456789abcdef")?;
    let ended = JobId::parse("fedcba9876543210fedcba9876543210")?;
    for job in [&running, &ended] {
        plans.put(job.as_str(), Bytes::from(format!("plan of {job}"))).await?;
        let ha = first.take_up_job(&election, epoch, job).await?;
        ha.checkpoints().recover().await?;
        let id = ha.counter().get_and_increment().await?;
        ha.checkpoints().add(id, Bytes::from("checkpoint")).await?;
    }
    let job_cm = api.get(&names::job_config_map(CLUSTER, running.as_str())).await?;
    assert!(
        job_cm
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(PLAN_COPY_ANNOTATION)),
        "the claim copies the plan pointer into the job ConfigMap"
    );
    first
        .job_results()
        .create_dirty(
            &JobResult::new(ended.as_str(), ApplicationStatus::Succeeded, 1),
            &election.lease_of_epoch(epoch)?,
        )
        .await?;

    // The leader is gone, and so is the cluster ConfigMap with the plan pointers.
    election.stop().await;
    api.delete(&names::cluster_config_map(CLUSTER), &DeleteParams::default())
        .await?;

    // The next leader creates it again, and finds what to recover.
    let second = HaServices::new(env.client.clone(), settings)?;
    let election = second.leader_election();
    tokio::time::timeout(Duration::from_secs(20), election.wait_for_grant()).await?;
    let plans = second.execution_plans(&election);
    let recovery = second.recoverable_jobs(&plans).await?;
    assert_eq!(
        recovery.recover,
        vec![running.clone()],
        "the running job is recovered, the ended one not"
    );
    assert_eq!(
        recovery
            .finish_cleanup
            .iter()
            .map(|r| r.job_id.as_str())
            .collect::<Vec<_>>(),
        vec![ended.as_str()]
    );
    let cluster_cm = api.get(&names::cluster_config_map(CLUSTER)).await?;
    let data = cluster_cm.data.unwrap_or_default();
    assert!(
        data.contains_key(&execution_plan_key(running.as_str())),
        "the plan pointer is back"
    );
    assert!(
        !data.contains_key(&execution_plan_key(ended.as_str())),
        "an ended job's plan stays gone"
    );
    assert_eq!(
        plans.get(running.as_str()).await?,
        Some(Bytes::from(format!("plan of {running}")))
    );
    election.stop().await;
    Ok(())
}
