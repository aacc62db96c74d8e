//! The job-result store against the real API server, payloads and job results on the
//! local file system: a job whose cleanup stopped half-way is never run again by the next
//! leader, which finishes the cleanup instead (issue 12). Then the store's files alone:
//! Flink's names and JSON, idempotent steps, entries Flink wrote, malformed entries.

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use flink_ha_runtime::checkpoint_counter::CheckpointIdCounter;
use flink_ha_runtime::checkpoint_store::CompletedCheckpointStore;
use flink_ha_runtime::cleanup::{ExecutionPlanStore, JobHa, Recovery, clean_up_job, recoverable_jobs};
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::job_result_store::{ApplicationStatus, Entry, JobResult, JobResultStore};
use flink_ha_runtime::payloads::PayloadStore;
use flink_ha_runtime::storage::StorageOptions;
use flink_ha_runtime::{Error, HaSettings, JobId, LeaderElection, names};
use flink_ha_testenv::TestEnv;

mod common;
use common::{cas, fast};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";
const OTHER: &str = "1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e";

/// The job-result store of cluster `cluster` at Flink's default place under `storage`.
fn job_results(storage: &tempfile::TempDir, cluster: &str, delete_on_commit: bool) -> Result<JobResultStore, Error> {
    let path = format!("file://{}/job-result-store/{cluster}", storage.path().display());
    JobResultStore::open(&path, &StorageOptions::default(), delete_on_commit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_cleanup_stopped_half_way_is_not_recovered_and_its_cleanup_is_finished() -> TestResult {
    let env = TestEnv::new("jrs-half-cleaned").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let storage_dir = format!("file://{}", storage.path().display());
    let payloads = PayloadStore::open(&storage_dir, "shop")?;
    let results = job_results(&storage, "shop", true)?;
    let results_dir = storage.path().join("job-result-store").join("shop");

    // The first leader runs two jobs with checkpoints.
    let first = LeaderElection::start(api.clone(), fast("shop"));
    let (_, epoch) = first.wait_for_grant().await;
    let fence = Fence::new(epoch, first.identity());
    let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads.clone(), first.identity());
    for job in [JOB, OTHER] {
        plans.put(job, Bytes::from(format!("plan of {job}"))).await?;
        fence.claim_job(&cas(&api), "shop", job).await?;
        first
            .publish_leader_address(
                &names::job_component(job),
                "pekko.tcp://flink@10.0.0.9:6123/user/rpc/jm_1",
            )
            .await?;
        let counter = CheckpointIdCounter::new(cas(&api), "shop", job, fence.clone());
        counter.start().await?;
        let checkpoints = CompletedCheckpointStore::new(cas(&api), "shop", job, payloads.clone(), fence.clone(), 1);
        checkpoints.recover().await?;
        for _ in 0..2 {
            let id = counter.get_and_increment().await?;
            checkpoints.add(id, Bytes::from(format!("{job}@{id}"))).await?;
        }
    }

    // JOB finishes. Its cleanup has recorded the result and removed the checkpoints, the
    // counter and the blobs, all inside its lease, when the lock check of the leader
    // entry's removal fails (the lock moved on before this leader noticed; here the
    // cleanup runs under an identity the lock does not name): the leader entry and the
    // plan stay behind.
    let result = JobResult::new(JOB, ApplicationStatus::Succeeded, 42_000);
    let job = JobHa {
        cas: &cas(&api),
        cluster_id: "shop",
        job_id: JOB,
        payloads: &payloads,
        fence: &fence,
        identity: "deposed-without-knowing",
        lease: &common::lease_of(&first)?,
    };
    let interrupted = clean_up_job(job, &results, &result).await;
    assert!(matches!(interrupted, Err(Error::NotLeader { .. })), "{interrupted:?}");
    first.stop().await;
    assert_eq!(common::file_names(&results_dir), [format!("{JOB}_DIRTY.json")]);
    let job_cm = api.get(&names::job_config_map("shop", JOB)).await?;
    assert_eq!(
        job_cm.data.unwrap_or_default().keys().collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "checkpoints and counter are gone"
    );

    // A new leader takes over and decides what to recover: not the finished job, whose
    // plan is still there; its cleanup is to be finished instead.
    let second = LeaderElection::start(api.clone(), fast("shop"));
    let (_, epoch) = second.wait_for_grant().await;
    let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads.clone(), second.identity());
    assert_eq!(
        plans.job_ids().await?,
        [JOB, OTHER],
        "the plan outlived the interrupted cleanup"
    );
    let recovery = recoverable_jobs(&plans, &results).await?;
    assert_eq!(
        recovery,
        Recovery {
            recover: vec![JobId::parse(OTHER)?],
            finish_cleanup: vec![result.clone()],
        },
        "the finished job would run again, from no checkpoint at all"
    );

    // It finishes the cleanup with the recorded result: nothing of the job is left.
    let fence = Fence::new(epoch, second.identity());
    for ended in &recovery.finish_cleanup {
        fence.claim_job(&cas(&api), "shop", &ended.job_id).await?;
        let job = JobHa {
            cas: &cas(&api),
            cluster_id: "shop",
            job_id: &ended.job_id,
            payloads: &payloads,
            fence: &fence,
            identity: second.identity(),
            lease: &common::lease_of(&second)?,
        };
        clean_up_job(job, &results, ended).await?;
    }
    assert_eq!(plans.job_ids().await?, [OTHER]);
    assert!(api.get_opt(&names::job_config_map("shop", JOB)).await?.is_none());
    let cluster = api
        .get(&names::cluster_config_map("shop"))
        .await?
        .data
        .unwrap_or_default();
    assert!(!cluster.contains_key(&names::leader_entry_key(&names::job_component(JOB))));
    assert_eq!(results.entry(JOB).await?, None, "deleted on commit");
    assert_eq!(common::file_names(&results_dir), Vec::<String>::new());
    // The other job's plan and checkpoint are all that is left in storageDir.
    assert_eq!(common::file_names(&storage.path().join("shop")).len(), 2);
    assert_eq!(
        recoverable_jobs(&plans, &results).await?,
        Recovery {
            recover: vec![JobId::parse(OTHER)?],
            finish_cleanup: vec![],
        }
    );
    second.stop().await;
    Ok(())
}

/// Cluster `shop`'s leader in a fresh namespace, with its plan store and its job-result
/// store (entries kept) under a temporary storageDir.
struct Leader {
    _env: TestEnv,
    api: Api<ConfigMap>,
    _storage: tempfile::TempDir,
    results: JobResultStore,
    election: LeaderElection,
    plans: ExecutionPlanStore,
}

impl Leader {
    async fn of_shop(namespace: &str) -> Result<Leader, Box<dyn std::error::Error>> {
        let env = TestEnv::new(namespace).await?;
        let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
        let storage = tempfile::tempdir()?;
        let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
        let results = job_results(&storage, "shop", false)?;
        let election = LeaderElection::start(api.clone(), fast("shop"));
        election.wait_for_grant().await;
        let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads, election.identity());
        Ok(Leader {
            _env: env,
            api,
            _storage: storage,
            results,
            election,
            plans,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_a_clean_entry_is_not_recovered_even_with_a_plan() -> TestResult {
    let leader = Leader::of_shop("jrs-clean-entry").await?;
    leader.plans.put(JOB, Bytes::from_static(b"plan")).await?;
    leader.plans.put(OTHER, Bytes::from_static(b"plan")).await?;
    // Kept entries (delete-on-commit false), e.g. a plan restored from a backup.
    let result = JobResult::new(JOB, ApplicationStatus::Canceled, 5);
    let lease = common::lease_of(&leader.election)?;
    leader.results.create_dirty(&result, &lease).await?;
    leader.results.mark_clean(JOB, &lease).await?;
    assert_eq!(leader.results.entry(JOB).await?, Some(Entry::Clean));
    assert_eq!(
        recoverable_jobs(&leader.plans, &leader.results).await?,
        Recovery {
            recover: vec![JobId::parse(OTHER)?],
            finish_cleanup: vec![],
        }
    );
    leader.election.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_under_a_malformed_job_id_stops_recovery_and_is_left_alone() -> TestResult {
    let leader = Leader::of_shop("jrs-bad-job-id").await?;
    leader.plans.put(OTHER, Bytes::from_static(b"plan")).await?;
    // A key no JobManager of ours wrote: its "job id" would name a job ConfigMap.
    leader.plans.put("Not.A.Job.Id", Bytes::from_static(b"plan")).await?;

    assert_eq!(
        leader.plans.job_ids().await?,
        [OTHER],
        "only well-formed job ids are jobs"
    );
    let refused = recoverable_jobs(&leader.plans, &leader.results).await;
    match refused {
        Err(Error::UnreadablePlans { keys, .. }) => assert_eq!(keys, ["flink-ha.executionPlan-Not.A.Job.Id"]),
        other => panic!("recovery went ahead past a malformed job id: {other:?}"),
    }
    assert!(
        leader.plans.get("Not.A.Job.Id").await?.is_some(),
        "the entry is left for whoever wrote it"
    );
    leader.election.stop().await;
    Ok(())
}

/// A plan key that does not parse, marked for deletion: a removal in progress, not a job
/// this runtime would have to run, so it does not stop recovery. (Before the fix it was
/// counted as an unreadable plan, and every job of the cluster stood still.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_marked_for_deletion_does_not_stop_recovery() -> TestResult {
    let leader = Leader::of_shop("jrs-marked-bad-key").await?;
    leader.plans.put(OTHER, Bytes::from_static(b"plan")).await?;
    leader.plans.put("Not.A.Job.Id", Bytes::from_static(b"plan")).await?;
    let key = "flink-ha.executionPlan-Not.A.Job.Id";
    let name = names::cluster_config_map("shop");
    let mut cm = leader.api.get(&name).await?;
    let data = cm.data.get_or_insert_with(Default::default);
    let mut pointer: serde_json::Value = serde_json::from_str(data.get(key).ok_or("no such entry")?)?;
    pointer["markedForDeletion"] = serde_json::Value::Bool(true);
    data.insert(key.to_string(), pointer.to_string());
    leader.api.replace(&name, &Default::default(), &cm).await?;

    let recovery = recoverable_jobs(&leader.plans, &leader.results).await;
    assert!(
        matches!(&recovery, Ok(r) if r.recover == [JobId::parse(OTHER)?]),
        "{recovery:?}"
    );
    leader.election.stop().await;
    Ok(())
}

/// The configuration of cluster `cluster` in `namespace`, without
/// `high-availability.cluster-id`: its payloads and job results go where Flink's standalone
/// default puts them, `default`, which every such cluster on that storageDir shares.
fn standalone_config(storage: &tempfile::TempDir, cluster: &str, namespace: &str) -> String {
    format!(
        "high-availability.type: kubernetes
high-availability.storageDir: file://{}/ha
kubernetes.cluster-id: {cluster}
kubernetes.namespace: {namespace}
high-availability.kubernetes.leader-election.lease-duration: 2 s
high-availability.kubernetes.leader-election.renew-deadline: 1500 ms
high-availability.kubernetes.leader-election.retry-period: 400 ms
",
        storage.path().display()
    )
}

/// Two clusters, `orders` and `billing`, both without `high-availability.cluster-id`: one
/// `job-result-store/default/` folder in Flink's layout. A job of `orders` ended and its
/// cleanup stopped after the dirty entry. `billing`'s leader must not take that entry for
/// one of its own cleanups: finishing it would mark it clean, and `orders`' next leader
/// would run the finished job again from its plan. (Before the fix `billing` listed it
/// among the cleanups to finish.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_on_the_default_folder_keep_to_their_own_job_results() -> TestResult {
    let env = TestEnv::new("jrs-two-clusters").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let orders = HaSettings::from_flink_config("config.yaml", &standalone_config(&storage, "orders", &env.namespace))?;
    let billing =
        HaSettings::from_flink_config("config.yaml", &standalone_config(&storage, "billing", &env.namespace))?;
    assert_eq!(
        orders.job_result_store_path, billing.job_result_store_path,
        "Flink's default"
    );

    let orders_leader = LeaderElection::start(api.clone(), orders.election.clone());
    orders_leader.wait_for_grant().await;
    let orders_plans = ExecutionPlanStore::new(
        cas(&api),
        "orders",
        PayloadStore::for_settings(&orders)?,
        orders_leader.identity(),
    );
    orders_plans.put(JOB, Bytes::from_static(b"plan of orders")).await?;
    let orders_results = JobResultStore::for_settings(&orders)?;
    let result = JobResult::new(JOB, ApplicationStatus::Succeeded, 1);
    orders_results
        .create_dirty(&result, &common::lease_of(&orders_leader)?)
        .await?;

    let billing_leader = LeaderElection::start(api.clone(), billing.election.clone());
    billing_leader.wait_for_grant().await;
    let billing_plans = ExecutionPlanStore::new(
        cas(&api),
        "billing",
        PayloadStore::for_settings(&billing)?,
        billing_leader.identity(),
    );
    let billing_results = JobResultStore::for_settings(&billing)?;
    assert_eq!(
        recoverable_jobs(&billing_plans, &billing_results).await?,
        Recovery::default(),
        "billing would finish the cleanup of orders' job and mark its entry clean"
    );
    assert_eq!(
        recoverable_jobs(&orders_plans, &orders_results).await?.finish_cleanup,
        [result],
        "orders still knows its job ended"
    );
    orders_leader.stop().await;
    billing_leader.stop().await;
    Ok(())
}

/// Entries an earlier version wrote into the shared folder itself still count for the
/// jobs this cluster has plans of: a job that ended is neither recovered nor forgotten
/// across the upgrade, its cleanup is finished. Entries of other jobs there are not this
/// cluster's: not even read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_an_earlier_version_in_the_shared_folder_still_end_this_clusters_jobs() -> TestResult {
    const THEIRS: &str = "3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c";
    let env = TestEnv::new("jrs-legacy").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let orders = HaSettings::from_flink_config("config.yaml", &standalone_config(&storage, "orders", &env.namespace))?;
    let leader = LeaderElection::start(api.clone(), orders.election.clone());
    leader.wait_for_grant().await;
    let plans = ExecutionPlanStore::new(
        cas(&api),
        "orders",
        PayloadStore::for_settings(&orders)?,
        leader.identity(),
    );
    plans.put(JOB, Bytes::from_static(b"plan")).await?;
    plans.put(OTHER, Bytes::from_static(b"plan")).await?;
    let shared = storage.path().join("ha").join("job-result-store").join("default");
    std::fs::create_dir_all(&shared)?;
    let result = JobResult::new(JOB, ApplicationStatus::Succeeded, 3);
    std::fs::write(shared.join(format!("{JOB}_DIRTY.json")), result.to_json())?;
    std::fs::write(shared.join(format!("{THEIRS}_DIRTY.json")), "not even JSON")?;

    let results = JobResultStore::for_settings(&orders)?;
    assert_eq!(
        recoverable_jobs(&plans, &results).await?,
        Recovery {
            recover: vec![JobId::parse(OTHER)?],
            finish_cleanup: vec![result],
        }
    );
    leader.stop().await;
    Ok(())
}

/// The leader is paused (its renewals stop) as its job ends, and the job-result store is
/// slow to answer (object_store retries a slow store for minutes): the dirty entry must not
/// land after the lease ran out, when the next leader may already run the job. (Before the
/// fix it landed seconds after the lease, and the cleanup went on as if it still led.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_result_cannot_land_after_the_lease() -> TestResult {
    let env = TestEnv::new("jrs-after-lease").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "shop")?;
    let results_dir = storage.path().join("job-result-store").join("shop");
    let slow = common::stores::Hooked::new("", None, std::time::Duration::from_secs(5));
    let results = JobResultStore::with_object_store(
        std::sync::Arc::new(slow),
        object_store::path::Path::from(results_dir.display().to_string()),
        format!("file://{}", results_dir.display()),
        false,
    );
    let election = LeaderElection::start(api.clone(), fast("shop"));
    let (_, epoch) = election.wait_for_grant().await;
    let fence = Fence::new(epoch, election.identity());
    fence.claim_job(&cas(&api), "shop", JOB).await?;
    let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads.clone(), election.identity());
    plans.put(JOB, Bytes::from_static(b"plan")).await?;
    let identity = election.identity().to_string();
    let lease = common::lease_of(&election)?;
    // Paused: no renewal from here on; the lease runs out within two seconds.
    drop(election);

    let job = JobHa {
        cas: &cas(&api),
        cluster_id: "shop",
        job_id: JOB,
        payloads: &payloads,
        fence: &fence,
        identity: &identity,
        lease: &lease,
    };
    let ended = clean_up_job(job, &results, &JobResult::new(JOB, ApplicationStatus::Succeeded, 1)).await;
    assert_eq!(
        common::file_names(&results_dir),
        Vec::<String>::new(),
        "a job result landed after the lease ran out ({ended:?})"
    );
    assert_eq!(
        plans.job_ids().await?,
        [JOB],
        "the job's plan stays: it did not end under a lease"
    );
    Ok(())
}

// ---- The store's files, on the local file system (no API server needed) ----

fn read(dir: &std::path::Path, file: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_slice(&std::fs::read(dir.join(file))?)?)
}

#[tokio::test]
async fn entries_are_flinks_files_and_every_step_is_idempotent() -> TestResult {
    let storage = tempfile::tempdir()?;
    let dir = storage.path().join("job-result-store").join("shop");
    let kept = job_results(&storage, "shop", false)?;
    let lease = common::long_lease();
    let result = JobResult::new(JOB, ApplicationStatus::Failed, 1234);

    kept.create_dirty(&result, &lease).await?;
    assert_eq!(common::file_names(&dir), [format!("{JOB}_DIRTY.json")]);
    let json = read(&dir, &format!("{JOB}_DIRTY.json"))?;
    assert_eq!(
        json,
        serde_json::json!({
            "result": {"id": JOB, "application-status": "FAILED", "accumulator-results": {}, "net-runtime": 1234},
            "version": 1
        })
    );
    assert_eq!(kept.entry(JOB).await?, Some(Entry::Dirty));
    assert!(kept.has_entry(JOB).await?);
    assert!(!kept.has_entry(OTHER).await?);
    assert_eq!(kept.dirty_results().await?, std::slice::from_ref(&result));

    // A retried cleanup writes the same result again: fine. Another result: refused,
    // and the first one stands.
    kept.create_dirty(&result, &lease).await?;
    let other = JobResult::new(JOB, ApplicationStatus::Succeeded, 1234);
    let refused = kept.create_dirty(&other, &lease).await;
    assert!(
        matches!(&refused, Err(Error::Refused(m)) if m.contains(&format!("{JOB}_DIRTY.json"))),
        "{refused:?}"
    );
    assert_eq!(kept.dirty_results().await?, std::slice::from_ref(&result));

    // Committed: renamed to <job-id>.json, content unchanged; again is fine.
    kept.mark_clean(JOB, &lease).await?;
    assert_eq!(common::file_names(&dir), [format!("{JOB}.json")]);
    assert_eq!(read(&dir, &format!("{JOB}.json"))?, json);
    kept.mark_clean(JOB, &lease).await?;
    assert_eq!(kept.entry(JOB).await?, Some(Entry::Clean));
    assert_eq!(kept.clean_job_ids().await?, [JOB]);
    assert_eq!(kept.dirty_results().await?, []);
    // A cleanup run again after the commit records nothing new.
    kept.create_dirty(&result, &lease).await?;
    assert_eq!(common::file_names(&dir), [format!("{JOB}.json")]);
    // Nothing to commit for a job without an entry.
    assert!(kept.mark_clean(OTHER, &lease).await.is_err());

    // Flink's default: deleted on commit, idempotently.
    let deleting = job_results(&storage, "shop", true)?;
    let second = JobResult::new(OTHER, ApplicationStatus::Succeeded, 7);
    deleting.create_dirty(&second, &lease).await?;
    deleting.mark_clean(OTHER, &lease).await?;
    deleting.mark_clean(OTHER, &lease).await?;
    assert_eq!(common::file_names(&dir), [format!("{JOB}.json")]);
    assert_eq!(deleting.entry(OTHER).await?, None);
    Ok(())
}

#[tokio::test]
async fn flinks_own_entries_are_read_and_malformed_ones_are_errors_naming_the_file() -> TestResult {
    let storage = tempfile::tempdir()?;
    let dir = storage.path().join("job-result-store").join("shop");
    std::fs::create_dir_all(&dir)?;
    let store = job_results(&storage, "shop", true)?;
    let lease = common::long_lease();
    // As Flink 2.x writes a failed job's entry, with fields this runtime does not know.
    std::fs::write(
        dir.join(format!("{JOB}_DIRTY.json")),
        format!(
            r#"{{"result":{{"id":"{JOB}","name":"orders","application-status":"FAILED","accumulator-results":{{}},"net-runtime":99,"failure-cause":{{"class":"java.lang.IllegalStateException","stack-trace":"...","serialized-throwable":"rO0AB"}},"start-time":1,"end-time":100}},"version":1}}"#
        ),
    )?;
    // Files that are not entries are left alone.
    std::fs::write(dir.join("README"), "not an entry")?;
    let dirty = store.dirty_results().await?;
    assert_eq!(dirty.len(), 1);
    assert_eq!(dirty[0].job_id, JOB);
    assert_eq!(dirty[0].status, ApplicationStatus::Failed);
    assert_eq!(dirty[0].net_runtime_ms, 99);
    assert!(dirty[0].failure_cause.is_some());
    // Written again by a retried cleanup: the same result, so no conflict.
    store.create_dirty(&dirty[0], &lease).await?;

    for (content, reason) in [
        (r#"{"result":"#, "not JSON"),
        (r#"{"version":1}"#, "no `result` object"),
        (&*format!(r#"{{"result":{{"id":"{JOB}"}}}}"#), "holds the result of job"),
    ] {
        std::fs::write(dir.join(format!("{OTHER}_DIRTY.json")), content)?;
        let error = store.dirty_results().await.expect_err(content).to_string();
        assert!(error.contains(&format!("{OTHER}_DIRTY.json")), "{error}");
        assert!(error.contains(reason), "{error}");
    }
    // A job id that is not one names no file.
    assert!(matches!(
        store.has_entry("../../etc/passwd").await,
        Err(Error::Refused(_))
    ));
    Ok(())
}
