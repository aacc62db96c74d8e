//! Cleanup and recovery against the real API server: a terminal job leaves nothing, a
//! normal cluster shutdown removes the rest (and refuses while a job is not over), and
//! the source document's promise — delete the Deployment, keep the HA data, recover
//! every job at its latest checkpoint — with the garbage collector running.
//!
//! Cluster cleanup is fenced and exact (issue 12): only the lock holder may do it, in the
//! very version of the ConfigMap in which it checked the lock (a tower layer in the kube
//! client changes the ConfigMap just before the DELETE, because no real race hits that
//! moment on cue); labelled non-HA ConfigMaps neither stop it nor are deleted; payloads go
//! by pointer, so a cluster with the same id in another namespace keeps its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, PostParams};

use flink_ha_runtime::checkpoint_counter::CheckpointIdCounter;
use flink_ha_runtime::checkpoint_store::CompletedCheckpointStore;
use flink_ha_runtime::cleanup::{ExecutionPlanStore, JobHa, clean_up_cluster, clean_up_job, execution_plan_key};
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::job_result_store::{ApplicationStatus, JobResult, JobResultStore};
use flink_ha_runtime::payloads::PayloadStore;
use flink_ha_runtime::storage::StorageOptions;
use flink_ha_runtime::{Error, LeaderElection, names};
use flink_ha_testenv::TestEnv;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const JOB_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

mod common;
use common::faults::Faults;
use common::stores::Hooked;
use common::{cas, fast};

/// The job-result store at Flink's default place for `cluster` under `storage`.
fn job_results(storage: &tempfile::TempDir, cluster: &str) -> Result<JobResultStore, Error> {
    let path = format!("file://{}/job-result-store/{cluster}", storage.path().display());
    JobResultStore::open(&path, &StorageOptions::default(), true)
}

fn succeeded(job: &str) -> JobResult {
    JobResult::new(job, ApplicationStatus::Succeeded, 60_000)
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
    let results = job_results(&storage, "shop")?;
    let election = LeaderElection::start(api.clone(), steady("shop"));
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
        common::file_names(&payload_dir).len(),
        2 * (1 + 2),
        "a plan and two retained checkpoints per job"
    );

    // The cluster cannot be cleaned up while job B is not over.
    let refused = clean_up_cluster(
        &cas(&api),
        "shop",
        &payloads,
        election.identity(),
        &common::lease_of(&election)?,
    )
    .await;
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
        lease: &common::lease_of(&election)?,
    };
    clean_up_job(job_a, &results, &succeeded(JOB_A)).await?;
    assert!(api.get_opt(&names::job_config_map("shop", JOB_A)).await?.is_none());
    let cluster = api
        .get(&names::cluster_config_map("shop"))
        .await?
        .data
        .unwrap_or_default();
    assert!(!cluster.contains_key(&names::leader_entry_key(&names::job_component(JOB_A))));
    assert!(cluster.contains_key(&names::leader_entry_key(&names::job_component(JOB_B))));
    assert_eq!(plans.job_ids().await?, [JOB_B]);
    assert_eq!(
        common::file_names(&payload_dir).len(),
        3,
        "job B's plan and checkpoints remain"
    );
    // Cleanup is idempotent.
    let again = JobHa {
        cas: &cas(&api),
        cluster_id: "shop",
        job_id: JOB_A,
        payloads: &payloads,
        fence: &fences[0],
        identity: election.identity(),
        lease: &common::lease_of(&election)?,
    };
    clean_up_job(again, &results, &succeeded(JOB_A)).await?;

    let job_b = JobHa {
        cas: &cas(&api),
        cluster_id: "shop",
        job_id: JOB_B,
        payloads: &payloads,
        fence: &fences[1],
        identity: election.identity(),
        lease: &common::lease_of(&election)?,
    };
    clean_up_job(job_b, &results, &succeeded(JOB_B)).await?;
    // Both cleanups finished: their results were deleted on commit.
    assert_eq!(
        common::file_names(&storage.path().join("job-result-store").join("shop")).len(),
        0
    );
    clean_up_cluster(
        &cas(&api),
        "shop",
        &payloads,
        election.identity(),
        &common::lease_of(&election)?,
    )
    .await?;
    assert!(api.get_opt(&names::cluster_config_map("shop")).await?.is_none());
    assert_eq!(common::file_names(&payload_dir).len(), 0);
    // Its ConfigMap is gone; the election has nothing left to renew or release.
    drop(election);
    Ok(())
}

/// A job ends while its ConfigMap holds a checkpoint whose removal was interrupted (its
/// key marked, its payload still there): the cleanup removes that payload too before
/// the ConfigMap goes. (Before the fix it listed only live checkpoints, and the marked
/// one's payload stayed in storage for good once its pointer went with the ConfigMap.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cleanup_removes_marked_checkpoints_and_their_payloads() -> TestResult {
    let env = TestEnv::new("cleanup-marked").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let results = job_results(&storage, "shop")?;
    let election = LeaderElection::start(api.clone(), steady("shop"));
    let (running, fence) = start_job(&api, "shop", JOB_A, &payloads, &election).await?;
    for _ in 0..2 {
        running.checkpoint(JOB_A).await?;
    }
    let job_cm = names::job_config_map("shop", JOB_A);
    mark_entry_in(&api, &job_cm, &flink_ha_runtime::checkpoint_store::checkpoint_key(1)).await?;
    let payload_dir = storage.path().join("shop");
    assert_eq!(common::file_names(&payload_dir).len(), 2);

    let job = JobHa {
        cas: &cas(&api),
        cluster_id: "shop",
        job_id: JOB_A,
        payloads: &payloads,
        fence: &fence,
        identity: election.identity(),
        lease: &common::lease_of(&election)?,
    };
    clean_up_job(job, &results, &succeeded(JOB_A)).await?;
    assert!(api.get_opt(&job_cm).await?.is_none());
    assert_eq!(
        common::file_names(&payload_dir),
        Vec::<String>::new(),
        "no payload left"
    );
    election.stop().await;
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

// ---- Cluster cleanup, fenced and exact (issue 12) ----

/// Election timings under which the leader holds the lock for the whole test without a
/// renewal: a cleanup that deletes the cluster ConfigMap must not race a renewal (which
/// would see the ConfigMap gone and contend again, recreating it).
fn steady(cluster_id: &str) -> flink_ha_runtime::ElectionConfig {
    flink_ha_runtime::ElectionConfig {
        cluster_id: cluster_id.to_string(),
        lease_duration: Duration::from_secs(120),
        renew_deadline: Duration::from_secs(100),
        retry_period: Duration::from_secs(60),
        max_retries: 15,
    }
}

/// Every file under `dir`, recursively, relative to it, sorted.
fn files_below(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(relative) = path.strip_prefix(root) {
                out.push(relative.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A ConfigMap Flink's native client creates next to the HA ones, with the same labels.
async fn labelled_config_map(api: &Api<ConfigMap>, name: &str, cluster: &str) -> Result<(), kube::Error> {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.labels = Some(
        [
            ("app".to_string(), cluster.to_string()),
            ("type".to_string(), "flink-native-kubernetes".to_string()),
        ]
        .into(),
    );
    cm.data = Some([("config.yaml".to_string(), "kubernetes.cluster-id: x\n".to_string())].into());
    api.create(&PostParams::default(), &cm).await.map(drop)
}

/// Marks the entry `key` of the cluster ConfigMap for deletion, as a two-phase removal
/// that stopped after its first phase leaves it.
async fn mark_entry(api: &Api<ConfigMap>, cluster: &str, key: &str) -> TestResult {
    mark_entry_in(api, &names::cluster_config_map(cluster), key).await
}

/// As [`mark_entry`], in the ConfigMap `name`.
async fn mark_entry_in(api: &Api<ConfigMap>, name: &str, key: &str) -> TestResult {
    let name = name.to_string();
    let mut cm = api.get(&name).await?;
    let data = cm.data.get_or_insert_with(Default::default);
    let value = data.get(key).ok_or("no such entry")?;
    let mut pointer: serde_json::Value = serde_json::from_str(value)?;
    pointer["markedForDeletion"] = serde_json::Value::Bool(true);
    data.insert(key.to_string(), pointer.to_string());
    api.replace(&name, &PostParams::default(), &cm).await?;
    Ok(())
}

/// Writes a file under `dir` as Flink's blob store would.
fn blob(dir: &std::path::Path) -> std::io::Result<()> {
    blob_of(dir, &format!("job_{JOB_A}"), "blob_p-0123456789abcdef")
}

/// Writes the blob `name` into `<dir>/blob/<owner>/` (`job_<id>` or `no_job`), as Flink's
/// blob store does.
fn blob_of(dir: &std::path::Path, owner: &str, name: &str) -> std::io::Result<()> {
    let folder = dir.join("blob").join(owner);
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join(name), b"jar")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_flink_config_map_neither_stops_cluster_cleanup_nor_is_deleted_by_it() -> TestResult {
    let env = TestEnv::new("cleanup-flink-config").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    labelled_config_map(&api, "flink-config-shop", "shop").await?;
    labelled_config_map(&api, "pod-template-shop", "shop").await?;
    let election = LeaderElection::start(api.clone(), steady("shop"));
    election.wait_for_grant().await;

    let cleaned = clean_up_cluster(
        &cas(&api),
        "shop",
        &payloads,
        election.identity(),
        &common::lease_of(&election)?,
    )
    .await;
    assert!(cleaned.is_ok(), "no job ConfigMap remains, yet: {cleaned:?}");
    assert!(api.get_opt(&names::cluster_config_map("shop")).await?.is_none());
    assert!(api.get_opt("flink-config-shop").await?.is_some());
    assert!(api.get_opt("pod-template-shop").await?.is_some());
    drop(election);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_with_one_id_in_two_namespaces_keep_each_others_payloads() -> TestResult {
    let here = TestEnv::new("cleanup-twin-here").await?;
    let there = TestEnv::new("cleanup-twin-there").await?;
    let api_here: Api<ConfigMap> = Api::namespaced(here.client.clone(), &here.namespace);
    let api_there: Api<ConfigMap> = Api::namespaced(there.client.clone(), &there.namespace);
    // One storageDir and one cluster id: one payload folder for both.
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "twin")?;
    let folder = storage.path().join("twin");

    // Over there, a job runs: its plan and two checkpoints are in the shared folder.
    let election_there = LeaderElection::start(api_there.clone(), steady("twin"));
    let plans_there = ExecutionPlanStore::new(cas(&api_there), "twin", payloads.clone(), election_there.identity());
    let (running, _) = start_job(&api_there, "twin", JOB_B, &payloads, &election_there).await?;
    plans_there.put(JOB_B, Bytes::from_static(b"plan there")).await?;
    running.checkpoint(JOB_B).await?;
    running.checkpoint(JOB_B).await?;
    let theirs = files_below(&folder);
    assert_eq!(theirs.len(), 3, "{theirs:?}");

    // Here, a job ran and ended; then the cluster shuts down.
    let election_here = LeaderElection::start(api_here.clone(), steady("twin"));
    let plans_here = ExecutionPlanStore::new(cas(&api_here), "twin", payloads.clone(), election_here.identity());
    let (running, fence) = start_job(&api_here, "twin", JOB_A, &payloads, &election_here).await?;
    plans_here.put(JOB_A, Bytes::from_static(b"plan here")).await?;
    running.checkpoint(JOB_A).await?;
    let job = JobHa {
        cas: &cas(&api_here),
        cluster_id: "twin",
        job_id: JOB_A,
        payloads: &payloads,
        fence: &fence,
        identity: election_here.identity(),
        lease: &common::lease_of(&election_here)?,
    };
    clean_up_job(job, &job_results(&storage, "twin")?, &succeeded(JOB_A)).await?;
    clean_up_cluster(
        &cas(&api_here),
        "twin",
        &payloads,
        election_here.identity(),
        &common::lease_of(&election_here)?,
    )
    .await?;
    assert!(api_here.get_opt(&names::cluster_config_map("twin")).await?.is_none());

    // Over there, nothing was touched: every payload its pointers name is still there.
    assert_eq!(
        files_below(&folder),
        theirs,
        "the other cluster's payloads were deleted"
    );
    assert!(api_there.get_opt(&names::cluster_config_map("twin")).await?.is_some());
    drop(election_here);
    drop(election_there);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_does_not_hold_the_lock_cannot_clean_up_the_cluster() -> TestResult {
    let env = TestEnv::new("cleanup-not-leader").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let folder = storage.path().join("shop");
    let election = LeaderElection::start(api.clone(), steady("shop"));
    election.wait_for_grant().await;
    // A leftover of an interrupted plan removal, and a blob: what a cleanup would delete.
    let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads.clone(), election.identity());
    plans.put(JOB_A, Bytes::from_static(b"plan")).await?;
    mark_entry(&api, "shop", &execution_plan_key(JOB_A)).await?;
    blob(&folder)?;
    let files = files_below(&folder);
    assert_eq!(files.len(), 2, "{files:?}");
    let before = api.get(&names::cluster_config_map("shop")).await?;

    // Another process (a standby, an operator's tool) that does not hold the lock.
    let lease = common::lease_of(&election)?;
    let refused = clean_up_cluster(&cas(&api), "shop", &payloads, "a-standby", &lease).await;
    assert!(matches!(refused, Err(Error::NotLeader { .. })), "{refused:?}");
    let after = api.get(&names::cluster_config_map("shop")).await?;
    assert_eq!(after.metadata.resource_version, before.metadata.resource_version);
    assert_eq!(files_below(&folder), files, "nothing may be deleted");

    // Nor can the leader once it has released the lock.
    let former = election.identity().to_string();
    election.stop().await;
    let refused = clean_up_cluster(&cas(&api), "shop", &payloads, &former, &lease).await;
    assert!(matches!(refused, Err(Error::NotLeader { .. })), "{refused:?}");
    assert!(api.get_opt(&names::cluster_config_map("shop")).await?.is_some());
    assert_eq!(files_below(&folder), files, "nothing may be deleted");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_cleanup_removes_marked_leftovers_their_payloads_and_the_blobs() -> TestResult {
    let env = TestEnv::new("cleanup-leftovers").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let folder = storage.path().join("shop");
    let election = LeaderElection::start(api.clone(), steady("shop"));
    election.wait_for_grant().await;
    let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads.clone(), election.identity());
    plans.put(JOB_A, Bytes::from_static(b"plan")).await?;
    // The plan's removal stopped after marking it: the entry and its payload are left.
    mark_entry(&api, "shop", &execution_plan_key(JOB_A)).await?;
    blob(&folder)?;
    assert_eq!(files_below(&folder).len(), 2);

    clean_up_cluster(
        &cas(&api),
        "shop",
        &payloads,
        election.identity(),
        &common::lease_of(&election)?,
    )
    .await?;
    assert!(api.get_opt(&names::cluster_config_map("shop")).await?.is_none());
    assert_eq!(files_below(&folder), Vec::<String>::new());
    drop(election);
    Ok(())
}

/// Rewrites the lock of the cluster ConfigMap to name `holder`, as a contender that
/// took it over does (or, with the same holder, changes only an entry).
async fn write_lock(api: Api<ConfigMap>, cluster: String, holder: Option<String>) {
    let name = names::cluster_config_map(&cluster);
    let Ok(mut cm) = api.get(&name).await else { return };
    match holder {
        Some(holder) => {
            let annotations = cm.metadata.annotations.get_or_insert_with(Default::default);
            let raw = annotations.get(names::LEADER_ANNOTATION).cloned().unwrap_or_default();
            let mut record: serde_json::Value = serde_json::from_str(&raw).unwrap_or_default();
            record["holderIdentity"] = serde_json::Value::String(holder);
            annotations.insert(names::LEADER_ANNOTATION.to_string(), record.to_string());
        }
        None => {
            cm.data
                .get_or_insert_with(Default::default)
                .insert("unrelated".into(), "a concurrent write".into());
        }
    }
    let _ = api.replace(&name, &PostParams::default(), &cm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_between_the_check_and_the_delete_stops_the_cluster_cleanup() -> TestResult {
    let env = TestEnv::new("cleanup-lock-moves").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let faults = Faults::default();
    let hooked: Api<ConfigMap> = Api::namespaced(faults.client(&env).await?, &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let election = LeaderElection::start(api.clone(), steady("shop"));
    election.wait_for_grant().await;
    // After the cleanup checked the lock, and before its DELETE arrives, a contender
    // takes the lock over.
    faults.before_delete(Box::pin(write_lock(
        api.clone(),
        "shop".into(),
        Some("the-next-leader".into()),
    )));

    let refused = clean_up_cluster(
        &cas(&hooked),
        "shop",
        &payloads,
        election.identity(),
        &common::lease_of(&election)?,
    )
    .await;
    assert!(matches!(refused, Err(Error::NotLeader { .. })), "{refused:?}");
    assert!(
        api.get_opt(&names::cluster_config_map("shop")).await?.is_some(),
        "the new leader's ConfigMap was deleted"
    );
    drop(election);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_write_before_the_delete_is_read_and_checked_again() -> TestResult {
    let env = TestEnv::new("cleanup-concurrent-write").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let faults = Faults::default();
    let hooked: Api<ConfigMap> = Api::namespaced(faults.client(&env).await?, &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let election = LeaderElection::start(api.clone(), steady("shop"));
    election.wait_for_grant().await;
    faults.before_delete(Box::pin(write_lock(api.clone(), "shop".into(), None)));

    clean_up_cluster(
        &cas(&hooked),
        "shop",
        &payloads,
        election.identity(),
        &common::lease_of(&election)?,
    )
    .await?;
    assert!(api.get_opt(&names::cluster_config_map("shop")).await?.is_none());
    assert_eq!(
        faults.deletes(),
        2,
        "the first DELETE, conditioned on the version read, must meet a conflict"
    );
    drop(election);
    Ok(())
}

/// A plan removed while the cluster ConfigMap is gone (deleted, and about to be restored
/// by its leader with the plan still in it) is not reported removed, so the job's
/// cleanup is tried again. (Before the fix it counted as removed: the cleanup finished,
/// and the restore brought a finished job's plan back — found by the 30-minute nemesis
/// run; with Flink's delete-on-commit the job would have run again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_removal_without_the_cluster_config_map_is_not_done() -> TestResult {
    let env = TestEnv::new("cleanup-plan-missing").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "gone")?;
    let plans = ExecutionPlanStore::new(cas(&api), "gone", payloads, "jm-1");
    match plans.remove(JOB_A).await {
        Err(Error::Missing { name }) => assert_eq!(name, names::cluster_config_map("gone")),
        other => return Err(format!("expected Missing, got {other:?}").into()),
    }
    Ok(())
}

// ---- Blobs: only this cluster's jobs', each delete inside the leader's deadline ----

/// A job that ended takes its blobs (`blob/job_<id>/`: its jars and artifacts) with it,
/// as Flink's global cleanup of a job does; another job's blobs and the cluster's own
/// (`no_job/`) stay. (Before the fix the job's blobs outlived it until the cluster shut
/// down, and then went with the whole `blob/` folder.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cleanup_deletes_its_own_blobs_and_no_others() -> TestResult {
    let env = TestEnv::new("cleanup-job-blobs").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let folder = storage.path().join("shop");
    let results = job_results(&storage, "shop")?;
    let election = LeaderElection::start(api.clone(), steady("shop"));
    let (running, fence) = start_job(&api, "shop", JOB_A, &payloads, &election).await?;
    running.checkpoint(JOB_A).await?;
    blob_of(&folder, &format!("job_{JOB_A}"), "blob_p-aaaa")?;
    blob_of(&folder, &format!("job_{JOB_B}"), "blob_p-bbbb")?;
    blob_of(&folder, "no_job", "blob_p-cccc")?;

    let job = JobHa {
        cas: &cas(&api),
        cluster_id: "shop",
        job_id: JOB_A,
        payloads: &payloads,
        fence: &fence,
        identity: election.identity(),
        lease: &common::lease_of(&election)?,
    };
    clean_up_job(job, &results, &succeeded(JOB_A)).await?;
    assert_eq!(
        files_below(&folder.join("blob")),
        [format!("job_{JOB_B}/blob_p-bbbb"), "no_job/blob_p-cccc".to_string()],
        "job A's blobs go with it, and only they"
    );
    election.stop().await;
    Ok(())
}

/// The cluster shuts down: it deletes the blobs of the jobs its ConfigMap names (here a
/// plan whose removal was interrupted), and keeps what it cannot prove its own: another
/// job's folder (a cluster with this id in another namespace shares `blob/`) and
/// `no_job/`. (Before the fix it deleted `blob/` whole.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_cleanup_deletes_only_the_blobs_of_its_own_jobs() -> TestResult {
    let env = TestEnv::new("cleanup-own-blobs").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let folder = storage.path().join("shop");
    let election = LeaderElection::start(api.clone(), steady("shop"));
    election.wait_for_grant().await;
    let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads.clone(), election.identity());
    plans.put(JOB_A, Bytes::from_static(b"plan")).await?;
    mark_entry(&api, "shop", &execution_plan_key(JOB_A)).await?;
    blob_of(&folder, &format!("job_{JOB_A}"), "blob_p-aaaa")?;
    blob_of(&folder, &format!("job_{JOB_B}"), "blob_p-bbbb")?;
    blob_of(&folder, "no_job", "blob_p-cccc")?;

    clean_up_cluster(
        &cas(&api),
        "shop",
        &payloads,
        election.identity(),
        &common::lease_of(&election)?,
    )
    .await?;
    assert!(api.get_opt(&names::cluster_config_map("shop")).await?.is_none());
    assert_eq!(
        files_below(&folder),
        [
            format!("blob/job_{JOB_B}/blob_p-bbbb"),
            "blob/no_job/blob_p-cccc".to_string()
        ],
        "what is not proven this cluster's stays"
    );
    drop(election);
    Ok(())
}

/// A leader stands still in its cluster cleanup (a GC pause, a frozen node) right before
/// it looks into `blob/`; meanwhile its lease runs out, the next leader runs the same job
/// id again (Flink's application mode keeps a fixed one) and uploads its jar. The paused
/// leader resumes: past its deadline it deletes nothing. (Before the fix it deleted
/// `blob/` whole, the next leader's new jar with it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_deadline_deletes_no_blob() -> TestResult {
    let env = TestEnv::new("cleanup-paused-blobs").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let folder = storage.path().join("shop");
    let plain = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let election = LeaderElection::start(api.clone(), fast("shop"));
    election.wait_for_grant().await;
    let identity = election.identity().to_string();
    let lease = common::lease_of(&election)?;
    let plans = ExecutionPlanStore::new(cas(&api), "shop", plain, &identity);
    plans.put(JOB_A, Bytes::from_static(b"plan")).await?;
    mark_entry(&api, "shop", &execution_plan_key(JOB_A)).await?;
    blob(&folder)?;

    let paused = Arc::new(Mutex::new(Some(election)));
    let next_leader = Arc::new(Mutex::new(None));
    let pause = {
        let (paused, next_leader, api, folder) = (paused.clone(), next_leader.clone(), api.clone(), folder.clone());
        async move {
            // Frozen: no renewal from here on.
            drop(paused.lock().ok().and_then(|mut e| e.take()));
            let next = LeaderElection::start(api, fast("shop"));
            next.wait_for_grant().await;
            if let Err(error) = blob_of(&folder, &format!("job_{JOB_A}"), "blob_p-next") {
                panic!("the next leader could not write its blob: {error}");
            }
            if let Ok(mut slot) = next_leader.lock() {
                *slot = Some(next);
            }
        }
    };
    // The pause begins at the cleanup's first look into blob/, and it is the world's,
    // not the cleanup's: it goes on whatever the cleanup does meanwhile.
    let store = Hooked::new(
        "shop/blob",
        Some(Box::pin(async move {
            let _ = tokio::spawn(pause).await;
        })),
        Duration::ZERO,
    );
    let root = object_store::path::Path::from(folder.display().to_string());
    let payloads = PayloadStore::with_object_store(Arc::new(store), "file://", root);

    let cleaned = clean_up_cluster(&cas(&api), "shop", &payloads, &identity, &lease).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while next_leader.lock().map(|next| next.is_none()).unwrap_or(true) {
        assert!(tokio::time::Instant::now() < deadline, "no next leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        folder
            .join("blob")
            .join(format!("job_{JOB_A}"))
            .join("blob_p-next")
            .exists(),
        "the next leader's blob was deleted by a leader past its deadline ({cleaned:?})"
    );
    assert!(
        matches!(cleaned, Err(Error::NotLeader { .. } | Error::CutOff { .. })),
        "{cleaned:?}"
    );
    assert!(api.get_opt(&names::cluster_config_map("shop")).await?.is_some());
    let next = next_leader
        .lock()
        .ok()
        .and_then(|mut e| e.take())
        .ok_or("no next leader")?;
    next.stop().await;
    Ok(())
}

/// A plan whose pointer would take the cluster ConfigMap past Kubernetes' 1 MiB is
/// refused before the write, naming its key, and leaves no payload behind. (Before the
/// fix the API server's 422 came back as a bare Kubernetes error naming no key.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_would_overflow_the_cluster_config_map_is_refused_naming_its_key() -> TestResult {
    let env = TestEnv::new("cleanup-config-map-full").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let election = LeaderElection::start(api.clone(), steady("shop"));
    election.wait_for_grant().await;
    let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads, election.identity());
    plans.put(JOB_A, Bytes::from_static(b"plan")).await?;
    // Entries the cluster holds already, up to a few bytes short of the limit, however
    // it is counted (the API server counts the values, the policy core keys and values).
    let name = names::cluster_config_map("shop");
    let mut cm = api.get(&name).await?;
    let data = cm.data.get_or_insert_with(Default::default);
    let used: usize = data.values().map(String::len).sum();
    let filler = flink_ha_policy::ha_layout::CONFIGMAP_LIMIT - used - 40;
    data.insert("filler".into(), "x".repeat(filler));
    api.replace(&name, &PostParams::default(), &cm).await?;
    let before = common::file_names(&storage.path().join("shop"));

    let key = execution_plan_key(JOB_B);
    match plans.put(JOB_B, Bytes::from_static(b"plan")).await {
        Err(error) => assert!(error.to_string().contains(&key), "{error}"),
        Ok(()) => panic!("a plan past the ConfigMap's limit was written"),
    }
    assert_eq!(
        common::file_names(&storage.path().join("shop")),
        before,
        "no payload is left behind"
    );
    assert_eq!(plans.job_ids().await?, [JOB_A]);
    election.stop().await;
    Ok(())
}
