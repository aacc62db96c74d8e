//! Cleanup and recovery against the real API server: a terminal job leaves nothing, a
//! normal cluster shutdown removes the rest (and refuses while a job is not over), and
//! the source document's promise — delete the Deployment, keep the HA data, recover
//! every job at its latest checkpoint — with the garbage collector running.

use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, PostParams};

use flink_ha_runtime::checkpoint_counter::CheckpointIdCounter;
use flink_ha_runtime::checkpoint_store::CompletedCheckpointStore;
use flink_ha_runtime::cleanup::{ExecutionPlanStore, JobHa, clean_up_cluster, clean_up_job};
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::payloads::PayloadStore;
use flink_ha_runtime::{Error, LeaderElection, names};
use flink_ha_testenv::TestEnv;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const JOB_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

mod common;
use common::{cas, fast};

fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A JobManager's view of one job while it leads: claim, plan, counter, checkpoints.
struct RunningJob {
    counter: CheckpointIdCounter,
    checkpoints: CompletedCheckpointStore,
}

async fn start_job(
    api: &Api<ConfigMap>,
    cluster: &str,
    job: &str,
    payloads: &PayloadStore,
    election: &LeaderElection,
) -> Result<(RunningJob, Fence), Error> {
    let (_, epoch) = election.wait_for_grant().await;
    let fence = Fence::new(epoch, election.identity());
    fence.claim_job(&cas(api), cluster, job).await?;
    let counter = CheckpointIdCounter::new(cas(api), cluster, job, fence.clone());
    counter.start().await?;
    let checkpoints = CompletedCheckpointStore::new(cas(api), cluster, job, payloads.clone(), fence.clone(), 2);
    checkpoints.recover().await?;
    Ok((RunningJob { counter, checkpoints }, fence))
}

impl RunningJob {
    async fn checkpoint(&self, job: &str) -> Result<u64, Error> {
        let id = self.counter.get_and_increment().await?;
        self.checkpoints.add(id, Bytes::from(format!("{job}@{id}"))).await?;
        Ok(id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_job_leaves_nothing_and_the_cluster_cleans_up_last() -> TestResult {
    let env = TestEnv::new("cleanup").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let election = LeaderElection::start(api.clone(), fast("shop"));
    let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads.clone(), election.identity());

    let mut fences = Vec::new();
    for job in [JOB_A, JOB_B] {
        let (running, fence) = start_job(&api, "shop", job, &payloads, &election).await?;
        plans.put(job, Bytes::from(format!("plan of {job}"))).await?;
        election
            .publish_leader_address(
                &names::job_component(job),
                "pekko.tcp://flink@10.0.0.9:6123/user/rpc/jobmanager_2",
            )
            .await?;
        for _ in 0..3 {
            running.checkpoint(job).await?;
        }
        fences.push(fence);
    }
    assert_eq!(plans.job_ids().await?, [JOB_A, JOB_B]);
    let payload_dir = storage.path().join("shop");
    assert_eq!(
        files_under(&payload_dir),
        2 * (1 + 2),
        "a plan and two retained checkpoints per job"
    );

    // The cluster cannot be cleaned up while job B is not over.
    let refused = clean_up_cluster(&cas(&api), "shop", &payloads).await;
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
    assert!(api.get_opt(&names::cluster_config_map("shop")).await?.is_some());

    // Job A ends: nothing of it is left, job B is untouched.
    let job_a = JobHa {
        cas: &cas(&api),
        cluster_id: "shop",
        job_id: JOB_A,
        payloads: &payloads,
        fence: &fences[0],
        identity: election.identity(),
    };
    clean_up_job(job_a).await?;
    assert!(api.get_opt(&names::job_config_map("shop", JOB_A)).await?.is_none());
    let cluster = api
        .get(&names::cluster_config_map("shop"))
        .await?
        .data
        .unwrap_or_default();
    assert!(!cluster.contains_key(&names::leader_entry_key(&names::job_component(JOB_A))));
    assert!(cluster.contains_key(&names::leader_entry_key(&names::job_component(JOB_B))));
    assert_eq!(plans.job_ids().await?, [JOB_B]);
    assert_eq!(files_under(&payload_dir), 3, "job B's plan and checkpoints remain");
    // Cleanup is idempotent.
    let again = JobHa {
        cas: &cas(&api),
        cluster_id: "shop",
        job_id: JOB_A,
        payloads: &payloads,
        fence: &fences[0],
        identity: election.identity(),
    };
    clean_up_job(again).await?;

    let job_b = JobHa {
        cas: &cas(&api),
        cluster_id: "shop",
        job_id: JOB_B,
        payloads: &payloads,
        fence: &fences[1],
        identity: election.identity(),
    };
    clean_up_job(job_b).await?;
    election.stop().await;
    clean_up_cluster(&cas(&api), "shop", &payloads).await?;
    assert!(api.get_opt(&names::cluster_config_map("shop")).await?.is_none());
    assert_eq!(files_under(&payload_dir), 0);
    Ok(())
}

/// Flink's documented promise, observed with kube-controller-manager running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_deployment_keeps_ha_data_and_a_new_jobmanager_recovers_every_job() -> TestResult {
    let env = TestEnv::with_controller_manager("recovery").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "etl")?;

    // The "cluster": a JobManager Deployment owning its flink-config ConfigMap.
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "etl"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "etl"}},
                 "template": {"metadata": {"labels": {"app": "etl", "component": "jobmanager"}},
                              "spec": {"containers": [{"name": "jobmanager", "image": "flink:2.1"}]}}}
    }))?;
    let deployment = deployments.create(&PostParams::default(), &deployment).await?;
    let mut flink_config = ConfigMap::default();
    flink_config.metadata.name = Some("flink-config-etl".into());
    flink_config.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "etl".into(),
        uid: deployment.metadata.uid.clone().ok_or("no uid")?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    api.create(&PostParams::default(), &flink_config).await?;

    // The first JobManager runs two jobs that checkpoint.
    let first = LeaderElection::start(api.clone(), fast("etl"));
    first.wait_for_grant().await;
    let plans = ExecutionPlanStore::new(cas(&api), "etl", payloads.clone(), first.identity());
    let mut latest = Vec::new();
    for (job, checkpoints) in [(JOB_A, 4), (JOB_B, 2)] {
        plans.put(job, Bytes::from(format!("plan of {job}"))).await?;
        let (running, _) = start_job(&api, "etl", job, &payloads, &first).await?;
        let mut last = 0;
        for _ in 0..checkpoints {
            last = running.checkpoint(job).await?;
        }
        latest.push((job, last));
    }

    // `kubectl delete deploy etl`, and the JobManager process dies with it (no release).
    let deleted = tokio::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", env.kubeconfig.display()))
        .args(["-n", &env.namespace, "delete", "deployment", "etl", "--wait=false"])
        .output()
        .await?;
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while api.get_opt("flink-config-etl").await?.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "flink-config-etl was not garbage-collected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The HA ConfigMaps and the payloads stay.
    for name in [
        names::cluster_config_map("etl"),
        names::job_config_map("etl", JOB_A),
        names::job_config_map("etl", JOB_B),
    ] {
        let cm = api.get(&name).await?;
        assert!(cm.metadata.owner_references.is_none(), "{name} must not be owned");
    }

    // A new JobManager with the same cluster id recovers every job at its latest checkpoint.
    let second = LeaderElection::start(api.clone(), fast("etl"));
    second.wait_for_grant().await;
    let plans = ExecutionPlanStore::new(cas(&api), "etl", payloads.clone(), second.identity());
    let jobs = plans.job_ids().await?;
    assert_eq!(jobs, [JOB_A, JOB_B]);
    for (job, last) in latest {
        assert_eq!(plans.get(job).await?, Some(Bytes::from(format!("plan of {job}"))));
        let (running, _) = start_job(&api, "etl", job, &payloads, &second).await?;
        let recovered = running.checkpoints.recover().await?;
        assert_eq!(
            recovered,
            Some((last, Bytes::from(format!("{job}@{last}")))),
            "job {job}"
        );
        // And it goes on from there: the next id follows the recovered one.
        assert_eq!(running.checkpoint(job).await?, last + 1);
    }
    second.stop().await;
    Ok(())
}
